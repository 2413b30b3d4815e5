"""Replacing several files in several directories as one step that a power cut cannot
leave half done.

1. Stage: every new file is written (and fsynced) into `.vigil-restore/` inside its
   target directory, so the final rename stays on one filesystem.
2. Commit: the journal (which files go where, which are removed) is written atomically.
   This is the commit point.
3. Apply: renames and removals, an fsync of each directory, then the staging
   directories and the journal are removed.

`recover` runs at start (vigil-hwd, `nvr system apply`): with a journal it finishes
step 3 (every step can be repeated); without one it drops staged files that never got
committed. Either way the files are all old or all new.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from appliance.core.errors import DataLoss
from appliance.core.files import atomic_write, fsync_dir

log = logging.getLogger(__name__)

STAGING = ".vigil-restore"
JOURNAL_VERSION = 1


def _write_synced(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


class Transaction:
    def __init__(self, journal: Path) -> None:
        self.journal = Path(journal)
        self._plan: dict[str, dict[str, dict]] = {}

    def put(self, directory: Path, name: str, data: bytes, mode: int = 0o644) -> None:
        self._check(name)
        staging = Path(directory) / STAGING
        staging.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_synced(staging / name, data, mode)
        self._plan.setdefault(str(directory), {})[name] = {"action": "put"}

    def remove(self, directory: Path, name: str) -> None:
        self._check(name)
        self._plan.setdefault(str(directory), {})[name] = {"action": "remove"}

    @staticmethod
    def _check(name: str) -> None:
        if "/" in name or name in ("", ".", "..", STAGING):
            raise ValueError(f"{name!r} is not a file name")

    def commit(self) -> None:
        for directory in self._plan:
            staging = Path(directory) / STAGING
            if staging.is_dir():
                fsync_dir(staging)
        atomic_write(self.journal, json.dumps({"version": JOURNAL_VERSION,
                                               "dirs": self._plan}).encode(), mode=0o600)
        _finish(self.journal, self._plan)

    def abandon(self) -> None:
        for directory in self._plan:
            shutil.rmtree(Path(directory) / STAGING, ignore_errors=True)
        self._plan = {}


def _finish(journal: Path, plan: dict[str, dict[str, dict]]) -> None:
    for directory, files in plan.items():
        target = Path(directory)
        staging = target / STAGING
        for name, step in files.items():
            if step.get("action") == "put":
                if (staging / name).exists():
                    os.replace(staging / name, target / name)
            else:
                (target / name).unlink(missing_ok=True)
        fsync_dir(target)
        shutil.rmtree(staging, ignore_errors=True)
    journal.unlink(missing_ok=True)
    fsync_dir(journal.parent)


def recover(journal: Path, directories: list[Path]) -> bool:
    """Finish a committed transaction (True) or drop an uncommitted one (False)."""
    journal = Path(journal)
    try:
        text = journal.read_text(encoding="utf-8")
    except FileNotFoundError:
        for directory in directories:
            if (Path(directory) / STAGING).exists():
                log.warning("dropping an uncommitted restore in %s", directory)
                shutil.rmtree(Path(directory) / STAGING, ignore_errors=True)
        return False
    try:
        doc = json.loads(text)
        plan = doc["dirs"]
        if doc.get("version") != JOURNAL_VERSION or not isinstance(plan, dict):
            raise ValueError("version")
    except (ValueError, KeyError, TypeError) as exc:
        raise DataLoss(f"{journal}: the restore journal is damaged ({exc}); the files of "
                       "an interrupted restore are left as they are") from None
    log.warning("finishing a restore that was interrupted (journal %s)", journal)
    _finish(journal, plan)
    return True
