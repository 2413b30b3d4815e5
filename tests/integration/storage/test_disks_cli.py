"""`nvr disks initialise` from the shell on a loop device: plan and token first, then the
real thing; the box remembers the volume, and the recorder accepts the new disk."""

from __future__ import annotations

import json

import pytest

from appliance.storage.volume import check_data_dir, load_volumes
from tests.integration.nvr_cli import nvr
from tests.integration.storage.loopdev import loop_disks, mounts_from, sh


@pytest.mark.timeout(120)
def test_initialise_from_the_cli_needs_the_token_and_leaves_a_usable_data_disk(tmp_path):
    with loop_disks(tmp_path, 1, size_mib=256) as [disk]:
        mountpoint, volumes = tmp_path / "vigil", tmp_path / "persist" / "data-volumes.json"
        base = ["disks", "initialise", "--disk", disk.node, "--include-virtual",
                "--min-size-gib", "0.1", "--mountpoint", str(mountpoint), "--volumes", str(volumes)]
        shown = nvr(*base, "--json")
        assert shown.returncode == 0, shown.stderr
        plan = json.loads(shown.stdout)
        assert plan["erases"][0]["device"] == disk.node and not volumes.exists()
        wrong = nvr(*base, "--confirm", "00000000")
        assert wrong.returncode == 2 and "token" in wrong.stderr
        assert mounts_from(disk.node) == []  # nothing happened
        done = nvr(*base, "--confirm", plan["token"])
        try:
            assert done.returncode == 0, done.stderr
            assert "data disk ready" in done.stdout and "[1/" in done.stdout
            [volume] = load_volumes(volumes)
            assert volume["mountpoint"] == str(mountpoint)
            assert check_data_dir(mountpoint / "data", allow_boot_media=False).ok
            health = nvr("health", "--data", str(mountpoint / "data"), "--no-devices", "--json")
            assert json.loads(health.stdout)["data"]["volume_ok"] is True
            again = nvr(*base, "--confirm", plan["token"])
            assert again.returncode == 2 and "mounted" in again.stderr  # in use: refused
        finally:
            sh("umount", str(mountpoint), check=False)


def test_unknown_disk_is_a_clear_error():
    out = nvr("disks", "initialise", "--disk", "NO-SUCH-SERIAL")
    assert out.returncode == 2 and "no such disk" in out.stderr
