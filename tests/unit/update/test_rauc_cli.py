"""The `rauc` command line as RAUC 1.8 really answers it: what is asked (argv), how its
JSON is read, and what an owner reads when RAUC says no."""

import json
import re
import textwrap

import pytest

from appliance.core.commands import CommandResult
from appliance.core.errors import FailedPrecondition, InvalidConfig, Unavailable
from appliance.update.rauc import BundleInfo, Rauc, Slot

# `rauc info --output-format=json` of a bundle made by image/bundle (RAUC 1.8).
INFO = {"compatible": "vigil-nvr-arm64", "version": "0.2.0", "description": None,
        "build": "1800000000", "hooks": [],
        "images": [{"rootfs": {"variant": None, "filename": "root.squashfs", "checksum": "a7ac",
                               "size": 303104, "hooks": [], "adaptive": []}},
                   {"boot": {"variant": None, "filename": "boot.vfat", "checksum": "7494",
                             "size": 1048576, "hooks": ["post-install"], "adaptive": []}}]}

INFO_LOG = ("rauc-Message: 07:58:46.577: Config option 'statusfile=<path>/per-slot' unset, "
            "falling back to per-slot status\n"
            "rauc-Message: 07:58:46.577: Reading bundle: /tmp/b.raucb\n"
            "rauc-Message: 07:58:46.578: Verifying bundle signature... \n")

# What RAUC 1.8 writes to stderr for a bundle signed by a key the keyring does not know.
UNKNOWN_SIGNER = INFO_LOG + "signature verification failed: Verify error: self-signed certificate\n"


def slot(cls, device, bootname=None, state="inactive", boot_status=None, parent=None,
         bundle=None, installed=None):
    entry = {"class": cls, "device": device, "type": "raw" if cls == "rootfs" else "vfat",
             "bootname": bootname, "state": state, "parent": parent,
             "mountpoint": "/" if state == "booted" else None, "boot_status": boot_status,
             "slot_status": {"bundle": bundle or {"compatible": None, "version": None,
                                                  "description": None, "build": None, "hash": None},
                             "checksum": {"sha256": None, "size": None},
                             "installed": installed or {"timestamp": None, "count": None},
                             "activated": {"timestamp": None, "count": None}, "status": None}}
    return entry


# `rauc status --detailed --output-format=json` on a box booted from A, B never installed.
STATUS = {
    "compatible": "vigil-nvr-arm64", "variant": "", "booted": "A", "boot_primary": "rootfs.0",
    "slots": [
        {"rootfs.0": slot("rootfs", "/dev/disk/by-partlabel/vigil-root-a", "A", "booted", "good",
                          bundle={"compatible": "vigil-nvr-arm64", "version": "0.1.0",
                                  "description": "Vigil NVR 0.1.0 (0123abc)", "build": "1",
                                  "hash": "ab12"},
                          installed={"timestamp": "2026-11-24T08:00:00Z", "count": 1})},
        {"boot.0": slot("boot", "/dev/disk/by-partlabel/vigil-boot-a", state="active",
                        parent="rootfs.0")},
        {"rootfs.1": slot("rootfs", "/dev/disk/by-partlabel/vigil-root-b", "B", "inactive", "bad")},
        {"boot.1": slot("boot", "/dev/disk/by-partlabel/vigil-boot-b", parent="rootfs.1")},
    ]}


class FakeRunner:
    """Answers every command with `result`; records (argv, timeout)."""

    def __init__(self, returncode=0, stdout="", stderr=""):
        self.result = CommandResult(returncode, stdout, stderr)
        self.calls = []

    def __call__(self, argv, *, timeout, input=None):
        self.calls.append((list(argv), timeout))
        return self.result

    def argv(self):
        return [argv for argv, _ in self.calls]


# --- info ---------------------------------------------------------------------------------------

