"""Retention classes of segments: promote footage around camera events, drop the rest of
the events-only rolling buffer.

In events-only mode the recorder writes every segment as 'rolling' (the pre-event
buffer: when an event arrives its pre-event seconds are already on disk). This pass,
run by the retention thread (never on the packet path), then:
* promotes to 'event' every segment of a camera that overlaps one of its event windows
  [event.start - pre_event_s, (event.end or now) + post_event_s] (any class: in
  continuous-with-events mode 'continuous' segments are marked the same way);
* removes 'rolling' segments that ended more than the rolling window ago (pre_event_s
  plus one segment length: an event reported a little late still finds its pre-event
  footage) and overlap no event window, through the audited crash-safe delete (rule
  `rolling_window`), and records the span as a `no_event` gap, merged with the one
  before it, so the gap map says "not recorded: no event" rather than a failure.
Never removed: protected footage, and the open segment (it has no index row yet).
The retention class of a segment only changes towards keeping more ('rolling' ->
'event', 'continuous' -> 'event').
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from appliance.recorder.index import Event, GapCause, RecordingIndex, Segment
from appliance.storage.retention.delete import delete_segment

log = logging.getLogger(__name__)

ROLLING_RULE = "rolling_window"
LOOKBACK_US = 3600 * 1_000_000   # events this recent are checked every pass
NO_EVENT_DETAIL = "not recorded: no event (events-only recording keeps footage around events)"


@dataclass
class ClassReport:
    promoted: list[str] = field(default_factory=list)   # paths now 'event'
    removed: list[str] = field(default_factory=list)    # rolling segments deleted


def event_windows(index: RecordingIndex, camera: str, since_us: int, now_us: int,
                  pre_us: int, post_us: int) -> list[tuple[int, int]]:
    """The camera's event windows that reach past `since_us`, oldest first: events that
    started at most LOOKBACK_US before it (a range of the events_by_time index, not a
    scan of a year of events) and the events still open."""
    rows = index.query("SELECT * FROM events WHERE camera = ? AND start_us >= ? "
                       "AND (end_us IS NULL OR end_us >= ?) ORDER BY start_us, id",
                       (camera, since_us - post_us - LOOKBACK_US, since_us - post_us))
    events = {row["id"]: Event(**dict(row)) for row in rows}
    events.update({ev.id: ev for ev in index.open_events(camera)})
    return sorted((ev.start_us - pre_us,
                   (ev.end_us if ev.end_us is not None else now_us) + post_us)
                  for ev in events.values())


def classify_camera(data_dir: Path, index: RecordingIndex, camera: str, pre_event_s: float,
                    post_event_s: float, segment_seconds: float, now_us: int,
                    trim: bool = True) -> ClassReport:
    """One pass for one camera. `trim` False: only promote (the camera cannot have
    rolling segments, which spares a scan of its segments for the 'rolling' class)."""
    report = ClassReport()
    pre_us, post_us = int(pre_event_s * 1e6), int(post_event_s * 1e6)
    rolling = _rolling(index, camera) if trim else []
    since = now_us - LOOKBACK_US
    if rolling:
        since = min(since, rolling[0].start_us)
    windows = event_windows(index, camera, since, now_us, pre_us, post_us)
    for start, end in windows:
        for seg in index.segments(camera, max(start, since), end):
            if seg.retention_class != "event":
                index.set_retention_class(seg.id, "event")
                report.promoted.append(seg.path)
    if report.promoted:
        log.info("camera=%s %d segment(s) kept as event footage", camera, len(report.promoted))
    if not trim:
        return report
    cutoff = now_us - pre_us - int(segment_seconds * 1e6)
    protections = index.protections()
    for seg in _rolling(index, camera):
        if seg.end_us > cutoff:
            break
        if any(start < seg.end_us and end > seg.start_us for start, end in windows):
            continue  # promoted above unless it changed meanwhile; never delete it
        if any(p.covers(camera, seg.start_us, seg.end_us) for p in protections):
            continue
        delete_segment(data_dir, index, seg, ROLLING_RULE,
                       f"events-only: no event within {pre_event_s:g} s before or "
                       f"{post_event_s:g} s after", now_us)
        _no_event_gap(index, seg)
        report.removed.append(seg.path)
    return report


def _rolling(index: RecordingIndex, camera: str) -> list[Segment]:
    rows = index.query("SELECT * FROM segments WHERE camera = ? AND retention_class = 'rolling' "
                       "ORDER BY start_us, id", (camera,))
    return [Segment(**dict(row)) for row in rows]


def _no_event_gap(index: RecordingIndex, seg: Segment) -> None:
    """Record [seg.start, seg.end] as not recorded for lack of an event, extending the
    no_event gap that ends where this segment started."""
    rows = index.query("SELECT id FROM gaps WHERE camera = ? AND cause = ? AND end_us = ? "
                       "ORDER BY id DESC LIMIT 1", (seg.camera, GapCause.NO_EVENT, seg.start_us))
    if rows:
        index.close_gap(rows[0]["id"], seg.end_us)
        return
    index.add_gap(seg.camera, seg.start_us, seg.end_us, GapCause.NO_EVENT, NO_EVENT_DETAIL)
