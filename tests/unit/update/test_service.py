"""UpdateService end to end on plain files: a stand-in RAUC that records what it is asked,
a tmp /persist, build.json and /proc/cmdline, and probes that say how the box is doing.
What matters is what reaches RAUC (which slot is marked what, in which order), the
anti-rollback floor, and the words the owner reads in the history."""

import json
from dataclasses import asdict

import pytest

from appliance.core.errors import FailedPrecondition, InvalidConfig
from appliance.update.gate import CameraProgress
from appliance.update.rauc import BundleInfo
from appliance.update.service import MAX_BUNDLE_BYTES, RECENT_US, UpdateService
from appliance.update.store import Pending, UpdateStore
from appliance.update.versions import Release

COMPATIBLE = "vigil-nvr-arm64"
NOW = 1_800_000_000.0
NOW_US = int(NOW * 1_000_000)
BOOT_US = NOW_US - 100_000_000          # this boot began 100 s ago


class FakeRauc:
    """RAUC as the service sees it: `info` answers from `bundle`, `install` may fail, and
    every call is recorded in order."""

    def __init__(self):
        self.calls = []
        self.bundle = BundleInfo(COMPATIBLE, "0.3.0", "300", "Vigil NVR 0.3.0 (abc)", ["rootfs", "boot"])
        self.install_error = None

    def info(self, bundle):
        self.calls.append(("info", bundle.name))
        return self.bundle

    def install(self, bundle, progress=None):
        self.calls.append(("install", bundle.name))
        if self.install_error:
            raise self.install_error

    def mark(self, state, slot="booted"):
        self.calls.append(("mark", state, slot))

    def slots(self):
        return []

    def marks(self):
        return [call[1:] for call in self.calls if call[0] == "mark"]


class FakeProbes:
    def __init__(self):
        self.recorder_state = ("active", 0)
        self.mounted = True
        self.rows = {}

    def recorder(self):
        return self.recorder_state

    def storage_mounted(self):
        return self.mounted

    def web_answers(self):
        return True, "the web UI answers (200)"

    def cameras(self):
        return self.rows


class Box:
    """One appliance: its running release, its booted slot, RAUC, /persist and reboots."""

    def __init__(self, tmp_path, max_bundle_bytes=MAX_BUNDLE_BYTES):
        self.tmp = tmp_path
        self.build_json = tmp_path / "build.json"
        self.cmdline = tmp_path / "cmdline"
        self.rauc = FakeRauc()
        self.store = UpdateStore(tmp_path / "persist/update", now=lambda: NOW)
        self.probes = FakeProbes()
        self.reboots = 0
        self.run("0.2.0", 200, slot="A")
        # gate_limit 0: the gate decides on its first look (test_gate covers the waiting).
        self.service = UpdateService(self.rauc, self.store, self.probes, build_json=self.build_json,
                                     cmdline=self.cmdline, reboot=self.reboot,
                                     boot_time_us=lambda: BOOT_US, max_bundle_bytes=max_bundle_bytes,
                                     gate_limit=0.0, now=lambda: NOW)

    def reboot(self):
        self.reboots += 1

    def run(self, version, build, slot):
        """A boot into `slot`, running `version` (what that slot's root holds); RAUC's call
        log starts afresh."""
        self.build_json.write_text(json.dumps({"version": version, "source_date_epoch": build,
                                               "commit": "0123abc", "rauc_compatible": COMPATIBLE}))
        self.cmdline.write_text(f"console=ttyAMA0 root=PARTLABEL=vigil-root-{slot.lower()} "
                                f"rauc.slot={slot} rootfstype=squashfs ro\n")
        self.rauc.calls.clear()

    def bundle(self, size=4096, name="update.raucb"):
        path = self.tmp / name
        with open(path, "wb") as out:
            out.truncate(size)
        return path

    def manifest(self, version="0.3.0", build=300, compatible=COMPATIBLE):
        path = self.tmp / "bundle-mount/manifest.raucm"
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"[update]\ncompatible={compatible}\nversion={version}\nbuild={build}\n"
                        f"description=Vigil NVR {version}\n\n[bundle]\nformat=verity\n\n"
                        f"[image.rootfs]\nfilename=root.squashfs\n")
        return path

    def recording_since_boot(self, *cameras):
        self.probes.rows = {name: CameraProgress("recording", BOOT_US + 1_000_000, 4) for name in cameras}


