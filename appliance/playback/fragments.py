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
class Fragment:
    offset: int
    size: int
    start: int  # video decode time, in `timescale` units


@dataclass(frozen=True)
class FragmentIndex:
    init_size: int          # ftyp + moov, from offset 0
    timescale: int
    fragments: tuple[Fragment, ...]


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
        track_id, timescale = _video_track(fh.read(boxes[1].size)[8:])
        fragments = []
        for moof, mdat in zip(boxes[2::2], boxes[3::2]):
            if moof.kind != "moof" or mdat.kind != "mdat":
                break
            fh.seek(moof.offset)
            start = _fragment_start(fh.read(moof.size)[8:], track_id)
            if start is None:
                continue  # an audio-only fragment: belongs with its neighbour
            fragments.append(Fragment(moof.offset, mdat.end - moof.offset, start))
    return FragmentIndex(boxes[1].end, timescale, tuple(fragments))
