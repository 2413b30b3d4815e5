"""Updates from a USB stick: a stick left in the slot must never install twice, never
reinstall a release this box rolled back, always be unmounted, and the box reboots only
into something that installed."""

from pathlib import Path

import pytest

from appliance.core.commands import CommandResult
from appliance.core.errors import FailedPrecondition, InvalidConfig
from appliance.update.store import UpdateStore
from appliance.update.usb import install_from_directory, install_from_stick


class FakeService:
    """What the USB path uses of UpdateService: check_bundle, apply, store and reboot."""

    def __init__(self, store, version="0.3.0"):
        self.store = store
        self.version = version
        self.refusal = None
        self.apply_error = None
        self.applied = []
        self.reboots = 0

    def check_bundle(self, bundle):
        if self.refusal:
            raise self.refusal
        return {"version": self.version, "build": 300}

    def apply(self, bundle, progress=None, reboot=True):
        if self.apply_error:
            raise self.apply_error
        self.applied.append((bundle.name, progress, reboot))
        return {"version": self.version, "rebooting": reboot}

    def reboot(self):
        self.reboots += 1


class FakeMount:
    """`mount` and `umount` as the stick sees them: a mount puts the stick's files in the
    target directory; every command is recorded."""

    def __init__(self, files=("vigil-0.3.0-arm64.raucb",), mount_code=0):
        self.files = files
        self.mount_code = mount_code
        self.argv = []

    def __call__(self, argv, *, timeout, input=None):
        self.argv.append(list(argv))
        if argv[0] == "mount":
            if self.mount_code:
                return CommandResult(self.mount_code, "", "mount: /dev/sdb1: wrong fs type, bad option")
            for name in self.files:
                (Path(argv[-1]) / name).write_bytes(b"bundle")
        return CommandResult(0, "", "")

    def commands(self):
        return [argv[0] for argv in self.argv]


@pytest.fixture
def service(tmp_path):
    return FakeService(UpdateStore(tmp_path / "persist/update"))


@pytest.fixture
def stick(tmp_path):
    path = tmp_path / "stick"
    path.mkdir()
    return path


def progress(percent, text):
    """Stands in for the caller's progress report."""


# --- the stick's files ------------------------------------------------------------------------

def test_a_stick_without_a_bundle_is_not_an_update_stick(stick, service):
    (stick / "holiday.jpg").write_bytes(b"jpeg")
    (stick / "notes.raucb.txt").write_bytes(b"text")
    assert install_from_directory(stick, service, progress) == "no update bundle (*.raucb) on this USB stick"
    assert service.applied == []


def test_two_bundles_are_refused_naming_both(stick, service):
    for name in ("vigil-0.3.0-arm64.raucb", "vigil-0.4.0-arm64.raucb"):
        (stick / name).write_bytes(b"bundle")
    with pytest.raises(InvalidConfig, match=r"holds 2 bundles \(vigil-0.3.0-arm64.raucb, "
                                            r"vigil-0.4.0-arm64.raucb\): keep only the one"):
        install_from_directory(stick, service, progress)
    assert service.applied == []


def test_a_symlinked_bundle_is_ignored(stick, service, tmp_path):
    elsewhere = tmp_path / "elsewhere.raucb"
    elsewhere.write_bytes(b"bundle")
    (stick / "vigil-0.3.0-arm64.raucb").symlink_to(elsewhere)
    assert install_from_directory(stick, service, progress).startswith("no update bundle")
    assert service.applied == []


def test_a_directory_named_like_a_bundle_is_ignored(stick, service):
    (stick / "old.raucb").mkdir()
    assert install_from_directory(stick, service, progress).startswith("no update bundle")


def test_the_running_release_left_on_the_stick_is_not_installed(stick, service):
    (stick / "vigil-0.2.0-arm64.raucb").write_bytes(b"bundle")
    service.refusal = FailedPrecondition("0.2.0 (build 200) is the release already running")
    assert install_from_directory(stick, service, progress) == (
        "vigil-0.2.0-arm64.raucb not installed: 0.2.0 (build 200) is the release already running")
    assert service.applied == []


def test_a_bundle_the_box_cannot_take_is_an_error_not_a_message(stick, service):
    (stick / "vigil-0.1.0-arm64.raucb").write_bytes(b"bundle")
    service.refusal = InvalidConfig("bundle 0.1.0 (build 100) is older than the running 0.2.0")
    with pytest.raises(InvalidConfig, match="older than the running"):
        install_from_directory(stick, service, progress)
    assert service.applied == []