@pytest.fixture
def box(tmp_path):
    return Box(tmp_path)


def trial_pending(**changes):
    """0.2.0 in slot A installed 0.3.0 into slot B; the gate waits for camera front."""
    fields = dict(to_version="0.3.0", to_build=300, to_slot="B", from_version="0.2.0",
                  from_build=200, from_slot="A", cameras=["front"], storage_mounted=True,
                  installed_at=NOW - 600)
    return Pending(**{**fields, **changes})


# --- check_bundle ------------------------------------------------------------------------

def test_a_newer_signed_bundle_for_this_box_passes_and_nothing_is_written(box):
    checked = box.service.check_bundle(box.bundle())
    assert checked == {"version": "0.3.0", "build": 300, "description": "Vigil NVR 0.3.0 (abc)",
                       "compatible": COMPATIBLE, "bytes": 4096}
    assert box.rauc.calls == [("info", "update.raucb")]
    assert not box.store.dir.exists()


def test_an_oversized_bundle_is_refused_before_rauc_reads_it(tmp_path):
    box = Box(tmp_path, max_bundle_bytes=10 << 20)
    with pytest.raises(InvalidConfig, match=r"the bundle is 11 MiB, more than the 10 MiB"):
        box.service.check_bundle(box.bundle(size=(10 << 20) + 1))
    assert box.rauc.calls == []


def test_a_bundle_that_cannot_be_read_is_refused(box):
    with pytest.raises(InvalidConfig, match="cannot read the bundle"):
        box.service.check_bundle(box.tmp / "missing.raucb")
    assert box.rauc.calls == []


def test_a_bundle_for_another_product_is_refused(box):
    box.rauc.bundle = BundleInfo("other-box", "0.3.0", "300", "", [])
    with pytest.raises(InvalidConfig, match=r"for 'other-box', not this box \('vigil-nvr-arm64'\)"):
        box.service.check_bundle(box.bundle())


@pytest.mark.parametrize("version, build", [("0.1.9", "999"), ("0.2.0", "199")])
def test_a_bundle_older_than_the_running_release_is_refused(box, version, build):
    box.rauc.bundle = BundleInfo(COMPATIBLE, version, build, "", [])
    with pytest.raises(InvalidConfig, match=rf"bundle {version} \(build {build}\) is older than the "
                                            r"running 0.2.0 \(build 200\).*anti-rollback"):
        box.service.check_bundle(box.bundle())


def test_a_bundle_older_than_the_floor_is_refused_though_newer_than_the_running_one(box):
    box.store.raise_floor(Release.parse("0.4.0", 400))
    with pytest.raises(InvalidConfig, match=r"bundle 0.3.0 \(build 300\) is older than 0.4.0 "
                                            r"\(build 400\), the newest release this box has run"):
        box.service.check_bundle(box.bundle())


def test_the_running_release_is_not_installed_again(box):
    box.rauc.bundle = BundleInfo(COMPATIBLE, "0.2.0", "200", "", [])
    with pytest.raises(FailedPrecondition, match=r"0.2.0 \(build 200\) is the release already running"):
        box.service.check_bundle(box.bundle())


def test_no_bundle_installs_while_an_update_is_on_trial(box):
    box.store.set_pending(trial_pending())
    box.run("0.3.0", 300, slot="B")
    box.rauc.bundle = BundleInfo(COMPATIBLE, "0.4.0", "400", "", [])
    with pytest.raises(FailedPrecondition, match="the update to 0.3.0 is still on trial"):
        box.service.check_bundle(box.bundle())


def test_a_bundle_installs_over_one_installed_but_not_yet_booted(box):
    box.store.set_pending(trial_pending())
    box.rauc.bundle = BundleInfo(COMPATIBLE, "0.4.0", "400", "", [])
    assert box.service.check_bundle(box.bundle())["version"] == "0.4.0"


# --- apply -------------------------------------------------------------------------------

