"""The durable, bounded queue of events waiting for the broker (SQLite, WAL).

* In order: rows are numbered by an AUTOINCREMENT key (never reused) and taken oldest
  first.
* At least once: a row is deleted only when the broker acknowledged it (PUBACK, QoS 1).
  Everything taken but not acknowledged when a connection ends is taken again from the
  head on the next one, so the broker may see an event twice (consumers drop duplicates
  by the event's `id`), never zero times.
* Bounded: past `max_events` rows, the oldest not in flight are deleted and counted. The
  count goes out first on the next connection as a `dropped` event (where the dropped
  events stood), so the owner learns that some were lost and when.
* The collector's cursors live in the same file and are written in the same transaction
  as the events they produced: a crash between the two can neither lose events (cursor
  moved, events not stored) nor store them twice.

The collector (main thread) puts; the publisher thread takes and acknowledges.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.mqtt.events import BoxEvent

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    time_us INTEGER NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cursors (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dropped (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    count INTEGER NOT NULL,
    first_us INTEGER NOT NULL,
    last_us INTEGER NOT NULL
);
"""
DROPPED_SEQ = 0   # the `dropped` report's place in take(): before every stored row


@dataclass(frozen=True)
class Pending:
    """An event taken for publishing: acknowledge it with its seq."""

    seq: int
    kind: str
    payload: str