def test_a_release_rolled_back_before_is_not_installed_again(stick, service):
    (stick / "vigil-0.3.0-arm64.raucb").write_bytes(b"bundle")
    service.store.record("rolled_back", "update to 0.3.0 failed and was rolled back: web down",
                         version="0.3.0", running="0.2.0")
    assert install_from_directory(stick, service, progress) == (
        "vigil-0.3.0-arm64.raucb not installed: 0.3.0 was rolled back on this box before; "
        "install it from the web page to try again")
    assert service.applied == []


def test_a_release_that_only_failed_to_install_is_tried_again(stick, service):
    (stick / "vigil-0.3.0-arm64.raucb").write_bytes(b"bundle")
    service.store.record("install_failed", "update to 0.3.0 failed to install: no space", version="0.3.0")
    assert install_from_directory(stick, service, progress) == "installed 0.3.0 from vigil-0.3.0-arm64.raucb"


def test_a_good_bundle_is_applied_without_rebooting(stick, service):
    (stick / "vigil-0.3.0-arm64.raucb").write_bytes(b"bundle")
    assert install_from_directory(stick, service, progress) == "installed 0.3.0 from vigil-0.3.0-arm64.raucb"
    assert service.applied == [("vigil-0.3.0-arm64.raucb", progress, False)]
    assert service.reboots == 0


# --- mounting the stick -------------------------------------------------------------------------

def test_a_stick_that_does_not_mount_is_left_alone(service, tmp_path):
    runner = FakeMount(mount_code=32)
    assert install_from_stick(Path("/dev/sdb1"), service, progress, runner, tmp_path / "mnt") == 0
    assert runner.commands() == ["mount"]
    assert service.applied == [] and service.reboots == 0


def test_the_stick_is_mounted_read_only_installed_unmounted_then_the_box_reboots(service, tmp_path, capsys):
    runner = FakeMount()
    target = tmp_path / "mnt/sdb1"
    assert install_from_stick(Path("/dev/sdb1"), service, progress, runner, tmp_path / "mnt") == 0
    assert runner.argv == [["mount", "-o", "ro,nosuid,nodev,noexec", "/dev/sdb1", str(target)],
                           ["umount", str(target)]]
    assert service.applied == [("vigil-0.3.0-arm64.raucb", progress, False)]
    assert service.reboots == 1
    assert capsys.readouterr().out == "installed 0.3.0 from vigil-0.3.0-arm64.raucb\n"


def test_a_stick_with_nothing_to_install_is_unmounted_and_the_box_does_not_reboot(service, tmp_path):
    runner = FakeMount(files=())
    install_from_stick(Path("/dev/sdb1"), service, progress, runner, tmp_path / "mnt")
    assert runner.commands() == ["mount", "umount"]
    assert service.reboots == 0


@pytest.mark.parametrize("error", [FailedPrecondition("the install failed: No space left on device"),
                                   OSError("I/O error reading the stick")])
def test_a_failed_install_still_unmounts_and_does_not_reboot(service, tmp_path, error):
    runner = FakeMount()
    service.apply_error = error
    with pytest.raises(type(error)):
        install_from_stick(Path("/dev/sdb1"), service, progress, runner, tmp_path / "mnt")
    assert runner.commands() == ["mount", "umount"]
    assert service.reboots == 0


def test_two_bundles_on_a_stick_unmount_it_and_do_not_reboot(service, tmp_path):
    runner = FakeMount(files=("a.raucb", "b.raucb"))
    with pytest.raises(InvalidConfig):
        install_from_stick(Path("/dev/sdb1"), service, progress, runner, tmp_path / "mnt")
    assert runner.commands() == ["mount", "umount"]
    assert service.reboots == 0


@pytest.mark.parametrize("device", ["/dev/../etc/x", "/dev/sdb1/../../etc", "sda1", "dev/sda1",
                                    "/tmp/sda1", "/dev"])
def test_a_path_that_is_not_a_device_is_refused_before_anything_runs(service, tmp_path, device):
    runner = FakeMount()
    with pytest.raises(InvalidConfig, match="is not a block device path"):
        install_from_stick(Path(device), service, progress, runner, tmp_path / "mnt")
    assert runner.argv == []
    assert not (tmp_path / "mnt").exists()
