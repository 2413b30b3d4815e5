"""Small-file durability: the one place that writes a file so a power cut leaves either
the old or the new version (temp file in the same directory, fsync, rename over it,
fsync the directory), and that fsyncs a directory entry."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o644, durable: bool = True) -> None:
    """Replace `path` with `data`. `durable=False` skips the fsyncs (for files in RAM, such
    as status snapshots under /run, which only need readers never to see half a file)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # an old temp file may have had other bits
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if durable:
        fsync_dir(path.parent)


def read_fresh_json(path: Path, max_age: float) -> dict[str, Any] | None:
    """A JSON status file another process writes, if its `time` is recent enough."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    try:
        fresh = time.time() - float(data.get("time", 0)) <= max_age
    except (AttributeError, TypeError, ValueError):
        return None
    return data if fresh else None
