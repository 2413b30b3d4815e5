"""One camera's event subscription, kept alive in its own thread.

subscribe (CreatePullPointSubscription) -> pull in a loop (long polls of `pull_timeout_s`)
-> renew when half the subscription's life is gone -> unsubscribe on stop. A camera that
refuses PullPoint but has an event service gets a basic-notification subscription
instead (Subscribe with a consumer URL of the box's NotifyReceiver): the camera pushes,
this thread waits on the subscription's inbox instead of pulling, and renews and
unsubscribes the same way. Any failure (camera unreachable, fault, hostile answer,
refused address) ends the subscription: open events are closed at that moment, and the
subscriber tries again (PullPoint first) after a jittered, growing delay (the recorder's
Backoff), like the recorder's stream reconnects. A camera error never leaves this thread.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

from appliance.cameras.credentials import Credentials
from appliance.cameras.onvif.basenotify import BaseNotificationClient
from appliance.cameras.onvif.events import (NoEventService, Notification, NoPullPoint,
                                            Subscription)
from appliance.cameras.onvif.policy import AddressPolicy
from appliance.cameras.onvif.transport import Timeouts
from appliance.core.clock import Clock, RealClock
from appliance.core.errors import VigilError
from appliance.events.receiver import Inbox, NotifyReceiver
from appliance.events.state import EventTracker
from appliance.recorder.backoff import Backoff
from appliance.recorder.index import RecordingIndex

log = logging.getLogger(__name__)

PAST_LIMIT_S = 86_400.0    # a notification time older than this (or in the future) is not
FUTURE_LIMIT_S = 60.0      # believed: the time we received it is used instead


@dataclass(frozen=True)
class SubscriberSettings:
    termination_s: float = 60.0       # InitialTerminationTime and each Renew
    pull_timeout_s: float = 10.0      # PullMessages Timeout (the long poll)
    message_limit: int = 32           # PullMessages MessageLimit
    request_s: float = 15.0           # each request, on top of the pull's timeout
    backoff_initial_s: float = 2.0
    backoff_cap_s: float = 120.0
    timeouts: Timeouts = Timeouts()


class EventSubscriber:
    def __init__(self, camera: str, xaddr: str, credentials: Credentials | None,
                 policy: AddressPolicy, index: RecordingIndex, *,
                 settings: SubscriberSettings = SubscriberSettings(), clock: Clock | None = None,
                 rng: random.Random | None = None,
                 client_factory: Callable[..., BaseNotificationClient] = BaseNotificationClient,
                 receiver: NotifyReceiver | None = None) -> None:
        self.camera = camera
        self.xaddr = xaddr
        self.credentials = credentials
        self.policy = policy
        self.index = index
        self.settings = settings
        self.clock = clock or RealClock()
        self.backoff = Backoff(settings.backoff_initial_s, settings.backoff_cap_s, rng)
        self.tracker = EventTracker(camera, index)
        self.client_factory = client_factory
        self.receiver = receiver          # None: no basic-notification fallback
        self._stop = threading.Event()
        self._wake = threading.Event()    # a Notify arrived, or stop: ends a push wait
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._status: dict[str, Any] = {"state": "starting", "detail": "", "failures": 0,
                                        "mode": "", "subscriptions": 0, "renewals": 0,
                                        "pulls": 0, "notifications": 0, "last_error": ""}

    # -- life ---------------------------------------------------------------------------

    def start(self) -> "EventSubscriber":
        self._thread = threading.Thread(target=self.run, name=f"events-{self.camera}",
                                        daemon=True)
        self._thread.start()
        return self

    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def stop(self, timeout: float | None = None) -> bool:
        """Ask the thread to unsubscribe and end; True when it ended within `timeout`
        (a pull in flight finishes first: at most pull_timeout_s + request_s)."""
        self.request_stop()
        if self._thread is None:
            return True
        if timeout is None:
            timeout = self.settings.pull_timeout_s + self.settings.request_s + 5
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def status(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._status)

    def _set(self, **values: Any) -> None:
        with self._lock:
            self._status.update(values)

    def _count(self, name: str, by: int = 1) -> None:
        with self._lock:
            self._status[name] += by

    def _now_us(self) -> int:
        return int(self.clock.wall() * 1_000_000)

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> None:
        self.tracker.recover(self._now_us())
        last_error = None
        while not self._stop.is_set():
            try:
                self._session()
            except Exception as exc:  # noqa: BLE001 - a camera error never ends the thread
                reason = str(exc) if isinstance(exc, VigilError) else \
                    f"{type(exc).__name__}: {exc}"
                if not isinstance(exc, VigilError):
                    log.exception("camera=%s event subscription crashed", self.camera)
                self.tracker.lost(self._now_us(), f"subscription lost: {reason}")
                delay = self.backoff.next_delay()
                self._count("failures")
                self._set(state="retrying", detail=reason[:500], last_error=reason[:500],
                          retry_in_s=round(delay, 2))
                if reason != last_error:
                    log.warning("camera=%s events unavailable, retry in %.1f s: %s",
                                self.camera, delay, reason)
                    last_error = reason
                if self.clock.sleep(delay, self._stop):
                    break
            else:
                last_error = None
        self.tracker.lost(self._now_us(), "event subscription stopped")
        self._set(state="stopped")

    def _session(self) -> None:
        s = self.settings
        client = self.client_factory(self.xaddr, self.credentials, self.policy,
                                     timeouts=s.timeouts, request_s=s.request_s,
                                     clock=self.clock)
        self._set(state="subscribing", detail="")
        client.sync_clock()
        try:
            sub = client.create_pull_point(s.termination_s)
        except NoPullPoint as exc:
            if isinstance(exc, NoEventService) or self.receiver is None:
                raise
            log.info("camera=%s %s; trying basic notification", self.camera, exc)
            self._basic_session(client, self.receiver)
            return
        self._subscribed(sub, "pullpoint")
        self._follow(client, sub, partial(self._pulled, client))

    def _basic_session(self, client: BaseNotificationClient, receiver: NotifyReceiver) -> None:
        """Subscribe with a consumer URL of our own and wait for the camera's pushes."""
        with receiver.receiving(self.camera, client.device.ip, self._wake) as inbox:
            sub = client.subscribe(inbox.url, self.settings.termination_s)
            self._subscribed(sub, "basic notification")
            self._follow(client, sub, partial(self._pushed, inbox))

    def _subscribed(self, sub: Subscription, mode: str) -> None:
        self._count("subscriptions")
        self.backoff.reset()
        self._set(state="subscribed", detail="", subscription=sub.address, mode=mode)
        log.info("camera=%s events subscribed (%s) at %s", self.camera, mode, sub.address)

    def _follow(self, client: BaseNotificationClient, sub: Subscription,
                receive: Callable[[Subscription, float], list[Notification]]) -> None:
        """Receive notifications until stopped, renewing at half-life; unsubscribe on
        stop. `receive(sub, timeout)` pulls or waits for pushes, at most `timeout`."""
        s = self.settings
        renew_at = self._renew_time(sub.lifetime())
        try:
            while not self._stop.is_set():
                now = self.clock.monotonic()
                if now >= renew_at:
                    sub = client.renew(sub, s.termination_s)
                    self._count("renewals")
                    renew_at = self._renew_time(sub.lifetime())
                    continue
                notes = receive(sub, max(1.0, min(s.pull_timeout_s, renew_at - now)))
                self._count("notifications", len(notes))
                for note in notes:
                    self.tracker.handle(note, self._time_us(note, client.clock_offset))
        finally:
            if self._stop.is_set():
                try:
                    client.unsubscribe(sub)
                    log.info("camera=%s events unsubscribed", self.camera)
                except Exception as exc:  # noqa: BLE001 - best effort on the way out
                    log.info("camera=%s unsubscribe failed: %s", self.camera, exc)

    def _pulled(self, client: BaseNotificationClient, sub: Subscription,
                timeout: float) -> list[Notification]:
        """PullPoint: one long poll."""
        result = client.pull(sub, timeout, self.settings.message_limit)
        self._count("pulls")
        return result.notifications

    def _pushed(self, inbox: Inbox, sub: Subscription, timeout: float) -> list[Notification]:
        """Basic notification: wait until the receiver delivers (or stop is asked: the
        same event), then take what arrived. Cleared before taking, so a delivery in
        between wakes the next wait at once instead of being missed."""
        self.clock.sleep(timeout, self._wake)
        self._wake.clear()
        return inbox.take()

    def _renew_time(self, lifetime: float | None) -> float:
        """Renew when half the subscription's life is gone (the camera's own figure when
        it gave one), so a slow answer or a lost request still has time to retry."""
        life = lifetime if lifetime is not None and 0 < lifetime < 86_400 else \
            self.settings.termination_s
        return self.clock.monotonic() + max(0.5, life / 2)

    def _time_us(self, note: Notification, offset: float | None) -> int:
        """The notification's time on our clock; ours when the camera's is not believable."""
        now = self.clock.wall()
        if note.time is not None:
            ours = note.time - (offset or 0.0)
            if now - PAST_LIMIT_S <= ours <= now + FUTURE_LIMIT_S:
                return int(min(ours, now) * 1_000_000)
        return int(now * 1_000_000)
