"""The recording index: SQLite in WAL mode on the data disk.

Tables: segments, gaps (with cause), camera_status, alerts, meta, deletions (the
retention audit log): the recorder process (its camera threads and its retention worker)
is their only writer. protected (time ranges marked as evidence) is written by the owner's
tools (CLI, web UI) and read by retention. Readers open their own connection.
Times are integer microseconds since the Unix epoch (UTC).

Durability: WAL with synchronous=NORMAL. A power cut may roll back the last commits,
which start-up reconciliation restores from the files (the files are the truth).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from appliance.core.errors import DataLoss

log = logging.getLogger(__name__)

INDEX_NAME = "index.sqlite3"
SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY,
    camera TEXT NOT NULL,
    seq INTEGER NOT NULL,
    start_us INTEGER NOT NULL,
    end_us INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    path TEXT NOT NULL UNIQUE,
    video_codec TEXT,
    audio_codec TEXT,
    width INTEGER,
    height INTEGER,
    fragments INTEGER NOT NULL DEFAULT 0,
    packets INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'recovered', 'missing')),
    sha256 TEXT,
    prev_chain TEXT,
    chain TEXT,
    -- retention_class, why the segment is kept: 'continuous' (recorded by schedule), 'event' (inside an
    -- event's pre/post window, kept as long as event footage), 'rolling' (events-only
    -- mode: kept only as the pre-event window, then removed)
    retention_class TEXT NOT NULL DEFAULT 'continuous'
        CHECK (retention_class IN ('continuous', 'event', 'rolling')),
    UNIQUE (camera, seq)
);
CREATE INDEX IF NOT EXISTS segments_by_time ON segments (camera, start_us);
-- Covers the timeline's query (no table lookups for a month of rows).
CREATE INDEX IF NOT EXISTS segments_timeline ON segments (camera, start_us, end_us, status);
CREATE TABLE IF NOT EXISTS gaps (
    id INTEGER PRIMARY KEY,
    camera TEXT NOT NULL,
    start_us INTEGER NOT NULL,
    end_us INTEGER,
    cause TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS gaps_by_time ON gaps (camera, start_us);
CREATE TABLE IF NOT EXISTS camera_status (
    camera TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    heartbeat_us INTEGER NOT NULL,
    stats TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS protected (
    id INTEGER PRIMARY KEY,
    camera TEXT,                       -- NULL: every camera
    start_us INTEGER NOT NULL,
    end_us INTEGER NOT NULL CHECK (end_us > start_us),
    reason TEXT NOT NULL,
    created_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS deletions (
    id INTEGER PRIMARY KEY,
    time_us INTEGER NOT NULL,
    camera TEXT NOT NULL,
    path TEXT NOT NULL,
    start_us INTEGER NOT NULL,
    end_us INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    rule TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done'))
);
CREATE INDEX IF NOT EXISTS deletions_pending ON deletions (state) WHERE state = 'pending';
CREATE TABLE IF NOT EXISTS camera_notes (   -- written by vigil-hwd (PoE power cycles)
    id INTEGER PRIMARY KEY,
    camera TEXT NOT NULL,
    time_us INTEGER NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS camera_notes_by_time ON camera_notes (camera, time_us);
CREATE TABLE IF NOT EXISTS events (   -- written by the recorder's event subscribers
    id INTEGER PRIMARY KEY,
    camera TEXT NOT NULL,
    kind TEXT NOT NULL,                -- motion, tamper, line_crossing, intrusion, input, other
    start_us INTEGER NOT NULL,
    end_us INTEGER,                    -- NULL while the event lasts
    topic TEXT NOT NULL DEFAULT '',    -- the camera's own topic (kept raw)
    detail TEXT NOT NULL DEFAULT ''    -- source, state, what the camera said
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (camera, start_us);
CREATE INDEX IF NOT EXISTS events_open ON events (camera) WHERE end_us IS NULL;
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    time_us INTEGER NOT NULL,
    severity TEXT NOT NULL,
    source TEXT NOT NULL,
    message TEXT NOT NULL
);
"""


