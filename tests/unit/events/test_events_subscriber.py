"""The subscriber's loop on a simulated clock, with a scripted event service standing in
for the camera (the loop is under test here; the real client is tested against a fake
camera in tests/integration/cameras/test_onvif_events.py): renew at half-life, jittered
growing backoff, camera times moved onto our clock, unsubscribe on stop."""

from __future__ import annotations

import random


from appliance.cameras.onvif.events import Notification, PullResult, Subscription
from appliance.cameras.onvif.transport import CameraUnreachable
from appliance.core.clock import SimulatedClock
from appliance.events.subscriber import EventSubscriber, SubscriberSettings

MOTION = "tns1:VideoSource/MotionAlarm"


class ScriptedService:
    """A camera's event service in memory: subscriptions of `life` seconds, pulls that
    return `pulls` in turn, `failures` failed connections first; stops the subscriber
    after `stop_after` calls."""

    def __init__(self, clock, subscriber_ref, *, offset=0.0, life=60.0, pulls=None,
                 failures=0, stop_after=10):
        self.clock, self.ref, self.offset, self.life = clock, subscriber_ref, offset, life
        self.pulls = list(pulls or [])
        self.failures = failures
        self.calls: list[tuple[str, float]] = []
        self.stop_after = stop_after

    def factory(self, xaddr, creds, policy, **kwargs):
        service = self

        class Client:
            clock_offset = None

            def sync_clock(self):
                self.clock_offset = service.offset
                service.log("sync_clock")
                if service.failures:
                    service.failures -= 1
                    raise CameraUnreachable("http://cam/: connection refused")

            def create_pull_point(self, termination_s):
                service.log("create")
                now = service.clock.wall() + service.offset
                return Subscription("http://cam/sub", "", now + service.life, now)

            def renew(self, sub, termination_s):
                service.log("renew")
                now = service.clock.wall() + service.offset
                return Subscription(sub.address, "", now + service.life, now)

            def pull(self, sub, timeout_s, limit):
                service.log("pull")
                service.clock.advance(timeout_s)       # a long poll that found nothing
                notes = service.pulls.pop(0) if service.pulls else []
                return PullResult(notes, None, None)

            def unsubscribe(self, sub):
                service.log("unsubscribe")

        return Client()

    def log(self, op):
        self.calls.append((op, self.clock.monotonic()))
        if len(self.calls) >= self.stop_after:
            self.ref[0].request_stop()


def make(index, clock, settings=SubscriberSettings(), **script):
    ref = []
    service = ScriptedService(clock, ref, **script)
    sub = EventSubscriber("cam", "http://cam/onvif/device_service", None, None, index,
                          settings=settings, clock=clock, rng=random.Random(3),
                          client_factory=service.factory)
    ref.append(sub)
    return sub, service


def test_renews_at_half_the_lifetime(index):
    clock = SimulatedClock()
    sub, service = make(index, clock, SubscriberSettings(termination_s=60, pull_timeout_s=10),
                        life=20, stop_after=12)
    start = clock.monotonic()
    sub.run()
    ops = [op for op, _ in service.calls]
    assert ops[:2] == ["sync_clock", "create"] and ops[-1] == "unsubscribe"
    renew_times = [t - start for op, t in service.calls if op == "renew"]
    assert renew_times[:2] == [10.0, 20.0]           # the camera said 20 s: renew every 10 s
    assert sub.status()["state"] == "stopped"


def test_backoff_grows_with_jitter_and_resets_after_a_subscription(index):
    clock = SimulatedClock()
    settings = SubscriberSettings(backoff_initial_s=2, backoff_cap_s=30)
    sub, service = make(index, clock, settings, failures=6, stop_after=16)
    sub.run()
    bases = [2, 4, 8, 16, 30, 30]                      # doubling up to the cap, then jitter
    assert all(base / 2 <= d <= base for base, d in zip(bases, clock.sleeps[:6]))
    assert len(set(clock.sleeps[:6])) == 6
    assert sub.status()["failures"] == 6 and sub.status()["subscriptions"] == 1
    assert sub.backoff.failures == 0
    assert "connection refused" in sub.status()["last_error"]


def test_camera_times_are_moved_onto_our_clock(index):
    clock = SimulatedClock(wall=1_800_000_000.0)
    skew = 3600.0                                       # the camera is an hour ahead
    at = clock.wall() + skew - 5                        # it saw motion 5 s ago, its time
    notes = [[Notification(MOTION, at, "Changed", (("Source", "1"),), (("State", "true"),)),
              Notification(MOTION, 1.0, "Changed", (("Source", "2"),), (("State", "true"),))]]
    sub, service = make(index, clock, offset=skew, pulls=notes, stop_after=4)
    wall_at_pull = clock.wall()
    sub.run()
    first, second = index.events("cam")
    assert abs(first.start_us / 1e6 - (at - skew)) < 1e-3   # its time minus its offset
    # 1970 is not believed: the time it arrived is used instead
    assert abs(second.start_us / 1e6 - (wall_at_pull + 10)) < 1e-3
    assert first.end_us is not None                     # closed when the subscriber stopped
