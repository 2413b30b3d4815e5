"""Where the box's events come from, read with cursors: nothing here writes another
subsystem's store (DESIGN.md: each table has one writer).

* The recorder's index (read-only connection): `gaps` (opened, and closed later: the
  open ones are followed by id), `events` (the cameras' own detection), `alerts` (camera
  offline, licence, retention, recording settings), `deletions` (the retention audit;
  reported when done, one event per camera and rule per poll) and `camera_status`
  (online / offline / auth failed, compared with the states last seen).
* vigil-hwd's alert log (`alerts.jsonl` in its state directory: disks, RAID, SMART, PoE),
  read from a byte offset, following its rotation to `.1`.

A source is anything with a `key` and `poll(cursor, now_us) -> (events, cursor)`; the
cursor is plain JSON, stored by the queue in the same transaction as the events.
Issue 13 (updates) adds its results the same way: a source that reads the update
service's result file and returns `update_succeeded` / `update_failed` events, appended
to the list in `default_sources` (docs/design/mqtt.md, "Adding a source").

The first time a source sees its store (no cursor, or another index file), it reports
only the last LOOK_BACK_S seconds: a disk brought from another box does not replay its
history, and what the recorder did while this daemon was starting is not lost.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Protocol

from appliance.core.errors import DataLoss
from appliance.mqtt.events import BoxEvent, alert_kind
from appliance.recorder.index import INDEX_NAME, GapCause, RecordingIndex

log = logging.getLogger(__name__)

LOOK_BACK_S = 600
STATUS_STALE_S = 30      # the recorder writes statuses every 2 s; silence this long: no status
BATCH = 2000             # rows per table per poll (a large retention pass takes a few polls)
TRACKED_MAX = 1000       # open gaps/events (and pending deletions) followed for their end
READ_MAX = 4 << 20       # bytes of the alert log per poll (more than a rotated file holds)
QUIET_GAP_CAUSES = frozenset({GapCause.NO_EVENT})   # events-only mode's trimmed spans
TRANSIENT_STATES = frozenset({"connecting", "waiting_keyframe"})
NO_STATUS = "no_status"
ALERTS_NAME = "alerts.jsonl"   # appliance/storage/monitor.py's log


class Source(Protocol):
    key: str

    def poll(self, cursor: Any, now_us: int) -> tuple[list[BoxEvent], Any]:
        """New events since `cursor` and the cursor after them."""


def default_sources(data_dir: Path, hwd_state: Path | None) -> list[Source]:
    sources: list[Source] = [IndexSource(data_dir)]
    if hwd_state is not None:
        sources.append(HwdAlertSource(hwd_state))
    return sources


# --- the recorder's index --------------------------------------------------------------
class IndexSource:
    key = "recorder_index"

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self._index: RecordingIndex | None = None
        self._identity: int | None = None

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
        self._index, self._identity = None, None

    def _open(self) -> RecordingIndex | None:
        """The index, reopened when its file is another one (a new data disk)."""
        try:
            identity = os.stat(self.data_dir / INDEX_NAME).st_ino
        except OSError:
            self.close()
            return None
        if self._index is None or identity != self._identity:
            self.close()
            try:
                self._index = RecordingIndex(self.data_dir, readonly=True)
            except DataLoss:
                return None
            self._identity = identity
        return self._index

    def poll(self, cursor: Any, now_us: int) -> tuple[list[BoxEvent], Any]:
        index = self._open()
        if index is None:
            return [], cursor
        try:
            if not cursor or cursor.get("identity") != self._identity:
                cursor = first_sight(index, self._identity, now_us)
            cursor = json.loads(json.dumps(cursor))   # a copy: the old one stays if we fail
            events = (gap_events(index, cursor) + camera_events(index, cursor) +
                      recorder_alerts(index, cursor) + deletion_events(index, cursor) +
                      status_events(index, cursor, now_us))
        except Exception:
            self.close()   # e.g. the disk went away: reopen next time
            raise
        return events, cursor


def first_sight(index: RecordingIndex, identity: int | None, now_us: int) -> dict[str, Any]:
    """Cursors for an index seen for the first time: just before its last LOOK_BACK_S
    seconds; the cameras' states as they are now (no event for them)."""
    since = now_us - LOOK_BACK_S * 1_000_000

    def last_id_before(table: str, column: str) -> int:
        rows = index.query(f"SELECT COALESCE(MAX(id), 0) AS m FROM {table} WHERE {column} < ?",
                           (since,))
        return rows[0]["m"]

    states = {camera: state_class(current_state(status, now_us))
              for camera, status in index.statuses().items()}
    return {"identity": identity,
            "gaps": last_id_before("gaps", "start_us"), "open_gaps": [],
            "events": last_id_before("events", "start_us"), "open_events": [],
            "alerts": last_id_before("alerts", "time_us"),
            "deletions": last_id_before("deletions", "time_us"), "pending_deletions": [],
            "cameras": {camera: cls for camera, cls in states.items() if cls}}