class GapCause:
    """Why a camera has no footage for a time span (stored as text in gaps.cause)."""

    UNREACHABLE = "camera_unreachable"
    AUTH_FAILED = "auth_failed"
    STREAM_ENDED = "stream_ended"
    STREAM_STALLED = "stream_stalled"
    STREAM_ERROR = "stream_error"
    NO_KEYFRAME = "no_keyframe"
    UNSUPPORTED = "unsupported_stream"
    DISK_ERROR = "disk_error"
    DISK_FULL = "disk_full"            # full_disk_action = "stop" reached the low-water mark
    RECORDER_STOPPED = "recorder_stopped"
    NOT_LICENSED = "not_licensed"      # beyond the licensed channel count
    RECONFIGURED = "reconfigured"      # removed, disabled, or its address/password changed
    CRASH = "power_loss_or_crash"
    DISK_MISSING = "disk_missing"      # the data disk was pulled out or failed while recording
    OUTSIDE_SCHEDULE = "outside_schedule"  # recording mode "off" at this time (not a failure)
    NO_EVENT = "no_event"              # events-only mode: nothing happened (not a failure)


NOT_FAILURES = frozenset({GapCause.OUTSIDE_SCHEDULE, GapCause.NO_EVENT,
                          GapCause.RECORDER_STOPPED})
SEGMENT_CLASSES = ("continuous", "event", "rolling")


@dataclass
class Segment:
    camera: str
    seq: int
    start_us: int
    end_us: int
    bytes: int
    path: str  # relative to the data directory
    video_codec: str | None = None
    audio_codec: str | None = None
    width: int | None = None
    height: int | None = None
    fragments: int = 0
    packets: int = 0
    status: str = "ok"
    sha256: str | None = None      # of the file as closed (integrity.py)
    prev_chain: str | None = None  # the camera's chain value before this segment
    chain: str | None = None       # chain_link(prev_chain, ...) for this segment
    retention_class: str = "continuous"  # continuous | event | rolling (SEGMENT_CLASSES)
    id: int | None = field(default=None, compare=False)


@dataclass
class Protection:
    camera: str | None  # None: every camera
    start_us: int
    end_us: int
    reason: str
    created_us: int = 0
    id: int | None = None

    def covers(self, camera: str, start_us: int, end_us: int) -> bool:
        return (self.camera is None or self.camera == camera) and \
            start_us < self.end_us and end_us > self.start_us


@dataclass
class Deletion:
    time_us: int
    camera: str
    path: str
    start_us: int
    end_us: int
    bytes: int
    rule: str
    detail: str = ""
    state: str = "pending"
    id: int | None = None


@dataclass
class Event:
    camera: str
    kind: str
    start_us: int
    end_us: int | None = None
    topic: str = ""
    detail: str = ""
    id: int | None = None


@dataclass
class Gap:
    camera: str
    start_us: int
    end_us: int | None
    cause: str
    detail: str = ""
    id: int | None = None


