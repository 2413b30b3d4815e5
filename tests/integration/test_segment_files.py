"""SegmentWriter and fMP4 trimming against real PyAV output (no mocks)."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import av
import pytest

from appliance.recorder.fmp4 import inspect, trim_torn_tail, walk_boxes
from appliance.recorder.segmenter import SegmentWriter, parse_segment_name, segment_relpath


def write_segment(clip: Path, data_dir: Path, durable: list) -> Path:
    """Copy a clip's packets into one segment, as the ingest loop does."""
    relpath = segment_relpath("cam1", 1_795_000_000_123_000, 7)
    with av.open(str(clip)) as src:
        video, audio = src.streams.video[0], src.streams.audio[0]
        writer = SegmentWriter(data_dir, relpath, video, audio, 1,
                               lambda path, size, frags: durable.append((size, frags)))
        for packet in src.demux(video, audio):
            if packet.dts is None:
                continue
            if packet.stream is video:
                writer.write_video(packet, packet.dts, packet.pts, packet.duration)
            else:
                writer.write_audio(packet, packet.dts, packet.pts, packet.duration)
        closed = writer.close()
    assert closed.bytes == (data_dir / relpath).stat().st_size
    return data_dir / relpath


def ffprobe_packets(path: Path) -> int:
    out = subprocess.run(["ffprobe", "-v", "error", "-count_packets", "-select_streams", "v:0",
                          "-show_entries", "stream=nb_read_packets", "-of", "json", str(path)],
                         capture_output=True, text=True, timeout=30, check=True)
    return int(json.loads(out.stdout)["streams"][0]["nb_read_packets"])


def test_names_sort_by_time_and_parse_back():
    rel = segment_relpath("cam1", 1_795_000_000_123_000, 42)
    assert rel == "recordings/cam1/2026-11-18/11/20261118T110640.123Z-000042.mp4"
    assert parse_segment_name(Path(rel).name) == (1_795_000_000_123_000, 42)
    assert parse_segment_name("notes.txt") is None
    assert parse_segment_name("20261118T074640.123Z-x.mp4") is None


def test_every_durable_offset_is_a_fragment_boundary(small_clip, tmp_path):
    durable: list = []
    path = write_segment(small_clip, tmp_path, durable)
    layout = inspect(path)
    assert layout.finished and not layout.torn
    assert layout.fragments == 6  # one fragment per 1 s GOP
    sizes = [size for size, _ in durable]
    assert sizes == sorted(sizes) and sizes[-1] == layout.file_bytes
    # Each durable size, as a file of its own, is whole fragments and nothing torn.
    data = path.read_bytes()
    for size, frags in durable[:-1]:
        cut = tmp_path / f"cut{size}.mp4"
        cut.write_bytes(data[:size])
        assert inspect(cut).readable_bytes == size
        assert inspect(cut).fragments == frags
    assert ffprobe_packets(path) == 150


def test_a_file_cut_anywhere_trims_back_to_its_last_whole_fragment(small_clip, tmp_path):
    durable: list = []
    path = write_segment(small_clip, tmp_path, durable)
    data = path.read_bytes()
    with open(path, "rb") as fh:
        boundaries = [box.end for box in walk_boxes(fh, len(data)) if box.kind == "mdat"]
    assert {size for size, _ in durable[:-1]} <= set(boundaries)
    rng = random.Random(11)
    for cut_at in [rng.randrange(1, len(data)) for _ in range(25)] + [b + 1 for b in boundaries]:
        torn = tmp_path / "torn.mp4"
        torn.write_bytes(data[:cut_at])
        layout, cut = trim_torn_tail(torn)
        assert cut == cut_at - layout.file_bytes
        expected = max([b for b in boundaries if b <= cut_at], default=0)
        if not layout.has_init:
            assert cut_at < boundaries[0]
            continue
        assert torn.stat().st_size == layout.readable_bytes
        if expected:
            assert layout.readable_bytes == expected
            assert ffprobe_packets(torn) == 25 * layout.fragments


def test_trim_leaves_a_complete_file_alone(small_clip, tmp_path):
    path = write_segment(small_clip, tmp_path, [])
    before = path.read_bytes()
    assert trim_torn_tail(path)[1] == 0
    assert path.read_bytes() == before


def test_segment_files_are_never_overwritten(small_clip, tmp_path):
    write_segment(small_clip, tmp_path, [])
    with pytest.raises(FileExistsError):
        write_segment(small_clip, tmp_path, [])


@pytest.mark.parametrize("audio", ["pcm_mulaw", "pcm_alaw"])
def test_g711_audio_is_copied_into_a_quicktime_brand_file(audio, tmp_path):
    from hw.camsim.clips import ensure_clip

    from tests.integration.conftest import CACHE

    clip = ensure_clip(CACHE, codec="h264", audio=audio, seconds=4, width=320, height=240,
                       fps=25, bitrate_kbps=300, gop=25)
    relpath = segment_relpath("cam1", 1_795_000_000_000_000, 1)
    with av.open(str(clip)) as src:
        video, sound = src.streams.video[0], src.streams.audio[0]
        writer = SegmentWriter(tmp_path, relpath, video, sound, 1)
        for packet in src.demux(video, sound):
            if packet.dts is None:
                continue
            write = writer.write_video if packet.stream is video else writer.write_audio
            write(packet, packet.dts, packet.pts, packet.duration)
        writer.close()
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name",
                          "-of", "csv=p=0", str(tmp_path / relpath)],
                         capture_output=True, text=True, timeout=30, check=True).stdout.split()
    assert out == ["h264", audio]
    assert shutil.which("ffprobe")