def test_apply_installs_then_reboots_into_the_trial(box):
    result = box.service.apply(box.bundle())
    assert box.rauc.calls == [("info", "update.raucb"), ("install", "update.raucb")]
    assert box.reboots == 1
    assert result["rebooting"] is True and result["version"] == "0.3.0"


def test_apply_without_reboot_leaves_the_reboot_to_the_caller(box):
    assert box.service.apply(box.bundle(), reboot=False)["rebooting"] is False
    assert box.reboots == 0


def test_a_failed_install_is_recorded_and_does_not_reboot(box):
    box.rauc.install_error = FailedPrecondition("the install failed: No space left on device")
    with pytest.raises(FailedPrecondition):
        box.service.apply(box.bundle())
    assert box.reboots == 0
    last = box.store.last_result()
    assert last["outcome"] == "install_failed" and last["version"] == "0.3.0"
    assert last["message"] == ("update to 0.3.0 failed to install: the install failed: "
                               "No space left on device")
    assert box.store.pending() is None


def test_a_refused_bundle_is_never_installed(box):
    box.rauc.bundle = BundleInfo(COMPATIBLE, "0.1.0", "100", "", [])
    with pytest.raises(InvalidConfig):
        box.service.apply(box.bundle())
    assert [c[0] for c in box.rauc.calls] == ["info"]
    assert box.store.history() == [] and box.reboots == 0


# --- RAUC's handlers -------------------------------------------------------------------------

def test_pre_install_applies_the_same_rules_to_every_install_path(box):
    box.service.pre_install(box.manifest("0.3.0", 300))
    with pytest.raises(InvalidConfig, match="older than the running"):
        box.service.pre_install(box.manifest("0.1.0", 100))
    with pytest.raises(FailedPrecondition, match="already running"):
        box.service.pre_install(box.manifest("0.2.0", 200))
    with pytest.raises(InvalidConfig, match="not this box"):
        box.service.pre_install(box.manifest(compatible="other-box"))


def test_pre_install_refuses_an_unreadable_manifest(box):
    manifest = box.manifest()
    manifest.write_text("version=0.3.0\n")
    with pytest.raises(InvalidConfig, match="the bundle's manifest is unreadable"):
        box.service.pre_install(manifest)


def test_post_install_arms_the_gate_with_the_cameras_recording_in_the_last_minutes(box):
    box.probes.rows = {
        "front": CameraProgress("recording", NOW_US - 60_000_000, 12),
        "edge": CameraProgress("recording", NOW_US - RECENT_US, 1),           # exactly 3 min
        "back": CameraProgress("recording", NOW_US - RECENT_US - 1, 50),      # just before
        "side": CameraProgress("recording", NOW_US - 1_000_000, 0),           # nothing written
        "garage": CameraProgress("reconnecting", NOW_US - 1_000_000, 3),
    }
    pending = box.service.post_install(box.manifest("0.3.0", 300))
    assert pending == Pending("0.3.0", 300, "B", "0.2.0", 200, "A", ["edge", "front"], True, NOW)
    assert box.store.pending() == pending


def test_post_install_on_slot_b_targets_slot_a_and_remembers_no_disk(box):
    box.run("0.2.0", 200, slot="B")
    box.probes.mounted = False
    pending = box.service.post_install(box.manifest("0.3.0", 300))
    assert (pending.from_slot, pending.to_slot) == ("B", "A")
    assert pending.cameras == [] and pending.storage_mounted is False


# --- at every boot ---------------------------------------------------------------------------

def test_a_normal_boot_marks_the_slot_good_and_raises_the_floor(box):
    assert box.service.on_boot() == {"outcome": "normal", "slot": "A"}
    assert box.rauc.marks() == [("good", "booted")]
    assert box.store.floor() == Release.parse("0.2.0", 200)
    assert box.store.history() == [] and box.reboots == 0


def test_a_healthy_trial_boot_commits_the_update(box):
    box.store.set_pending(trial_pending())
    box.run("0.3.0", 300, slot="B")
    box.recording_since_boot("front")
    result = box.service.on_boot()
    assert result == {"outcome": "committed", "slot": "B", "message": "updated to 0.3.0 from 0.2.0"}
    assert box.rauc.marks() == [("good", "booted")]
    assert box.store.floor() == Release.parse("0.3.0", 300)
    assert box.store.pending() is None and box.reboots == 0
    last = box.store.last_result()
    assert (last["outcome"], last["version"]) == ("committed", "0.3.0")
    assert all(check["ok"] for check in last["checks"])


