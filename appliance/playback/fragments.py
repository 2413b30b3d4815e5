"""Where each fragment of a segment file lies, and when it starts (for HLS byte ranges).

Our segments are `ftyp moov (moof mdat)* [mfra]`; one fragment per GOP. HLS can play
them as they are: the init section (ftyp+moov) and each moof+mdat as a byte range, so
playback needs no re-muxing and no temporary files. The start of each fragment is the
video track's `tfdt` (baseMediaDecodeTime) in the `mdhd` time scale.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from appliance.recorder.fmp4 import walk_boxes

U32 = struct.Struct(">I")
U64 = struct.Struct(">Q")


@dataclass(frozen=True)
class DecodeTime:
    """One track's `tfdt` in a fragment: where its 64-bit value sits in the file."""

    track_id: int
    offset: int   # absolute file offset of the value
    value: int


@dataclass(frozen=True)
class Fragment:
    offset: int
    size: int
    start: int  # video decode time, in `timescale` units
    decode_times: tuple[DecodeTime, ...] = ()


@dataclass(frozen=True)
class FragmentIndex:
    init_size: int          # ftyp + moov, from offset 0
    timescale: int
    fragments: tuple[Fragment, ...]
    timescales: tuple[tuple[int, int], ...] = ()  # (track_id, timescale) of every track

    def fragment_at(self, offset: int, size: int) -> Fragment | None:
        for frag in self.fragments:
            if frag.offset == offset and frag.size == size:
                return frag
        return None

    def rebased(self, frag: Fragment, data: bytes, start_us: int, epoch_us: int) -> bytes:
        """The fragment's bytes with every track's decode time moved so that the file's
        first video frame is at `start_us` on a timeline starting at `epoch_us`: every
        segment of a camera then continues the previous one (players that join files by
        timestamps, such as ffmpeg's HLS reader, see no jump back at a file boundary)."""
        origin_s = self.fragments[0].start / self.timescale
        scales = dict(self.timescales)
        out = bytearray(data)
        for dt in frag.decode_times:
            scale = scales.get(dt.track_id)
            if scale is None:
                continue
            base = (start_us - epoch_us) * scale // 1_000_000
            value = dt.value - round(origin_s * scale) + base
            if value < 0:
                return data  # not representable: serve the file as it is
            U64.pack_into(out, dt.offset - frag.offset, value)
        return bytes(out)


def _children(data: bytes, start: int = 0, end: int | None = None):
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = U32.unpack_from(data, pos)[0], data[pos + 4:pos + 8].decode("latin-1")
        header = 8
        if size == 1:
            size, header = U64.unpack_from(data, pos + 8)[0], 16
        if size < header or pos + size > end:
            return
        yield kind, pos + header, pos + size
        pos += size


def _find(data: bytes, start: int, end: int, kind: str):
    for k, body, stop in _children(data, start, end):
        if k == kind:
            return body, stop
    return None


def _track_scales(moov: bytes) -> tuple[tuple[int, int], ...]:
    """(track_id, mdhd time scale) of every track."""
    found = []
    for kind, body, stop in _children(moov):
        if kind != "trak":
            continue
        tkhd, mdia = _find(moov, body, stop, "tkhd"), _find(moov, body, stop, "mdia")
        mdhd = _find(moov, *mdia, "mdhd") if mdia else None
        if tkhd is None or mdhd is None:
            continue
        track_id = U32.unpack_from(moov, tkhd[0] + (20 if moov[tkhd[0]] == 1 else 12))[0]
        scale = U32.unpack_from(moov, mdhd[0] + (20 if moov[mdhd[0]] == 1 else 12))[0]
        found.append((track_id, scale))
    return tuple(found)


def _decode_times(moof: bytes, moof_offset: int) -> tuple[DecodeTime, ...]:
    """Every 64-bit tfdt in a moof (given without its 8-byte header)."""
    times = []
    for kind, body, stop in _children(moof):
        if kind != "traf":
            continue
        tfhd, tfdt = _find(moof, body, stop, "tfhd"), _find(moof, body, stop, "tfdt")
        if tfhd is None or tfdt is None or moof[tfdt[0]] != 1:
            continue  # version 0 (32-bit) cannot take a wall-clock time: left alone
        times.append(DecodeTime(U32.unpack_from(moof, tfhd[0] + 4)[0],
                                moof_offset + 8 + tfdt[0] + 4,
                                U64.unpack_from(moof, tfdt[0] + 4)[0]))
    return tuple(times)


def _video_track(moov: bytes) -> tuple[int, int]:
    """(track_ID, timescale) of the video track."""
    for kind, body, stop in _children(moov):
        if kind != "trak":
            continue
        tkhd, mdia = _find(moov, body, stop, "tkhd"), _find(moov, body, stop, "mdia")
        if tkhd is None or mdia is None:
            continue
        hdlr, mdhd = _find(moov, *mdia, "hdlr"), _find(moov, *mdia, "mdhd")
        if hdlr is None or mdhd is None or moov[hdlr[0] + 8:hdlr[0] + 12] != b"vide":
            continue
        v1 = moov[tkhd[0]] == 1
        track_id = U32.unpack_from(moov, tkhd[0] + (20 if v1 else 12))[0]
        timescale = U32.unpack_from(moov, mdhd[0] + (20 if moov[mdhd[0]] == 1 else 12))[0]
        return track_id, timescale
    raise ValueError("no video track in the segment")


def _fragment_start(moof: bytes, track_id: int) -> int | None:
    for kind, body, stop in _children(moof):
        if kind != "traf":
            continue
        tfhd, tfdt = _find(moof, body, stop, "tfhd"), _find(moof, body, stop, "tfdt")
        if tfhd is None or tfdt is None or U32.unpack_from(moof, tfhd[0] + 4)[0] != track_id:
            continue
        if moof[tfdt[0]] == 1:
            return U64.unpack_from(moof, tfdt[0] + 4)[0]
        return U32.unpack_from(moof, tfdt[0] + 4)[0]
    return None


def fragment_index(path: Path) -> FragmentIndex:
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        boxes = walk_boxes(fh, size)
        if len(boxes) < 2 or boxes[0].kind != "ftyp" or boxes[1].kind != "moov":
            raise ValueError(f"{path.name} does not start with ftyp+moov")
        fh.seek(boxes[1].offset)
        moov = fh.read(boxes[1].size)[8:]
        track_id, timescale = _video_track(moov)
        fragments = []
        for moof, mdat in zip(boxes[2::2], boxes[3::2]):
            if moof.kind != "moof" or mdat.kind != "mdat":
                break
            fh.seek(moof.offset)
            body = fh.read(moof.size)[8:]
            start = _fragment_start(body, track_id)
            if start is None:
                continue  # an audio-only fragment: belongs with its neighbour
            fragments.append(Fragment(moof.offset, mdat.end - moof.offset, start,
                                      _decode_times(body, moof.offset)))
    return FragmentIndex(boxes[1].end, timescale, tuple(fragments), _track_scales(moov))
