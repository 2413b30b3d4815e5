"""vigil-hwd mounts in the system's mount namespace, not in its sandbox's."""

from pathlib import Path

from appliance.core.commands import CommandResult
from appliance.storage.disks import read_mounts, use_mount_table
from appliance.storage.mount_namespace import PID1_NAMESPACE, system_mounts_runner


def recording_runner(calls):
    def run(argv, **kwargs):
        calls.append((argv, kwargs))
        return CommandResult(0, "", "")
    return run


def test_mount_commands_enter_pid1s_namespace_and_others_run_as_they_are():
    calls = []
    run = system_mounts_runner(recording_runner(calls))
    run(["mount", "-t", "ext4", "UUID=x", "/srv/vigil"], timeout=30)
    run(["umount", "-l", "/srv/vigil"], timeout=30)
    run(["findmnt", "-rn", "--mountpoint", "/srv/vigil"], timeout=5)
    run(["e2fsck", "-p", "/dev/sda1"], timeout=600)
    entered = ["nsenter", f"--mount={PID1_NAMESPACE}", "--"]
    assert calls[0] == ([*entered, "mount", "-t", "ext4", "UUID=x", "/srv/vigil"], {"timeout": 30})
    assert calls[1][0] == [*entered, "umount", "-l", "/srv/vigil"]
    assert calls[2][0][:3] == entered and calls[2][0][3] == "findmnt"
    assert calls[3] == (["e2fsck", "-p", "/dev/sda1"], {"timeout": 600})


def test_the_mount_table_read_can_be_the_systems(tmp_path):
    table = tmp_path / "mountinfo"
    table.write_text("25 1 8:2 / /srv/vigil rw,noatime shared:1 - ext4 /dev/sdb1 rw\n")
    try:
        use_mount_table(table)
        assert [m.mountpoint for m in read_mounts() if m.mountpoint == "/srv/vigil"]
    finally:
        use_mount_table(Path("/proc/self/mountinfo"))
    assert not [m for m in read_mounts() if m.mountpoint == "/srv/vigil"]


def test_known_data_disks_found_at_start_are_mounted_with_the_daemons_runner(tmp_path):
    """The update test in QEMU found it: after a reboot vigil-hwd checked and mounted the
    data disk with the default runner, inside its own sandbox, so nothing else saw it."""
    from appliance.storage.disks import CheckRequest, DataVolume
    from appliance.storage.monitor import StorageMonitor

    made = {}

    def watcher_factory(tracker, on_alerts, **options):
        made.update(options)
        return object()

    calls = []
    runner = system_mounts_runner(recording_runner(calls))
    StorageMonitor(tmp_path / "state", tmp_path / "smart.json", [], runner=runner,
                   watcher_factory=watcher_factory)
    volume = DataVolume("6b7c1c9e-0000-4000-8000-000000000001", str(tmp_path / "srv"))
    outcome = made["checker"](CheckRequest("disk", "/dev/vdb1", volume, 1))
    assert outcome.mounted
    mounts = [argv for argv, _ in calls if "mount" in argv]
    assert mounts and mounts[0][:3] == ["nsenter", f"--mount={PID1_NAMESPACE}", "--"]