def test_info_asks_rauc_with_the_system_conf_and_reads_the_manifest(tmp_path):
    runner = FakeRunner(stdout=json.dumps(INFO) + "\n", stderr=INFO_LOG)
    info = Rauc(runner, conf=tmp_path / "system.conf").info(tmp_path / "b.raucb")
    assert runner.argv() == [["rauc", f"--conf={tmp_path}/system.conf", "info", "--output-format=json",
                              f"{tmp_path}/b.raucb"]]
    assert info == BundleInfo("vigil-nvr-arm64", "0.2.0", "1800000000", "", ["rootfs", "boot"])


def test_info_without_a_conf_uses_rauc_s_default(tmp_path):
    runner = FakeRunner(stdout=json.dumps(INFO))
    Rauc(runner).info(tmp_path / "b.raucb")
    assert runner.argv()[0][:3] == ["rauc", "info", "--output-format=json"]


def test_info_skips_log_lines_before_the_json():
    runner = FakeRunner(stdout=INFO_LOG + json.dumps({**INFO, "description": "Vigil NVR 0.2.0",
                                                      "build": None}))
    info = Rauc(runner).info("b.raucb")
    assert (info.version, info.build, info.description) == ("0.2.0", "", "Vigil NVR 0.2.0")


def test_a_bundle_rauc_rejects_is_invalid_with_rauc_s_reason_without_its_progress_notes():
    runner = FakeRunner(returncode=1, stderr=UNKNOWN_SIGNER)
    with pytest.raises(InvalidConfig) as refused:
        Rauc(runner).info("b.raucb")
    assert str(refused.value) == ("not a valid update bundle: signature verification failed: "
                                  "Verify error: self-signed certificate")


def test_a_failure_told_only_in_log_lines_keeps_them_without_prefix_and_time():
    runner = FakeRunner(returncode=1, stderr=INFO_LOG)
    with pytest.raises(InvalidConfig) as refused:
        Rauc(runner).info("b.raucb")
    message = str(refused.value)
    assert message.endswith("Reading bundle: /tmp/b.raucb / Verifying bundle signature...")
    assert "rauc-Message" not in message
    assert not re.search(r"\d\d:\d\d:\d\d\.\d+", message)


def test_a_failure_rauc_explains_on_stdout_is_reported_too():
    runner = FakeRunner(returncode=1, stdout="Invalid bundle format: Signature size is 0\n")
    with pytest.raises(InvalidConfig, match="^not a valid update bundle: Invalid bundle format: "
                                            "Signature size is 0$"):
        Rauc(runner).info("b.raucb")


def test_a_silent_failure_reports_the_exit_code():
    with pytest.raises(InvalidConfig, match="rauc exited with 2"):
        Rauc(FakeRunner(returncode=2)).info("b.raucb")


def test_an_answer_without_a_manifest_is_invalid():
    with pytest.raises(InvalidConfig, match="RAUC gave no manifest"):
        Rauc(FakeRunner(stdout="idle\n")).info("b.raucb")


# --- status and slots ---------------------------------------------------------------------------

def test_slots_keeps_only_the_root_slots_with_their_bundles():
    assert Rauc(FakeRunner()).slots(STATUS) == [
        Slot("rootfs.0", "A", "booted", "good", "0.1.0", "1", "2026-11-24T08:00:00Z"),
        Slot("rootfs.1", "B", "inactive", "bad", "", "", ""),
    ]


def test_slots_asks_rauc_for_the_detailed_status():
    runner = FakeRunner(stdout=json.dumps(STATUS))
    assert [s.name for s in Rauc(runner).slots()] == ["rootfs.0", "rootfs.1"]
    assert runner.argv() == [["rauc", "status", "--detailed", "--output-format=json"]]


def test_a_slot_without_any_status_is_still_listed():
    status = {"slots": [{"rootfs.1": {"class": "rootfs", "bootname": "B", "state": "inactive",
                                      "slot_status": None}}]}
    assert Rauc(FakeRunner()).slots(status) == [Slot("rootfs.1", "B", "inactive", "", "", "", "")]


