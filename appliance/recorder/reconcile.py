"""Start-up reconciliation of the index against the files, both ways (files are the truth).

* A file with no index row (the segment being written at a crash, or one whose row was
  lost with the WAL's last commits) gets its torn tail trimmed back to the last whole
  fragment, is probed, and indexed as `recovered`. A file with no whole fragment holds
  nothing playable and is removed.
* A row whose file is gone is marked `missing`, unless an implausible share of rows is
  missing at once (wrong or unmounted disk): then nothing is changed and an alert raised.
* A row whose file shrank is re-trimmed and its row corrected.
* Deletions that a crash interrupted (audit row still `pending`) are finished first, so
  their rows are neither counted as missing nor their files re-indexed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import av

from appliance.recorder.fmp4 import trim_torn_tail
from appliance.recorder.index import RecordingIndex, Segment
from appliance.recorder.integrity import GENESIS, file_sha256, link_segment
from appliance.recorder.segmenter import parse_segment_name
from appliance.storage.retention.delete import finish_pending

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    recovered: list[str] = field(default_factory=list)
    trimmed: list[str] = field(default_factory=list)
    removed_unreadable: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    finished_deletions: list[str] = field(default_factory=list)
    unknown_files: list[str] = field(default_factory=list)
    refused: str = ""


@dataclass
class ProbedSegment:
    duration_us: int
    packets: int
    video_codec: str | None
    audio_codec: str | None
    width: int | None
    height: int | None


def probe_segment(path: Path) -> ProbedSegment:
    """Read a segment's packets (no decoding) for its duration and codecs."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        first = last_end = None
        packets = 0
        for packet in container.demux(video):
            if packet.dts is None:
                continue
            packets += 1
            first = packet.dts if first is None else first
            last_end = packet.dts + (packet.duration or 0)
        duration = 0 if first is None else int((last_end - first) * video.time_base * 1_000_000)
        return ProbedSegment(duration, packets, video.codec_context.name,
                             audio.codec_context.name if audio else None,
                             video.codec_context.width, video.codec_context.height)


def segment_files(data_dir: Path) -> dict[str, Path]:
    """Every *.mp4 under recordings/<camera>/<day>/<hour>/, by path relative to data_dir."""
    root = data_dir / "recordings"
    if not root.is_dir():
        return {}
    return {str(p.relative_to(data_dir)): p for p in sorted(root.glob("*/*/*/*.mp4"))}


def reconcile(data_dir: Path, index: RecordingIndex, max_missing_share: float = 0.10,
              missing_floor: int = 5) -> ReconcileReport:
    report = ReconcileReport()
    report.finished_deletions = finish_pending(data_dir, index)
    files = segment_files(data_dir)
    rows = {seg.path: seg for seg in index.segments()}
    for relpath, path in files.items():
        if relpath not in rows:
            recover_orphan(data_dir, index, relpath, path, report)
    gone = [seg for seg in rows.values() if seg.path not in files and seg.status != "missing"]
    present = [seg for seg in rows.values() if seg.path in files]
    if len(gone) > missing_floor and len(gone) > max_missing_share * len(rows):
        report.refused = (f"{len(gone)} of {len(rows)} indexed segments have no file; "
                          "is the right disk mounted? The index was left unchanged.")
        index.add_alert(_now_us(), "critical", "recorder.reconcile", report.refused)
    else:
        for seg in gone:
            index.update_segment(seg.id, status="missing")
            report.missing.append(seg.path)
            log.warning("segment file missing: %s", seg.path)
    for seg in present:
        path = files[seg.path]
        if path.stat().st_size < seg.bytes:
            _retrim(index, seg, path, report)
    if any([report.recovered, report.trimmed, report.removed_unreadable, report.missing]):
        log.info("reconcile: recovered=%d trimmed=%d removed_unreadable=%d missing=%d",
                 len(report.recovered), len(report.trimmed), len(report.removed_unreadable),
                 len(report.missing))
    return report


def recover_orphan(data_dir: Path, index: RecordingIndex, relpath: str, path: Path,
                   report: ReconcileReport) -> None:
    """Index a file that has no row, trimmed to its last whole fragment, or remove it
    (audited) when nothing in it is playable."""
    parsed = parse_segment_name(path.name)
    if parsed is None:
        report.unknown_files.append(relpath)
        log.warning("not a segment name, left alone: %s", relpath)
        return
    start_us, seq = parsed
    camera = Path(relpath).parts[1]
    layout, cut = trim_torn_tail(path)
    if layout.fragments == 0 and not layout.finished:
        index.begin_deletion(Segment(camera, seq, start_us, start_us, layout.file_bytes, relpath),
                             "orphan_unreadable", "no complete fragment in the file", _now_us())
        finish_pending(data_dir, index)
        report.removed_unreadable.append(relpath)
        log.warning("removed %s: no complete fragment in it (%d bytes)", relpath, layout.file_bytes)
        return
    try:
        probed = probe_segment(path)
    except (av.FFmpegError, IndexError, OSError) as exc:
        report.unknown_files.append(relpath)
        index.add_alert(_now_us(), "warning", "recorder.reconcile",
                        f"{relpath} could not be read ({exc}); it was left in place")
        return
    if cut:
        report.trimmed.append(relpath)
    taken = {seg.seq for seg in index.segments(camera)}
    if seq in taken:  # an index row already holds this number: keep the file, renumber
        seq = max(taken) + 1
    segment = Segment(
        camera=camera, seq=seq, start_us=start_us, end_us=start_us + probed.duration_us,
        bytes=layout.readable_bytes, path=relpath, video_codec=probed.video_codec,
        audio_codec=probed.audio_codec, width=probed.width, height=probed.height,
        fragments=layout.fragments, packets=probed.packets, status="recovered")
    link_segment(segment, data_dir, index.last_chain(camera) or GENESIS)
    index.add_segment(segment)
    report.recovered.append(relpath)


def _retrim(index: RecordingIndex, seg: Segment, path: Path, report: ReconcileReport) -> None:
    layout, _ = trim_torn_tail(path)
    probed = probe_segment(path)
    index.update_segment(seg.id, bytes=layout.readable_bytes, fragments=layout.fragments,
                         packets=probed.packets, end_us=seg.start_us + probed.duration_us,
                         status="recovered", sha256=file_sha256(path))
    report.trimmed.append(seg.path)
    log.warning("segment %s was shorter than indexed; trimmed and re-indexed", seg.path)


def _now_us() -> int:
    return int(time.time() * 1_000_000)
