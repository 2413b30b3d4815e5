"""The owner's settings files beside the appliance TOML (retention.json, recording.json):
JSON with a format number, read strictly, written atomically, watched by one `stat`.

The web UI writes them; the recorder re-reads one when its size or modification time
changes, so a change applies without a restart. A damaged file is DataLoss with the path
and the reason; the reader keeps what it had.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar

from appliance.core.errors import DataLoss, InvalidConfig
from appliance.core.files import atomic_write

T = TypeVar("T")


def read_owner_file(path: Path, what: str, fmt: int) -> dict[str, Any] | None:
    """The file's JSON object; None when there is no file; DataLoss when it is damaged or
    of another format. `what` names it for the owner ("the retention settings")."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise DataLoss(f"{path}: {what} cannot be read ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise DataLoss(f"{path}: not a file of {what} of format {fmt}")
    return data


def checked(path: Path, what: str, check: Callable[[], T]) -> T:
    """`check()` (which validates what was read), a damaged file's InvalidConfig turned
    into DataLoss naming the file."""
    try:
        return check()
    except InvalidConfig as exc:
        raise DataLoss(f"{path}: {what} are damaged ({exc})") from None


def write_owner_file(path: Path, data: dict[str, Any]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(data, indent=1).encode(), mode=0o644)


class WatchedFile(Generic[T]):
    """Re-reads the file when its size or modification time changes (one `stat`)."""

    def __init__(self, path: Path, load: Callable[[Path], T]) -> None:
        self.path = Path(path)
        self._load = load
        self._seen: tuple[int, int] | None = None

    def changed(self) -> T | None:
        """The file's contents if it changed since the last call (what `load` gives for a
        missing file when it was removed), else None. DataLoss when it cannot be read;
        the next call tries again only after the file changes once more."""
        try:
            st = os.stat(self.path)
            signature = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            signature = (0, -1)
        if signature == self._seen:
            return None
        self._seen = signature
        return self._load(self.path)
