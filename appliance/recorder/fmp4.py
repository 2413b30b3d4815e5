"""Top-level box structure of our fragmented MP4 files, and trimming of a torn tail.

A segment is `ftyp moov (moof mdat)* [mfra]`. After a crash the file ends somewhere
inside the fragment being written; everything up to the last complete `moof`+`mdat`
pair is playable. This module finds that point by reading only box headers.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

HEADER = struct.Struct(">I4s")
LARGE = struct.Struct(">Q")


@dataclass(frozen=True)
class Box:
    kind: str
    offset: int
    size: int

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True)
class Layout:
    """What is readable in a file: `readable_bytes` covers ftyp, moov and whole fragments."""

    file_bytes: int
    readable_bytes: int
    fragments: int
    has_init: bool
    finished: bool  # closed normally (mfra written)

    @property
    def torn(self) -> bool:
        return self.readable_bytes < self.file_bytes


def walk_boxes(fh, file_bytes: int) -> list[Box]:
    """Top-level boxes that lie entirely inside the file; stops at the first torn one."""
    boxes = []
    offset = 0
    while offset + HEADER.size <= file_bytes:
        fh.seek(offset)
        size, kind = HEADER.unpack(fh.read(HEADER.size))
        header = HEADER.size
        if size == 1:
            raw = fh.read(LARGE.size)
            if len(raw) < LARGE.size:
                break
            size = LARGE.unpack(raw)[0]
            header += LARGE.size
        elif size == 0:  # "to the end of the file": only legal for a last box we never write
            size = file_bytes - offset
        if size < header or offset + size > file_bytes:
            break
        boxes.append(Box(kind.decode("latin-1"), offset, size))
        offset += size
    return boxes


def inspect(path: Path) -> Layout:
    with open(path, "rb") as fh:
        file_bytes = os.fstat(fh.fileno()).st_size
        boxes = walk_boxes(fh, file_bytes)
    kinds = [b.kind for b in boxes]
    has_init = len(kinds) >= 2 and kinds[0] == "ftyp" and kinds[1] == "moov"
    if not has_init:
        return Layout(file_bytes, 0, 0, False, False)
    readable = boxes[1].end
    fragments = 0
    i = 2
    while i + 1 < len(boxes) and boxes[i].kind == "moof" and boxes[i + 1].kind == "mdat":
        readable = boxes[i + 1].end
        fragments += 1
        i += 2
    finished = i < len(boxes) and boxes[i].kind == "mfra" and boxes[i].end == file_bytes
    if finished:
        readable = file_bytes
    return Layout(file_bytes, readable, fragments, True, finished)


def trim_torn_tail(path: Path) -> tuple[Layout, int]:
    """Cut a file back to its readable prefix, durably; (the new layout, bytes cut off)."""
    layout = inspect(path)
    if not (layout.torn and layout.has_init):
        return layout, 0
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, layout.readable_bytes)
        os.fsync(fd)
    finally:
        os.close(fd)
    return inspect(path), layout.file_bytes - layout.readable_bytes
