"""Event subscribers for every enabled camera that has an ONVIF address.

The recorder process owns it: `refresh()` every few seconds starts a subscriber for a
camera that appeared (or was enabled), stops the one of a camera that was removed or
disabled, and restarts it when the camera's address or credentials changed (a DHCP move,
a password rotation). `close()` unsubscribes everywhere. The subscribers share one
NotifyReceiver for the cameras without PullPoint; it listens only while one of them
needs it.
"""

from __future__ import annotations

import logging
import random
from typing import Any, Callable

from appliance.cameras.onvif.policy import AddressPolicy
from appliance.cameras.registry import CameraRegistry
from appliance.core.clock import Clock, RealClock
from appliance.events.receiver import NotifyReceiver
from appliance.events.subscriber import EventSubscriber, SubscriberSettings
from appliance.recorder.index import RecordingIndex

log = logging.getLogger(__name__)


class EventService:
    def __init__(self, index: RecordingIndex, registry: Callable[[], CameraRegistry],
                 policy: AddressPolicy | Callable[[], AddressPolicy], clock: Clock | None = None,
                 *, settings: SubscriberSettings = SubscriberSettings(),
                 rng: random.Random | None = None,
                 receiver: NotifyReceiver | None = None) -> None:
        self.index = index
        self.registry = registry
        self.policy = policy
        self.clock = clock or RealClock()
        self.settings = settings
        self.rng = rng
        self.receiver = receiver or NotifyReceiver()
        self.subscribers: dict[str, EventSubscriber] = {}
        self._identity: dict[str, tuple] = {}

    def _policy(self) -> AddressPolicy:
        return self.policy() if callable(self.policy) else self.policy

    def refresh(self) -> None:
        """Bring the running subscribers in line with the registry."""
        registry = self.registry()
        wanted: dict[str, tuple] = {}
        for cam in registry.cameras():
            if cam.enabled and cam.xaddr:
                creds = registry.credentials.get(cam.id)
                wanted[cam.id] = (cam.xaddr, creds)
        for camera in list(self.subscribers):
            if self._identity.get(camera) != wanted.get(camera):
                self._stop(camera, "removed, disabled or changed")
        for camera, (xaddr, creds) in wanted.items():
            if camera in self.subscribers:
                continue
            try:
                sub = EventSubscriber(camera, xaddr, creds, self._policy(), self.index,
                                      settings=self.settings, clock=self.clock, rng=self.rng,
                                      receiver=self.receiver)
            except Exception as exc:  # noqa: BLE001 - e.g. an address the policy refuses
                log.warning("camera=%s no event subscription: %s", camera, exc)
                continue
            self.subscribers[camera] = sub.start()
            self._identity[camera] = (xaddr, creds)
            log.info("camera=%s event subscriber started", camera)

    def _stop(self, camera: str, why: str) -> None:
        sub = self.subscribers.pop(camera)
        self._identity.pop(camera, None)
        if not sub.stop():
            log.warning("camera=%s event subscriber did not stop in time", camera)
        log.info("camera=%s event subscriber stopped (%s)", camera, why)

    def statuses(self) -> dict[str, dict[str, Any]]:
        return {camera: sub.status() for camera, sub in sorted(self.subscribers.items())}

    def close(self) -> None:
        for sub in self.subscribers.values():   # all at once: each may be in a long poll
            sub.request_stop()
        for camera in list(self.subscribers):
            self._stop(camera, "closing")
        self.receiver.close()
