"""Crash-safe deletion of segments, each with its audit entry.

Order: (1) an audit row in state `pending` names the file and the rule; (2) the file is
unlinked and its directory synced; (3) one transaction drops the segment row and marks
the audit row `done`. A crash after (1) or (2) leaves a pending row that start-up
reconciliation finishes (`finish_pending`), whether or not the file was already gone;
the segment is never mistaken for a lost file, and never half-deleted.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from appliance.recorder.index import RecordingIndex, Segment
from appliance.core.files import fsync_dir

log = logging.getLogger(__name__)


def delete_segment(data_dir: Path, index: RecordingIndex, seg: Segment, rule: str,
                   detail: str, now_us: int) -> None:
    deletion_id = index.begin_deletion(seg, rule, detail, now_us)
    _unlink(data_dir, seg.path)
    index.finish_deletion(deletion_id, seg.path)
    log.info("deleted %s (%s: %s, %d bytes)", seg.path, rule, detail, seg.bytes)


def finish_pending(data_dir: Path, index: RecordingIndex) -> list[str]:
    """Complete deletions a crash interrupted; returns their paths."""
    done = []
    for deletion in index.pending_deletions():
        _unlink(data_dir, deletion.path)
        index.finish_deletion(deletion.id, deletion.path)
        done.append(deletion.path)
        log.warning("finished an interrupted deletion of %s (%s)", deletion.path, deletion.rule)
    return done


def _unlink(data_dir: Path, relpath: str) -> None:
    path = Path(data_dir) / relpath
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    else:
        fsync_dir(path.parent)
    _prune_empty_dirs(path.parent, Path(data_dir) / "recordings")


def _prune_empty_dirs(directory: Path, stop_at: Path) -> None:
    """Remove the hour and day directories a deletion emptied (never the camera's own)."""
    depth = len(directory.relative_to(stop_at).parts) if directory.is_relative_to(stop_at) else 0
    while depth > 1:  # recordings/<camera>/<day>/<hour>: stop at <camera>
        try:
            os.rmdir(directory)
        except OSError:
            return  # not empty (or already gone)
        fsync_dir(directory.parent)
        directory, depth = directory.parent, depth - 1
