"""One collection pass: every source from its cursor, the events in time order, stored in
the queue together with the new cursors (one transaction)."""

from __future__ import annotations

import logging
from typing import Any

from appliance.core.clock import Clock, RealClock
from appliance.mqtt.events import BoxEvent
from appliance.mqtt.queue import EventQueue
from appliance.mqtt.sources import Source

log = logging.getLogger(__name__)


class Collector:
    def __init__(self, queue: EventQueue, sources: list[Source],
                 clock: Clock | None = None) -> None:
        self.queue = queue
        self.sources = sources
        self.clock = clock or RealClock()
        self.cursors: dict[str, Any] = queue.cursors()
        self._failing: dict[str, str] = {}

    def collect(self, keep: bool = True) -> list[BoxEvent]:
        """New events since the last pass, queued (`keep`) or passed over (MQTT switched
        off: the cursors still move, so switching it on does not replay the past)."""
        now_us = int(self.clock.wall() * 1e6)
        events: list[BoxEvent] = []
        cursors = dict(self.cursors)
        for source in self.sources:
            try:
                found, cursors[source.key] = source.poll(self.cursors.get(source.key), now_us)
            except Exception as exc:   # one unreadable store must not stop the others
                self._failed(source.key, exc)
                continue
            if self._failing.pop(source.key, None):
                log.info("mqtt source=%s readable again", source.key)
            events += found
        events.sort(key=lambda event: event.time_us)   # stable: a source's order is kept
        kept = events if keep else []
        changed = {key: value for key, value in cursors.items()
                   if self.cursors.get(key) != value}
        if kept or changed:
            self.queue.put(kept, changed)
            self.cursors = cursors
        return kept

    def _failed(self, key: str, exc: Exception) -> None:
        message = f"{type(exc).__name__}: {exc}"
        if self._failing.get(key) != message:
            log.warning("mqtt source=%s cannot be read: %s", key, message)
        self._failing[key] = message