def followed(ids: list[int]) -> list[int]:
    """The newest TRACKED_MAX ids (an end that never comes must not grow the cursor)."""
    return sorted(ids)[-TRACKED_MAX:]


def rows_by_id(index: RecordingIndex, sql: str, ids: list[int]) -> list:
    if not ids:
        return []
    marks = ",".join("?" for _ in ids)
    return index.query(sql.format(ids=marks), tuple(ids))


def gap_events(index: RecordingIndex, cursor: dict[str, Any]) -> list[BoxEvent]:
    events = []
    still_open = []
    for row in rows_by_id(index, "SELECT * FROM gaps WHERE id IN ({ids}) ORDER BY id",
                          cursor["open_gaps"]):
        if row["end_us"] is None:
            still_open.append(row["id"])
        else:
            events.append(gap_closed(row))
    for row in index.query("SELECT * FROM gaps WHERE id > ? ORDER BY id LIMIT ?",
                           (cursor["gaps"], BATCH)):
        cursor["gaps"] = row["id"]
        if row["cause"] in QUIET_GAP_CAUSES:
            continue
        events.append(gap_opened(row))
        if row["end_us"] is None:
            still_open.append(row["id"])
        else:
            events.append(gap_closed(row))
    cursor["open_gaps"] = followed(still_open)
    return events


def gap_opened(row) -> BoxEvent:
    return BoxEvent("gap_opened", row["start_us"], f"gap:{row['id']}:opened", row["camera"],
                    row["cause"], row["detail"], {"gap_id": row["id"],
                                                  "start_us": row["start_us"]})


def gap_closed(row) -> BoxEvent:
    return BoxEvent("gap_closed", row["end_us"], f"gap:{row['id']}:closed", row["camera"],
                    row["cause"], row["detail"],
                    {"gap_id": row["id"], "start_us": row["start_us"], "end_us": row["end_us"],
                     "duration_s": round((row["end_us"] - row["start_us"]) / 1e6, 3)})


def camera_events(index: RecordingIndex, cursor: dict[str, Any]) -> list[BoxEvent]:
    events = []
    still_open = []
    for row in rows_by_id(index, "SELECT * FROM events WHERE id IN ({ids}) ORDER BY id",
                          cursor["open_events"]):
        if row["end_us"] is None:
            still_open.append(row["id"])
        else:
            events.append(detection(row, "ended"))
    for row in index.query("SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?",
                           (cursor["events"], BATCH)):
        cursor["events"] = row["id"]
        if row["end_us"] is not None and row["end_us"] == row["start_us"]:
            events.append(detection(row, "instant"))
            continue
        events.append(detection(row, "started"))
        if row["end_us"] is None:
            still_open.append(row["id"])
        else:
            events.append(detection(row, "ended"))
    cursor["open_events"] = followed(still_open)
    return events