class EventQueue:
    def __init__(self, path: Path, max_events: int = 10000) -> None:
        self.path = Path(path)
        self.max_events = max_events
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=10,
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()
        self._taken_up_to = 0          # the highest seq handed out on this connection
        self._in_flight: set[int] = set()
        self._dropped_announced = 0    # the count in the `dropped` report in flight
        self._dropping = False         # said once per overflow, not once per put
        self.version = 0               # bumped by put(): the publisher's "anything new?"

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM queue").fetchone()[0]

    # --- the collector's side -----------------------------------------------------------
    def put(self, events: list[BoxEvent], cursors: dict[str, Any] | None = None) -> int:
        """Store events (in this order) and the cursors that produced them, in one
        transaction; returns how many old events the bound dropped."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO queue (kind, time_us, payload) VALUES (?, ?, ?)",
                    [(e.kind, e.time_us, e.payload_text()) for e in events])
                for key, value in (cursors or {}).items():
                    self._db.execute("INSERT INTO cursors (key, value) VALUES (?, ?) ON CONFLICT "
                                     "(key) DO UPDATE SET value = excluded.value",
                                     (key, json.dumps(value, sort_keys=True)))
                dropped = self._enforce_bound()
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            self.version += 1
        if dropped and not self._dropping:
            log.warning("mqtt queue full (%d events): dropping the oldest (counted, reported "
                        "when the broker is back)", self.max_events)
        self._dropping = self._dropping or bool(dropped)
        return dropped

    def _enforce_bound(self) -> int:
        count = self._db.execute("SELECT COUNT(*) FROM queue").fetchone()[0]
        over = count - self.max_events
        if over <= 0:
            return 0
        flight = ",".join(str(seq) for seq in self._in_flight) or "-1"
        rows = self._db.execute(f"SELECT seq, time_us FROM queue WHERE seq NOT IN ({flight}) "
                                "ORDER BY seq LIMIT ?", (over,)).fetchall()
        if not rows:
            return 0
        self._db.execute(f"DELETE FROM queue WHERE seq NOT IN ({flight}) AND seq <= ?",
                         (rows[-1][0],))
        first = min(t for _, t in rows)
        last = max(t for _, t in rows)
        self._db.execute("INSERT INTO dropped (id, count, first_us, last_us) VALUES (1, ?, ?, ?) "
                         "ON CONFLICT (id) DO UPDATE SET count = count + excluded.count, "
                         "first_us = MIN(first_us, excluded.first_us), "
                         "last_us = MAX(last_us, excluded.last_us)", (len(rows), first, last))
        return len(rows)

    def cursors(self) -> dict[str, Any]:
        with self._lock:
            rows = self._db.execute("SELECT key, value FROM cursors").fetchall()
        return {key: json.loads(value) for key, value in rows}

    # --- the publisher's side -----------------------------------------------------------
    def take(self, limit: int) -> list[Pending]:
        """Up to `limit` events not handed out yet on this connection, oldest first (a
        pending `dropped` report before them)."""
        out: list[Pending] = []
        with self._lock:
            if DROPPED_SEQ not in self._in_flight:
                report = self._dropped_report()
                if report is not None:
                    out.append(report)
                    self._in_flight.add(DROPPED_SEQ)
            rows = self._db.execute("SELECT seq, kind, payload FROM queue WHERE seq > ? "
                                    "ORDER BY seq LIMIT ?",
                                    (self._taken_up_to, limit - len(out))).fetchall()
            for seq, kind, payload in rows:
                out.append(Pending(seq, kind, payload))
                self._in_flight.add(seq)
                self._taken_up_to = seq
        return out

    def _dropped_report(self) -> Pending | None:
        row = self._db.execute("SELECT count, first_us, last_us FROM dropped").fetchone()
        if row is None or row[0] <= 0:
            return None
        count, first_us, last_us = row
        self._dropped_announced = count
        event = BoxEvent("dropped", int(time.time() * 1e6), f"dropped:{first_us}:{count}",
                         cause="queue_full",
                         detail=f"{count} events were dropped while the broker was away "
                                f"(the queue keeps {self.max_events})",
                         extra={"count": count, "first_time_us": first_us,
                                "last_time_us": last_us})
        return Pending(DROPPED_SEQ, event.kind, event.payload_text())

    def ack(self, seq: int) -> None:
        """The broker has the event: forget it."""
        with self._lock:
            self._in_flight.discard(seq)
            if seq == DROPPED_SEQ:
                # events dropped since the report was taken stay counted for the next one
                self._db.execute("UPDATE dropped SET count = count - ?",
                                 (self._dropped_announced,))
                self._db.execute("DELETE FROM dropped WHERE count <= 0")
                self._dropped_announced = 0
                self._dropping = False
            else:
                self._db.execute("DELETE FROM queue WHERE seq = ?", (seq,))

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def release(self) -> None:
        """The connection ended: what was not acknowledged is taken again, from the head."""
        with self._lock:
            self._in_flight.clear()
            self._taken_up_to = 0
            self._dropped_announced = 0

    # --- moving between files (RAM while there is no data disk) -------------------------
    def absorb(self, other_path: Path) -> int:
        """Append the events of another queue file (in order) and take its cursors and
        dropped count, then delete it; returns how many events were moved."""
        other = sqlite3.connect(other_path)
        try:
            rows = other.execute("SELECT kind, time_us, payload FROM queue ORDER BY seq").fetchall()
            cursors = other.execute("SELECT key, value FROM cursors").fetchall()
            dropped = other.execute("SELECT count, first_us, last_us FROM dropped").fetchone()
        except sqlite3.Error as exc:
            log.error("mqtt queue %s unreadable (%s): its events are lost", other_path, exc)
            rows, cursors, dropped = [], [], None
        finally:
            other.close()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT INTO queue (kind, time_us, payload) VALUES (?, ?, ?)",
                                 rows)
            self._db.executemany("INSERT INTO cursors (key, value) VALUES (?, ?) ON CONFLICT "
                                 "(key) DO UPDATE SET value = excluded.value", cursors)
            if dropped is not None:
                self._db.execute("INSERT INTO dropped (id, count, first_us, last_us) "
                                 "VALUES (1, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                                 "count = count + excluded.count, first_us = "
                                 "MIN(first_us, excluded.first_us), last_us = "
                                 "MAX(last_us, excluded.last_us)", dropped)
            self._enforce_bound()
            self._db.execute("COMMIT")
            self.version += 1
        for suffix in ("", "-wal", "-shm"):
            Path(str(other_path) + suffix).unlink(missing_ok=True)
        return len(rows)