def test_a_trial_boot_that_fails_the_gate_is_marked_bad_and_reboots(box):
    box.store.set_pending(trial_pending())
    box.run("0.3.0", 300, slot="B")
    box.probes.rows = {"front": CameraProgress("connecting", BOOT_US + 1, 0)}
    result = box.service.on_boot()
    reason = "camera front not recording since the update (connecting)"
    assert result["outcome"] == "rolling_back" and result["message"] == reason
    assert box.rauc.marks() == [("bad", "booted")]
    assert box.reboots == 1
    assert box.store.pending() == trial_pending(failure=reason)
    assert box.store.floor() is None and box.store.history() == []


def booted_back_into_a_after_a_failed_trial(box, failure):
    box.store.set_pending(trial_pending(failure=failure))
    box.run("0.2.0", 200, slot="A")
    return box.service.on_boot()


def test_booting_the_old_slot_while_pending_reports_the_rollback_with_its_reason(box):
    result = booted_back_into_a_after_a_failed_trial(box, "the data disk is not mounted")
    message = "update to 0.3.0 failed and was rolled back: the data disk is not mounted"
    assert result == {"outcome": "rolled_back", "slot": "A", "message": message}
    assert box.rauc.marks() == [("bad", "other"), ("active", "booted"), ("good", "booted")]
    assert box.store.floor() == Release.parse("0.2.0", 200)
    assert box.store.pending() is None and box.reboots == 0
    last = box.store.last_result()
    assert (last["outcome"], last["message"], last["version"], last["running"]) == (
        "rolled_back", message, "0.3.0", "0.2.0")


def test_a_trial_that_never_started_is_reported_as_boot_attempts_run_out(box):
    result = booted_back_into_a_after_a_failed_trial(box, failure="")
    assert result["message"] == ("update to 0.3.0 failed and was rolled back: the new system "
                                 "did not start (its boot attempts ran out)")


def test_a_whole_failed_update_from_install_to_rollback(box):
    box.probes.rows = {"front": CameraProgress("recording", NOW_US - 5_000_000, 30)}
    box.service.post_install(box.manifest("0.3.0", 300))

    box.run("0.3.0", 300, slot="B")
    box.probes.rows = {"front": CameraProgress("recording", BOOT_US - 1, 30)}   # stale row
    assert box.service.on_boot()["outcome"] == "rolling_back"
    assert box.rauc.marks() == [("bad", "booted")] and box.reboots == 1

    box.run("0.2.0", 200, slot="A")
    result = box.service.on_boot()
    assert result["message"] == ("update to 0.3.0 failed and was rolled back: camera front not "
                                 "recording since the update (recording)")
    assert box.rauc.marks() == [("bad", "other"), ("active", "booted"), ("good", "booted")]
    assert box.store.floor() == Release.parse("0.2.0", 200)
    assert box.store.pending() is None


@pytest.mark.parametrize("floor_raised", [False, True], ids=["cut-after-mark-good", "cut-after-floor"])
def test_a_power_cut_before_the_pending_update_is_cleared_commits_again(box, floor_raised):
    box.store.set_pending(trial_pending())
    box.run("0.3.0", 300, slot="B")
    if floor_raised:
        box.store.raise_floor(Release.parse("0.3.0", 300))
    box.recording_since_boot("front")
    assert box.service.on_boot()["outcome"] == "committed"
    assert box.rauc.marks() == [("good", "booted")]
    assert box.store.floor() == Release.parse("0.3.0", 300)
    assert box.store.pending() is None
    assert [e["outcome"] for e in box.store.history()] == ["committed"]
    assert box.service.on_boot() == {"outcome": "normal", "slot": "B"}


def test_status_shows_the_running_release_slot_and_pending_update(box):
    box.store.set_pending(trial_pending())
    status = box.service.status()
    assert status["running"] == {"version": "0.2.0", "build": 200, "commit": "0123abc", "slot": "A"}
    assert status["pending"] == asdict(trial_pending())
    assert status["floor"] is None and status["engine_error"] == ""