def detection(row, state: str) -> BoxEvent:
    """A camera's own event (motion, tamper, line crossing, intrusion, input, other)."""
    time_us = row["end_us"] if state == "ended" else row["start_us"]
    extra = {"event": row["kind"], "state": state, "event_id": row["id"],
             "topic": row["topic"], "start_us": row["start_us"]}
    if row["end_us"] is not None:
        extra["end_us"] = row["end_us"]
    return BoxEvent("camera_event", time_us, f"event:{row['id']}:{state}", row["camera"],
                    row["kind"], row["detail"], extra)


def recorder_alerts(index: RecordingIndex, cursor: dict[str, Any]) -> list[BoxEvent]:
    events = []
    for row in index.query("SELECT * FROM alerts WHERE id > ? ORDER BY id LIMIT ?",
                           (cursor["alerts"], BATCH)):
        cursor["alerts"] = row["id"]
        events.append(alert_event(f"r{row['id']}", row["time_us"], row["severity"],
                                  row["source"], row["message"]))
    return events


def alert_event(alert_id: str, time_us: int, severity: str, source: str,
                message: str) -> BoxEvent:
    """`alert_id` is the web API's id for the same alert (r<row> or h<hash>), so an
    automation can link to it or acknowledge it there."""
    camera = source.split(":", 1)[1] if source.startswith("camera:") else None
    return BoxEvent(alert_kind(source), time_us, f"alert:{alert_id}", camera, source, message,
                    {"severity": severity, "source": source, "active": severity != "info",
                     "alert_id": alert_id})


def deletion_events(index: RecordingIndex, cursor: dict[str, Any]) -> list[BoxEvent]:
    """Deletions once done (the audit row is written first, the file removed after), one
    event per camera and rule with the segments' count, bytes and recorded span."""
    done = []
    pending = []
    for row in rows_by_id(index, "SELECT * FROM deletions WHERE id IN ({ids}) ORDER BY id",
                          cursor["pending_deletions"]):
        (done if row["state"] == "done" else pending).append(row)
    for row in index.query("SELECT * FROM deletions WHERE id > ? ORDER BY id LIMIT ?",
                           (cursor["deletions"], BATCH)):
        cursor["deletions"] = row["id"]
        (done if row["state"] == "done" else pending).append(row)
    cursor["pending_deletions"] = followed([row["id"] for row in pending])
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for row in done:
        groups[(row["camera"], row["rule"])].append(row)
    return [deletion_summary(camera, rule, rows) for (camera, rule), rows in groups.items()]


def deletion_summary(camera: str, rule: str, rows: list) -> BoxEvent:
    ids = [row["id"] for row in rows]
    count = len(rows)
    return BoxEvent("retention_deletion", max(row["time_us"] for row in rows),
                    f"deletion:{min(ids)}-{max(ids)}:{camera}:{rule}", camera, rule,
                    f"{count} segment{'s' if count != 1 else ''} deleted ({rule})",
                    {"rule": rule, "segments": count, "bytes": sum(row["bytes"] for row in rows),
                     "from_us": min(row["start_us"] for row in rows),
                     "to_us": max(row["end_us"] for row in rows)})


def current_state(status: dict[str, Any], now_us: int) -> str:
    """The camera's state, or no_status when the recorder has stopped reporting."""
    if now_us - int(status.get("heartbeat_us", 0)) > STATUS_STALE_S * 1_000_000:
        return NO_STATUS
    return str(status.get("state", ""))


def state_class(state: str) -> str | None:
    """online, auth_failed or offline; None for a passing state (connecting)."""
    if state in TRANSIENT_STATES:
        return None
    if state == "recording":
        return "online"
    return "auth_failed" if state == "auth_failed" else "offline"


def status_events(index: RecordingIndex, cursor: dict[str, Any], now_us: int) -> list[BoxEvent]:
    events = []
    known = cursor["cameras"]
    for camera, status in index.statuses().items():
        state = current_state(status, now_us)
        cls = state_class(state)
        if cls is None or cls == known.get(camera):
            continue
        previous = known.get(camera)
        known[camera] = cls
        time_us = now_us if state == NO_STATUS else int(status["heartbeat_us"])
        detail = (f"the recorder has not reported for more than {STATUS_STALE_S} s"
                  if state == NO_STATUS else status.get("detail", ""))
        kind = {"online": "camera_online", "auth_failed": "camera_auth_failed"}.get(
            cls, "camera_offline")
        events.append(BoxEvent(kind, time_us, f"camera:{camera}:{kind}:{time_us}", camera,
                               state, detail, {"state": state, "previous": previous}))
    return events


