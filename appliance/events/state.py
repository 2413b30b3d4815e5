"""Property notifications -> events with a start and an end, per camera.

ONVIF reports state, not events: "State of MotionAlarm on source vsc1 is true"
(PropertyOperation Initialized right after subscribing, Changed afterwards, Deleted when
the source goes away). An event is the time between true and false for one
(topic, source). A notification without a state (a line crossed) is an instant event.

What the camera does not tell us is closed by us: when the subscription is lost, every
open event is closed at the loss time (the camera's Initialized messages on the next
subscription open those still going again), and events a previous run left open are
closed when the subscriber starts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from appliance.cameras.onvif.events import Notification
from appliance.events.normalise import TAMPER, kind_of, source_text, state_of, topic_path
from appliance.recorder.index import Event, RecordingIndex

log = logging.getLogger(__name__)

ALERT_SOURCE = "events"
ALERT_REPEAT_US = 600 * 1_000_000     # one tamper alert per (topic, source) per 10 minutes
MAX_OPEN = 256                         # open events per camera (a hostile camera's sources)
Key = tuple[str, str]                  # (topic path, source text)


@dataclass
class EventTracker:
    camera: str
    index: RecordingIndex
    open: dict[Key, int] = field(default_factory=dict)        # key -> event id
    _alerted: dict[Key, int] = field(default_factory=dict)    # key -> last alert time

    def recover(self, time_us: int) -> int:
        """Close the events a previous run left open (the recorder stopped or crashed
        while they lasted) at `time_us`; how many were closed."""
        stale = self.index.open_events(self.camera)
        for event in stale:
            self.index.close_event(event.id, time_us, note="closed at restart: the recorder "
                                   "stopped while it lasted")
        if stale:
            log.info("camera=%s closed %d events left open by a previous run",
                     self.camera, len(stale))
        return len(stale)

    def handle(self, note: Notification, time_us: int) -> None:
        """One notification at `time_us` (our clock)."""
        kind = kind_of(note.topic)
        source = source_text(note.source)
        key = (topic_path(note.topic), source)
        state = state_of(note.data)
        operation = note.operation.lower()
        detail = "; ".join(part for part in (source, source_text(note.data)) if part)[:512]
        if operation == "deleted" or state is False:
            self._close(key, time_us)
            return
        if state is None:
            if operation == "initialized":
                return   # a property without a state: nothing happened
            self.index.add_event(Event(self.camera, kind, time_us, time_us, note.topic, detail))
            self._alert(kind, key, note.topic, source, time_us)
            return
        if key in self.open:
            return       # still on (Initialized after a resubscribe, or a repeat)
        if len(self.open) >= MAX_OPEN:
            log.warning("camera=%s more than %d events open; %s ignored", self.camera,
                        MAX_OPEN, note.topic)
            return
        self.open[key] = self.index.open_event(self.camera, kind, time_us, note.topic, detail)
        log.debug("camera=%s event start kind=%s topic=%s", self.camera, kind, note.topic)
        self._alert(kind, key, note.topic, source, time_us)

    def _close(self, key: Key, time_us: int, note: str = "") -> None:
        event_id = self.open.pop(key, None)
        if event_id is not None:
            self.index.close_event(event_id, time_us, note=note)

    def lost(self, time_us: int, reason: str) -> int:
        """The subscription is gone: close every open event at `time_us`."""
        count = len(self.open)
        for key in list(self.open):
            self._close(key, time_us, note=f"end unknown: subscription lost ({reason})"[:300])
        if count:
            log.info("camera=%s closed %d open events: %s", self.camera, count, reason)
        return count

    def _alert(self, kind: str, key: Key, topic: str, source: str, time_us: int) -> None:
        if kind != TAMPER:
            return
        last = self._alerted.get(key)
        if last is not None and time_us - last < ALERT_REPEAT_US:
            return
        self._alerted[key] = time_us
        where = f", {source}" if source else ""
        self.index.add_alert(time_us, "warning", ALERT_SOURCE,
                             f"camera {self.camera}: tamper detected ({topic_path(topic)}{where})")