def test_an_engine_that_does_not_answer_is_unavailable():
    runner = FakeRunner(returncode=1, stderr="Error retrieving slot status via D-Bus: error creating "
                                             "proxy: Could not connect: No such file or directory\n")
    with pytest.raises(Unavailable, match="does not answer: Error retrieving slot status via D-Bus"):
        Rauc(runner).status()
    with pytest.raises(Unavailable, match="not JSON"):
        Rauc(FakeRunner(stdout="booted: A\n")).status()


# --- mark ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("state, slot_name", [("good", "booted"), ("bad", "booted"), ("bad", "other"),
                                              ("active", "booted")])
def test_mark_asks_rauc_to_mark_the_slot(tmp_path, state, slot_name):
    runner = FakeRunner()
    Rauc(runner, conf=tmp_path / "system.conf").mark(state, slot_name)
    assert runner.argv() == [["rauc", f"--conf={tmp_path}/system.conf", "status", f"mark-{state}", slot_name]]


def test_mark_defaults_to_the_booted_slot():
    runner = FakeRunner()
    Rauc(runner).mark("good")
    assert runner.argv() == [["rauc", "status", "mark-good", "booted"]]


@pytest.mark.parametrize("state, slot_name", [("good", "rootfs.1"), ("delete", "booted"), ("good", "")])
def test_mark_refuses_what_rauc_is_never_asked_without_running_it(state, slot_name):
    runner = FakeRunner()
    with pytest.raises(ValueError):
        Rauc(runner).mark(state, slot_name)
    assert runner.calls == []


def test_a_mark_rauc_refuses_is_unavailable_naming_the_slot():
    runner = FakeRunner(returncode=1, stderr="rauc-Message: 08:03:32.754: Using per-slot statusfile\n"
                                             "Failed marking slot: fw_setenv failed\n")
    with pytest.raises(Unavailable, match=r"^cannot mark the other slot bad: Failed marking slot: "
                                          r"fw_setenv failed$"):
        Rauc(runner).mark("bad", "other")


# --- install (a stand-in `rauc` executable: install streams its progress) -------------------------

def fake_rauc(tmp_path, script):
    path = tmp_path / "rauc"
    path.write_text("#!/bin/sh\n" + textwrap.dedent(script))
    path.chmod(0o755)
    return str(path)


def test_install_reports_rauc_s_progress(tmp_path):
    exe = fake_rauc(tmp_path, """\
        echo "installing"
        echo "  0% Installing"
        echo " 40% Checking slot rootfs.1 done."
        echo "100% Installing done."
        echo "idle"
        echo "Installing \\`$3' succeeded"
        """)
    seen = []
    Rauc(executable=exe, conf=tmp_path / "system.conf").install(tmp_path / "b.raucb",
                                                                 lambda p, t: seen.append((p, t)))
    assert seen == [(0, "Installing"), (40, "Checking slot rootfs.1 done."), (100, "Installing done.")]


def test_a_failed_install_says_why_without_progress_lines(tmp_path):
    exe = fake_rauc(tmp_path, """\
        echo "  0% Installing"
        echo " 20% Checking bundle failed."
        echo "rauc-Message: 08:10:00.100: LastError: Installation error: bundle is older than the floor"
        echo "Installing \\`/tmp/b.raucb' failed"
        exit 1
        """)
    with pytest.raises(FailedPrecondition, match=r"^the install failed: LastError: Installation error: "
                                                 r"bundle is older than the floor / Installing `/tmp/b.raucb' failed$"):
        Rauc(executable=exe).install(tmp_path / "b.raucb")


def test_an_install_that_hangs_is_stopped(tmp_path):
    exe = fake_rauc(tmp_path, "exec sleep 30\n")
    with pytest.raises(FailedPrecondition, match="did not finish within 0.2 s"):
        Rauc(executable=exe).install(tmp_path / "b.raucb", timeout=0.2)


def test_a_missing_rauc_is_unavailable(tmp_path):
    with pytest.raises(Unavailable, match="cannot run rauc"):
        Rauc(executable=str(tmp_path / "no-rauc")).install(tmp_path / "b.raucb")
