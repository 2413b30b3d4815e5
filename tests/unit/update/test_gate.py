"""The health gate's rules with stand-in probes and a simulated clock: an update is kept
only when the box records again, and a hopeless one is rolled back without waiting."""

import pytest

from appliance.update.gate import (RECORDER_GIVE_UP_RESTARTS, CameraProgress, evaluate, failures,
                                   wait_until_healthy)
from appliance.update.store import Pending

BOOT_US = 5_000_000_000
LIMIT = 60.0
INTERVAL = 5.0


class SimClock:
    """time.monotonic and time.sleep for the gate: sleeping advances time, instantly."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


class FakeProbes:
    """A healthy box unless a test changes it; `cameras_at` lets the rows change over time."""

    def __init__(self, clock=None):
        self.clock = clock
        self.recorder_state = ("active", 0)
        self.mounted = True
        self.web = (True, "the web UI answers (200)")
        self.rows = {"front": CameraProgress("recording", BOOT_US + 1, 3)}
        self.cameras_at = None
        self.storage_asked = 0

    def recorder(self):
        return self.recorder_state

    def storage_mounted(self):
        self.storage_asked += 1
        return self.mounted

    def web_answers(self):
        return self.web

    def cameras(self):
        return self.cameras_at(self.clock()) if self.cameras_at else self.rows


def a_pending(cameras=("front",), storage_mounted=True):
    return Pending("0.2.0", 200, "B", "0.1.0", 100, "A", list(cameras), storage_mounted)


def wait(pending, probes, clock):
    return wait_until_healthy(pending, probes, BOOT_US, LIMIT, INTERVAL, clock=clock, sleep=clock.sleep)


def test_a_healthy_box_passes_at_once():
    clock = SimClock()
    healthy, checks = wait(a_pending(), FakeProbes(), clock)
    assert healthy
    assert [c.name for c in checks] == ["recorder", "storage", "web", "camera front"]
    assert clock.sleeps == []


def test_the_gate_waits_for_a_camera_to_record_again_then_passes():
    clock = SimClock()
    probes = FakeProbes(clock)
    start = clock.now
    probes.cameras_at = lambda t: {"front": CameraProgress("recording", BOOT_US + 1, 1 if t >= start + 20 else 0)}
    healthy, _ = wait(a_pending(), probes, clock)
    assert healthy
    assert clock.now == start + 20
    assert clock.sleeps == [INTERVAL] * 4


@pytest.mark.parametrize("row", [CameraProgress("recording", BOOT_US - 1, 7),
                                 CameraProgress("connecting", BOOT_US + 10, 0)],
                         ids=["heartbeat-before-boot", "no-fragments"])
def test_a_camera_not_recording_since_the_boot_fails_at_the_limit_by_name(row):
    clock = SimClock()
    probes = FakeProbes(clock)
    probes.rows = {"front": CameraProgress("recording", BOOT_US + 5, 9), "back": row}
    start = clock.now
    healthy, checks = wait(a_pending(("front", "back")), probes, clock)
    assert not healthy
    assert clock.now == start + LIMIT
    assert sum(clock.sleeps) == LIMIT and len(clock.sleeps) == LIMIT / INTERVAL
    failed = [c for c in checks if not c.ok]
    assert [c.name for c in failed] == ["camera back"]
    assert failures(checks) == f"camera back not recording since the update ({row.state})"


def test_a_camera_the_recorder_has_not_started_is_named():
    checks, hopeless = evaluate(a_pending(("front", "garage")), FakeProbes(), BOOT_US)
    assert not hopeless
    assert {c.name: (c.ok, c.detail) for c in checks}["camera garage"] == (
        False, "camera garage not started by the recorder")


def test_cameras_that_did_not_record_before_the_update_are_not_waited_for():
    probes = FakeProbes()
    probes.rows = {"front": CameraProgress("recording", BOOT_US + 1, 3),
                   "spare": CameraProgress("error", 0, 0)}
    healthy, checks = wait(a_pending(("front",)), probes, SimClock())
    assert healthy
    assert "camera spare" not in [c.name for c in checks]


@pytest.mark.parametrize("restarts", [RECORDER_GIVE_UP_RESTARTS, RECORDER_GIVE_UP_RESTARTS + 3])
def test_a_recorder_that_keeps_failing_fails_the_gate_at_once(restarts):
    clock = SimClock()
    probes = FakeProbes(clock)
    probes.recorder_state = ("activating", restarts)
    healthy, checks = wait(a_pending(), probes, clock)
    assert not healthy
    assert clock.sleeps == []
    assert failures(checks) == f"the recorder failed to start {restarts} times"


def test_a_recorder_restarting_a_few_times_is_waited_for():
    clock = SimClock()
    probes = FakeProbes(clock)
    probes.recorder_state = ("activating", RECORDER_GIVE_UP_RESTARTS - 1)
    healthy, checks = wait(a_pending(), probes, clock)
    assert not healthy
    assert sum(clock.sleeps) == LIMIT
    assert failures(checks) == "recorder service activating"


def test_storage_is_checked_only_when_a_disk_was_mounted_before():
    probes = FakeProbes()
    probes.mounted = False
    checks, _ = evaluate(a_pending(storage_mounted=False), probes, BOOT_US)
    assert probes.storage_asked == 0
    assert all(c.ok for c in checks) and "storage" not in [c.name for c in checks]

    checks, hopeless = evaluate(a_pending(storage_mounted=True), probes, BOOT_US)
    assert probes.storage_asked == 1 and not hopeless
    assert failures(checks) == "the data disk is not mounted"


def test_a_web_ui_that_does_not_answer_is_named_in_the_failure():
    clock = SimClock()
    probes = FakeProbes(clock)
    probes.web = (False, "the web UI does not answer ([Errno 111] Connection refused)")
    healthy, checks = wait(a_pending(), probes, clock)
    assert not healthy
    assert failures(checks) == "the web UI does not answer ([Errno 111] Connection refused)"


def test_every_failing_check_is_in_the_failure_text():
    probes = FakeProbes()
    probes.recorder_state = ("failed", 1)
    probes.mounted = False
    probes.web = (False, "the web UI does not answer (timed out)")
    probes.rows = {}
    checks, _ = evaluate(a_pending(), probes, BOOT_US)
    assert failures(checks) == ("recorder service failed; the data disk is not mounted; "
                                "the web UI does not answer (timed out); camera front not started by the recorder")
