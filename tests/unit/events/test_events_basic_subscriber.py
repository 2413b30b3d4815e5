"""The subscriber's fallback to basic notification on a simulated clock: a scripted
camera that refuses PullPoint, and an in-memory receiver whose inboxes the "camera"
fills (the HTTP side is tested in tests/integration/cameras/
test_onvif_basic_notification.py). Renew at half-life while waiting for pushes, pushed
notifications into the index, unsubscribe and inbox closed on stop, and no fallback for a
camera without an event service or a subscriber without a receiver."""

from __future__ import annotations

import ipaddress
import random
from contextlib import contextmanager


from appliance.cameras.onvif.events import (NoEventService, Notification, NoPullPoint,
                                            Subscription)
from appliance.core.clock import SimulatedClock
from appliance.events.receiver import Inbox
from appliance.events.subscriber import EventSubscriber, SubscriberSettings

MOTION = "tns1:VideoSource/MotionAlarm"
CAMERA_IP = ipaddress.ip_address("192.168.1.20")


class MemoryReceiver:
    """NotifyReceiver's interface without sockets: inboxes opened and closed in order."""

    def __init__(self):
        self.inboxes: list[Inbox] = []
        self.closed: list[Inbox] = []

    @contextmanager
    def receiving(self, camera, camera_ip, wake):
        inbox = Inbox(camera, camera_ip, "192.168.1.2",
                      f"http://192.168.1.2:8086/onvif-events/t{len(self.inboxes)}",
                      f"t{len(self.inboxes)}", wake, 16)
        self.inboxes.append(inbox)
        try:
            yield inbox
        finally:
            self.closed.append(inbox)


class PushingCamera:
    """A camera without PullPoint (or, `events=False`, without an event service) that
    pushes `pushes[n]` into the inbox at its n-th renewal (pushes[0]: when subscribed)."""

    def __init__(self, clock, receiver, subscriber_ref, *, life=20.0, pushes=(),
                 events=True, stop_after=8):
        self.clock, self.receiver, self.ref = clock, receiver, subscriber_ref
        self.life, self.pushes, self.events = life, list(pushes), events
        self.calls: list[tuple[str, float]] = []
        self.consumers: list[str] = []
        self.stop_after = stop_after

    def factory(self, xaddr, creds, policy, **kwargs):
        camera = self

        class Device:
            ip = CAMERA_IP

        class Client:
            clock_offset = 0.0
            device = Device()

            def sync_clock(self):
                camera.log("sync_clock")

            def create_pull_point(self, termination_s):
                camera.log("create")
                if not camera.events:
                    raise NoEventService("the camera at cam has no ONVIF event service")
                raise NoPullPoint("the camera at cam refused a PullPoint subscription")

            def subscribe(self, consumer, termination_s):
                camera.log("subscribe")
                camera.consumers.append(consumer)
                camera.push()
                return camera.subscription()

            def renew(self, sub, termination_s):
                camera.log("renew")
                camera.push()
                return camera.subscription()

            def unsubscribe(self, sub):
                camera.log("unsubscribe")

        return Client()

    def subscription(self):
        now = self.clock.wall()
        return Subscription("http://cam/sub", "", now + self.life, now)

    def push(self):
        if self.pushes:
            self.receiver.inboxes[-1].put(self.pushes.pop(0))

    def log(self, op):
        self.calls.append((op, self.clock.monotonic()))
        if len(self.calls) >= self.stop_after:
            self.ref[0].request_stop()


def make(index, clock, receiver, settings=SubscriberSettings(), **script):
    ref = []
    camera = PushingCamera(clock, receiver, ref, **script)
    sub = EventSubscriber("cam", "http://cam/onvif/device_service", None, None, index,
                          settings=settings, clock=clock, rng=random.Random(3),
                          client_factory=camera.factory, receiver=receiver)
    ref.append(sub)
    return sub, camera


def note(state, at):
    return Notification(MOTION, at, "Changed", (("Source", "vs1"),), (("State", state),))


def test_falls_back_and_renews_at_half_the_lifetime(index):
    clock = SimulatedClock()
    receiver = MemoryReceiver()
    sub, camera = make(index, clock, receiver, SubscriberSettings(termination_s=60,
                                                                  pull_timeout_s=10),
                       life=20, stop_after=7)
    start = clock.monotonic()
    sub.run()
    ops = [op for op, _ in camera.calls]
    assert ops[:3] == ["sync_clock", "create", "subscribe"] and ops[-1] == "unsubscribe"
    assert [t - start for op, t in camera.calls if op == "renew"][:3] == [10.0, 20.0, 30.0]
    assert camera.consumers == [receiver.inboxes[0].url]
    assert receiver.closed == receiver.inboxes                 # the inbox ended with it
    status = sub.status()
    assert (status["state"], status["mode"], status["pulls"]) == \
        ("stopped", "basic notification", 0)


def test_pushed_notifications_reach_the_index(index):
    clock = SimulatedClock()
    receiver = MemoryReceiver()
    wall = clock.wall()
    pushes = [[note("false", wall)], [note("true", wall + 9)], [note("false", wall + 15)]]
    sub, camera = make(index, clock, receiver, life=20, pushes=pushes, stop_after=6)
    sub.run()
    (event,) = index.events("cam")
    assert event.kind == "motion" and event.topic == MOTION
    assert (event.start_us, event.end_us) == ((wall + 9) * 1_000_000, (wall + 15) * 1_000_000)
    assert sub.status()["notifications"] == 3


def test_no_fallback_without_an_event_service(index):
    clock = SimulatedClock()
    receiver = MemoryReceiver()
    sub, camera = make(index, clock, receiver, events=False, stop_after=6)
    sub.run()
    assert "subscribe" not in [op for op, _ in camera.calls]
    assert receiver.inboxes == []
    assert "no ONVIF event service" in sub.status()["last_error"]


def test_no_fallback_without_a_receiver(index):
    clock = SimulatedClock()
    ref = []
    camera = PushingCamera(clock, MemoryReceiver(), ref, stop_after=6)
    sub = EventSubscriber("cam", "http://cam/onvif/device_service", None, None, index,
                          clock=clock, rng=random.Random(3), client_factory=camera.factory)
    ref.append(sub)
    sub.run()
    assert "subscribe" not in [op for op, _ in camera.calls]
    assert "refused a PullPoint subscription" in sub.status()["last_error"]
    assert sub.status()["failures"] >= 2


def test_the_receiver_takes_its_address_and_port_from_the_camera_settings():
    import pytest

    from appliance.config.cameras import build_camera_settings
    from appliance.core.errors import InvalidConfig
    from appliance.events.receiver import receiver_for

    default = receiver_for(build_camera_settings({}))
    assert default.settings.host is None and default.settings.port == 8086
    chosen = receiver_for(build_camera_settings({"event_notify_address": "192.168.10.1",
                                                 "event_notify_port": 9000}))
    assert chosen.settings.host == "192.168.10.1" and chosen.settings.port == 9000
    for bad in ({"event_notify_address": "camera-net"}, {"event_notify_port": 80}):
        with pytest.raises(InvalidConfig):
            build_camera_settings(bad)