class RecordingIndex:
    def __init__(self, data_dir: Path, readonly: bool = False) -> None:
        self.path = Path(data_dir) / INDEX_NAME
        self._lock = threading.Lock()
        if readonly:
            if not self.path.exists():
                raise DataLoss(f"no recording index at {self.path}")
            uri = f"file:{self.path}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=10)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=10,
                                       isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._check_integrity()
            self._db.executescript(SCHEMA)
            self._migrate()
            self._set_meta_if_missing("schema_version", str(SCHEMA_VERSION))
        self._db.row_factory = sqlite3.Row

    def _migrate(self) -> None:
        """Indexes written by an older version gain the columns added since."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(segments)")}
        for name in ("sha256", "prev_chain", "chain"):
            if name not in columns:
                self._db.execute(f"ALTER TABLE segments ADD COLUMN {name} TEXT")
        if "retention_class" not in columns:
            self._db.execute("ALTER TABLE segments ADD COLUMN retention_class TEXT NOT NULL "
                             "DEFAULT 'continuous' CHECK (retention_class IN "
                             "('continuous', 'event', 'rolling'))")
        # events-only recording's classifier asks for a camera's rolling segments each pass
        self._db.execute("CREATE INDEX IF NOT EXISTS segments_rolling ON segments "
                         "(camera, start_us) WHERE retention_class = 'rolling'")

    def _check_integrity(self) -> None:
        result = self._db.execute("PRAGMA quick_check").fetchone()[0]
        if result != "ok":
            raise DataLoss(f"recording index {self.path} failed its integrity check: {result}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, args)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _read(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def query(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        """A read-only query for the index's readers (timeline, playback)."""
        return self._read(sql, args)

    # --- meta -------------------------------------------------------------------------
    def _set_meta_if_missing(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def set_meta(self, key: str, value: str) -> None:
        self._write("INSERT INTO meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

    def get_meta(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0]["value"] if rows else None

    # --- segments ---------------------------------------------------------------------
    def add_segment(self, seg: Segment) -> int:
        values = asdict(seg)
        values.pop("id")
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        cur = self._write(f"INSERT INTO segments ({cols}) VALUES ({marks})", tuple(values.values()))
        seg.id = cur.lastrowid
        return seg.id

    def segments(self, camera: str | None = None, start_us: int | None = None,
                 end_us: int | None = None) -> list[Segment]:
        sql, args = "SELECT * FROM segments WHERE 1=1", []
        if camera is not None:
            sql += " AND camera = ?"
            args.append(camera)
        if start_us is not None:
            sql += " AND end_us > ?"
            args.append(start_us)
        if end_us is not None:
            sql += " AND start_us < ?"
            args.append(end_us)
        sql += " ORDER BY camera, start_us, seq"
        return [Segment(**dict(row)) for row in self._read(sql, tuple(args))]

    def update_segment(self, seg_id: int, **values: Any) -> None:
        sets = ", ".join(f"{key} = ?" for key in values)
        self._write(f"UPDATE segments SET {sets} WHERE id = ?", (*values.values(), seg_id))

    def oldest_segments(self, camera: str | None = None, after: tuple[int, int] | None = None,
                        limit: int = 500) -> list[Segment]:
        """Segments by recorded start time (then id), one page after the key `after`."""
        sql, args = "SELECT * FROM segments WHERE 1=1", []
        if camera is not None:
            sql += " AND camera = ?"
            args.append(camera)
        if after is not None:
            sql += " AND (start_us, id) > (?, ?)"
            args += list(after)
        sql += " ORDER BY start_us, id LIMIT ?"
        return [Segment(**dict(row)) for row in self._read(sql, (*args, limit))]

    def segments_ending_before(self, camera: str, cutoff_us: int) -> list[Segment]:
        rows = self._read("SELECT * FROM segments WHERE camera = ? AND end_us <= ? "
                          "ORDER BY start_us, id", (camera, cutoff_us))
        return [Segment(**dict(row)) for row in rows]

    def usage_by_camera(self) -> dict[str, dict[str, int]]:
        """Per camera: bytes held, segment count, first start and last end."""
        rows = self._read("SELECT camera, SUM(CASE WHEN status != 'missing' THEN bytes ELSE 0 END) "
                          "AS bytes, COUNT(*) AS segments, MIN(start_us) AS first_us, "
                          "MAX(end_us) AS last_us FROM segments GROUP BY camera ORDER BY camera")
        return {row["camera"]: {k: row[k] for k in ("bytes", "segments", "first_us", "last_us")}
                for row in rows}

    def recent_usage(self, camera: str, since_us: int) -> tuple[int, int]:
        """(bytes, recorded microseconds) of a camera's segments that end after `since_us`."""
        rows = self._read("SELECT COALESCE(SUM(bytes), 0) AS b, "
                          "COALESCE(SUM(end_us - start_us), 0) AS d FROM segments "
                          "WHERE camera = ? AND end_us > ? AND status != 'missing'",
                          (camera, since_us))
        return rows[0]["b"], rows[0]["d"]

    def last_chain(self, camera: str) -> str | None:
        rows = self._read("SELECT chain FROM segments WHERE camera = ? AND chain IS NOT NULL "
                          "ORDER BY seq DESC LIMIT 1", (camera,))
        return rows[0]["chain"] if rows else None

    def max_seq(self, camera: str) -> int:
        rows = self._read("SELECT MAX(seq) AS m FROM segments WHERE camera = ?", (camera,))
        return rows[0]["m"] if rows and rows[0]["m"] is not None else 0

    def last_segment_end(self, camera: str) -> int | None:
        rows = self._read("SELECT MAX(end_us) AS e FROM segments WHERE camera = ? "
                          "AND status != 'missing'", (camera,))
        return rows[0]["e"] if rows else None

    def cameras(self) -> list[str]:
        rows = self._read("SELECT camera FROM segments UNION SELECT camera FROM gaps "
                          "UNION SELECT camera FROM camera_status ORDER BY camera")
        return [row["camera"] for row in rows]

    # --- gaps -------------------------------------------------------------------------
    def open_gap(self, camera: str, start_us: int, cause: str, detail: str = "",
                 replacing: int | None = None) -> int:
        """Open a gap; `replacing` (the camera's open gap when the cause changes) ends where
        this one starts, in the same transaction, so a reader (or a note) never sees the
        camera between two gaps."""
        with self._transaction():
            if replacing is not None:
                self._db.execute("UPDATE gaps SET end_us = MAX(?, start_us) WHERE id = ?",
                                 (start_us, replacing))
            cur = self._db.execute("INSERT INTO gaps (camera, start_us, end_us, cause, detail) "
                                   "VALUES (?, ?, NULL, ?, ?)", (camera, start_us, cause, detail))
        return cur.lastrowid

    def add_gap(self, camera: str, start_us: int, end_us: int, cause: str,
                detail: str = "") -> int:
        """A gap already over (a span retention removed): one write, never left open."""
        cur = self._write("INSERT INTO gaps (camera, start_us, end_us, cause, detail) "
                          "VALUES (?, ?, MAX(?, ?), ?, ?)",
                          (camera, start_us, end_us, start_us, cause, detail))
        return cur.lastrowid

    def set_gap_cause(self, gap_id: int, cause: str, detail: str) -> None:
        """Name the cause of a gap once it is known better (a stop that was a lost disk)."""
        self._write("UPDATE gaps SET cause = ?, detail = ? WHERE id = ?", (cause, detail, gap_id))

    def close_gap(self, gap_id: int, end_us: int) -> None:
        self._write("UPDATE gaps SET end_us = MAX(?, start_us) WHERE id = ?", (end_us, gap_id))

    def add_note(self, camera: str, time_us: int, text: str) -> None:
        """Record what happened to a camera (a PoE power cycle) and add it to the detail of
        the gap it happened in, so the gap says why the camera came back. One transaction:
        the recorder may be closing that gap at the same moment, and either order must
        give the same answer (the gap is found by its time range, open or closed)."""
        with self._transaction():
            self._db.execute("INSERT INTO camera_notes (camera, time_us, text) VALUES (?, ?, ?)",
                             (camera, time_us, text))
            self._db.execute(
                "UPDATE gaps SET detail = detail || '; ' || ? WHERE id = (SELECT id FROM gaps "
                "WHERE camera = ? AND start_us <= ? AND (end_us IS NULL OR end_us >= ?) "
                "ORDER BY start_us DESC, id DESC LIMIT 1)", (text, camera, time_us, time_us))

    def open_gaps(self, camera: str) -> list[Gap]:
        rows = self._read("SELECT * FROM gaps WHERE camera = ? AND end_us IS NULL ORDER BY id",
                          (camera,))
        return [Gap(**dict(row)) for row in rows]

    def gaps(self, camera: str | None = None) -> list[Gap]:
        sql, args = "SELECT * FROM gaps", ()
        if camera is not None:
            sql, args = sql + " WHERE camera = ?", (camera,)
        return [Gap(**dict(row)) for row in self._read(sql + " ORDER BY camera, start_us, id", args)]

    # --- events (from the cameras' own detection) ------------------------------------------
    def open_event(self, camera: str, kind: str, start_us: int, topic: str = "",
                   detail: str = "") -> int:
        cur = self._write("INSERT INTO events (camera, kind, start_us, end_us, topic, detail) "
                          "VALUES (?, ?, ?, NULL, ?, ?)", (camera, kind, start_us, topic, detail))
        return cur.lastrowid

    def close_event(self, event_id: int, end_us: int, note: str = "") -> None:
        """End an event (once); `note` says why when it was not the camera that ended it
        (the subscription was lost, the recorder stopped)."""
        self._write("UPDATE events SET end_us = MAX(?, start_us), detail = detail || "
                    "CASE WHEN ? = '' THEN '' WHEN detail = '' THEN ? ELSE '; ' || ? END "
                    "WHERE id = ? AND end_us IS NULL", (end_us, note, note, note, event_id))

    def add_event(self, event: Event) -> int:
        """A finished (or instantaneous) event in one write."""
        cur = self._write("INSERT INTO events (camera, kind, start_us, end_us, topic, detail) "
                          "VALUES (?, ?, ?, ?, ?, ?)", (event.camera, event.kind, event.start_us,
                                                        event.end_us, event.topic, event.detail))
        event.id = cur.lastrowid
        return event.id

    def events(self, camera: str | None = None, start_us: int | None = None,
               end_us: int | None = None) -> list[Event]:
        """Events overlapping [start_us, end_us) (an open event overlaps everything after
        its start), oldest first."""
        sql, args = "SELECT * FROM events WHERE 1=1", []
        if camera is not None:
            sql += " AND camera = ?"
            args.append(camera)
        if end_us is not None:
            sql += " AND start_us < ?"
            args.append(end_us)
        if start_us is not None:
            sql += " AND (end_us IS NULL OR end_us >= ?)"
            args.append(start_us)
        rows = self._read(sql + " ORDER BY start_us, id", tuple(args))
        return [Event(**dict(row)) for row in rows]

    def open_events(self, camera: str) -> list[Event]:
        rows = self._read("SELECT * FROM events WHERE camera = ? AND end_us IS NULL "
                          "ORDER BY start_us, id", (camera,))
        return [Event(**dict(row)) for row in rows]

    def set_retention_class(self, segment_id: int, retention_class: str) -> None:
        if retention_class not in SEGMENT_CLASSES:
            raise ValueError(f"retention class {retention_class!r}")
        self._write("UPDATE segments SET retention_class = ? WHERE id = ?",
                    (retention_class, segment_id))

    # --- protected footage ----------------------------------------------------------------
    def protect(self, camera: str | None, start_us: int, end_us: int, reason: str,
                created_us: int) -> int:
        cur = self._write("INSERT INTO protected (camera, start_us, end_us, reason, created_us) "
                          "VALUES (?, ?, ?, ?, ?)", (camera, start_us, end_us, reason, created_us))
        return cur.lastrowid

    def unprotect(self, protection_id: int) -> bool:
        return self._write("DELETE FROM protected WHERE id = ?", (protection_id,)).rowcount > 0

    def protections(self) -> list[Protection]:
        return [Protection(**dict(row))
                for row in self._read("SELECT * FROM protected ORDER BY start_us, id")]

    # --- deletions (retention audit log) -----------------------------------------------------
    def begin_deletion(self, seg: Segment, rule: str, detail: str, time_us: int) -> int:
        """Record the intent first: a crash between unlink and row delete is then finished
        by reconcile instead of being mistaken for a lost file."""
        cur = self._write("INSERT INTO deletions (time_us, camera, path, start_us, end_us, bytes, "
                          "rule, detail, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending')",
                          (time_us, seg.camera, seg.path, seg.start_us, seg.end_us, seg.bytes,
                           rule, detail))
        return cur.lastrowid

    def finish_deletion(self, deletion_id: int, path: str) -> None:
        """Drop the segment row and mark the audit entry done, in one transaction."""
        with self._transaction():
            self._db.execute("DELETE FROM segments WHERE path = ?", (path,))
            self._db.execute("UPDATE deletions SET state = 'done' WHERE id = ?", (deletion_id,))

    def pending_deletions(self) -> list[Deletion]:
        return [Deletion(**dict(row)) for row in
                self._read("SELECT * FROM deletions WHERE state = 'pending' ORDER BY id")]

    def deletions(self, camera: str | None = None, limit: int = 1000) -> list[Deletion]:
        sql, args = "SELECT * FROM deletions", []
        if camera is not None:
            sql, args = sql + " WHERE camera = ?", [camera]
        rows = self._read(sql + " ORDER BY id DESC LIMIT ?", (*args, limit))
        return [Deletion(**dict(row)) for row in reversed(rows)]

    # --- status and alerts --------------------------------------------------------------
    def write_status(self, camera: str, state: str, detail: str, heartbeat_us: int,
                     stats: dict[str, Any]) -> None:
        self._write("INSERT INTO camera_status (camera, state, detail, heartbeat_us, stats) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (camera) DO UPDATE SET "
                    "state = excluded.state, detail = excluded.detail, "
                    "heartbeat_us = excluded.heartbeat_us, stats = excluded.stats",
                    (camera, state, detail, heartbeat_us, json.dumps(stats, sort_keys=True)))

    def statuses(self) -> dict[str, dict[str, Any]]:
        return {row["camera"]: {"state": row["state"], "detail": row["detail"],
                                "heartbeat_us": row["heartbeat_us"], **json.loads(row["stats"])}
                for row in self._read("SELECT * FROM camera_status ORDER BY camera")}

    def add_alert(self, time_us: int, severity: str, source: str, message: str) -> None:
        log.warning("alert severity=%s source=%s: %s", severity, source, message)
        self._write("INSERT INTO alerts (time_us, severity, source, message) VALUES (?, ?, ?, ?)",
                    (time_us, severity, source, message))

    def alerts(self) -> list[dict[str, Any]]:
        return [dict(row) for row in self._read("SELECT * FROM alerts ORDER BY id")]