# --- vigil-hwd's alert log ---------------------------------------------------------------
class HwdAlertSource:
    """alerts.jsonl read from a byte offset. The log is rotated by renaming it to `.1`
    (os.replace) and starting a new one, so the cursor names its file by inode: the rest
    of the renamed file is read before the new one. An inode number is reused once its
    file is gone, so a file is known by its inode and the hash of its first line. When
    `.1` is not the cursor's file either (two rotations while this daemon was down, a
    state directory made afresh), both files are newer than anything reported and are
    read whole. At the first start (no file known yet) only the last LOOK_BACK_S seconds
    are reported."""

    key = "hwd_alerts"

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / ALERTS_NAME

    def poll(self, cursor: Any, now_us: int) -> tuple[list[BoxEvent], Any]:
        if not cursor:
            cursor = {"inode": 0, "offset": 0, "head": "", "since": now_us / 1e6 - LOOK_BACK_S}
        cursor = dict(cursor)
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            return [], cursor
        events: list[BoxEvent] = []
        if not same_file(self.path, current, cursor):
            events += self._rotated(cursor)
            cursor.update(inode=current.st_ino, offset=0, head="")
        elif current.st_size < cursor["offset"]:   # cut short by hand: start again
            cursor["offset"] = 0
        if not cursor["head"]:
            cursor["head"] = first_line_hash(self.path)
        events += self._read(self.path, cursor)
        cursor.pop("since", None)   # a file is known from now on
        return events, cursor

    def _rotated(self, cursor: dict[str, Any]) -> list[BoxEvent]:
        """What is left of the cursor's file, renamed to `.1`; all of `.1` if it is
        another file."""
        rotated = self.path.with_name(self.path.name + ".1")
        try:
            follows = same_file(rotated, os.stat(rotated), cursor)
        except FileNotFoundError:
            return []
        if not follows:
            cursor["offset"] = 0
        return self._read(rotated, cursor)

    def _read(self, path: Path, cursor: dict[str, Any]) -> list[BoxEvent]:
        """Whole lines from the cursor's offset (a line being written waits for its
        newline); at the first start, only those after the cursor's `since`."""
        try:
            with open(path, "rb") as log_file:
                log_file.seek(cursor["offset"])
                data = log_file.read(READ_MAX)
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        cursor["offset"] += end
        since = cursor.get("since")
        return [event for event in map(hwd_alert, data[:end].splitlines())
                if event is not None and (since is None or event.time_us / 1e6 > since)]


def first_line_hash(path: Path) -> str:
    """The file's fingerprint; "" while its first line is not whole yet."""
    try:
        with open(path, "rb") as log_file:
            line = log_file.readline(4096)
    except FileNotFoundError:
        return ""
    return hashlib.sha256(line).hexdigest()[:16] if line.endswith(b"\n") else ""


def same_file(path: Path, st: os.stat_result, cursor: dict[str, Any]) -> bool:
    """The cursor's file (a cursor taken before the first line was whole: by inode)."""
    head = cursor.get("head", "")
    return st.st_ino == cursor["inode"] and (not head or first_line_hash(path) == head)


def hwd_alert(line: bytes) -> BoxEvent | None:
    """One line of the log; None for a torn or foreign line. The id is the web API's
    (h + sha256 of the entry with sorted keys, 16 hex digits)."""
    try:
        entry = json.loads(line)
        digest = hashlib.sha256(json.dumps(entry, sort_keys=True).encode()).hexdigest()[:16]
        return alert_event("h" + digest, int(float(entry["time"]) * 1e6), str(entry["severity"]),
                           str(entry["source"]), str(entry["message"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
