"""vigil-hwd's storage commands through a real ControlServer: the real udev inventory with
loop devices as disks, an initialise job on a loop device followed to the end through
`disks.job`, the refusals that protect the system, and `storage.status` from a real
monitor snapshot (recorded mdstat and smartctl output)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from appliance.core.control import ControlClient, ControlServer
from appliance.core.errors import FailedPrecondition, InvalidConfig
from appliance.storage.control import DiskControl, control_handlers
from appliance.storage.monitor import StorageMonitor
from appliance.storage.raid import RaidMonitor
from appliance.storage.smart import SmartReader
from appliance.storage.volume import load_volumes, write_marker
from tests.integration.storage.loopdev import loop_disks, mounts_from, sh
from tests.waiting import wait_until

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "storage"
MIB = 1024 * 1024
TEST_MIN_SIZE = 128 * MIB


@pytest.fixture
def hwd(tmp_path):
    """Factory: serve the storage commands on a socket in tmp_path; a client for it."""
    servers = []

    def start(**options) -> ControlClient:
        options.setdefault("include_virtual", True)
        options.setdefault("min_size_bytes", TEST_MIN_SIZE)
        options.setdefault("mountpoint", str(tmp_path / "vigil"))
        handlers = control_handlers(tmp_path / "data-volumes.json", tmp_path / "state",
                                    **options)
        server = ControlServer(tmp_path / f"hwd{len(servers)}.sock", handlers).start()
        servers.append(server)
        return ControlClient(server.path, timeout=30)

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def one_disk(tmp_path):
    with loop_disks(tmp_path, 1, size_mib=256) as disks:
        yield disks[0]


def entry(listing: dict, node: str) -> dict:
    [found] = [d for d in listing["disks"] if d["device"] == node]
    return found


@pytest.mark.timeout(120)
def test_disks_list_shows_a_free_loop_disk_and_refuses_the_boot_disk(hwd, one_disk):
    client = hwd()
    listing = client.call("disks.list")
    disk = entry(listing, one_disk.node)
    assert disk["role"] == "free" and disk["can_initialise"] and disk["refused"] == []
    assert disk["size_bytes"] == 256 * MIB and disk["size"] == "268.4 MB"
    assert disk["smart"] is None  # no monitor snapshot: never smartctl per request
    for boot in [d for d in listing["disks"] if d["role"] == "boot"]:
        assert not boot["can_initialise"] and "boot media" in " ".join(boot["refused"])


@pytest.mark.timeout(120)
def test_a_mounted_disk_is_in_use_and_refused_with_the_reason(hwd, one_disk, tmp_path):
    part = one_disk.make_partition()
    sh("mkfs.ext4", "-q", part)
    somewhere = tmp_path / "in-use"
    somewhere.mkdir()
    sh("mount", part, str(somewhere))
    client = hwd()
    disk = entry(client.call("disks.list"), one_disk.node)
    assert disk["role"] == "in_use" and not disk["can_initialise"]
    assert f"mounted at {somewhere}" in disk["refused"][0]
    with pytest.raises(FailedPrecondition, match=f"mounted at {somewhere}"):
        client.call("disks.initialise", disks=[one_disk.node], mode="single")
    with pytest.raises(FailedPrecondition, match="mounted at"):
        client.call("disks.initialise", disks=[one_disk.node], mode="single", token="12345678")
    assert mounts_from(one_disk.node) == [str(somewhere)]


@pytest.mark.timeout(180)
def test_initialise_a_loop_disk_through_the_job_api(hwd, one_disk, tmp_path):
    initialised = []
    client = hwd(on_initialised=initialised.append)
    plan = client.call("disks.initialise", disks=[one_disk.node], mode="single")
    assert plan["job"] is None and plan["plan"]["erases"][0]["device"] == one_disk.node
    assert plan["token"] in plan["description"]
    wrong = "00000000" if plan["token"] != "00000000" else "11111111"
    with pytest.raises(InvalidConfig, match="confirmation token"):
        client.call("disks.initialise", disks=[one_disk.node], mode="single", token=wrong)
    assert "PTTYPE" not in sh("blkid", "-p", "-o", "export", one_disk.node, check=False).stdout

    started = client.call("disks.initialise", disks=[one_disk.node], mode="single",
                          token=plan["token"])
    job_id = started["job"]["id"]
    with pytest.raises(FailedPrecondition, match="already"):
        client.call("disks.initialise", disks=[one_disk.node], mode="single",
                    token=plan["token"])
    seen = []

    def finished():
        job = client.call("disks.job", id=job_id)["job"]
        seen.append(job["percent"])
        return job if job["done"] else None

    job = wait_until(finished, 120, "the initialise job to finish", step=0.05)
    assert job["error"] == "" and job["percent"] == 100.0 and job["phase"] == "done"
    assert seen == sorted(seen), "progress never goes back"
    mountpoint = tmp_path / "vigil"
    assert job["result"]["mountpoint"] == str(mountpoint)
    assert mounts_from(one_disk.node) == [str(mountpoint)]
    assert json.loads((mountpoint / ".vigil-volume").read_text())["volume_id"] == \
        job["result"]["fs_uuid"]
    assert (mountpoint / "data").is_dir()
    assert load_volumes(tmp_path / "data-volumes.json") == [
        {"uuid": job["result"]["fs_uuid"], "mountpoint": str(mountpoint)}]
    assert [r.fs_uuid for r in initialised] == [job["result"]["fs_uuid"]]
    # The disk now holds the data volume: listed as such, and refused (mounted).
    disk = entry(client.call("disks.list"), one_disk.node)
    assert disk["role"] == "data" and not disk["can_initialise"]
    status = client.call("storage.status")
    [volume] = status["volumes"]
    assert volume["mounted"] and volume["total_bytes"] > 200 * MIB
    assert 0 < volume["used_bytes"] < volume["total_bytes"]
    assert client.call("disks.job", id="f" * 16) == {"job": None}


@pytest.mark.timeout(60)
def test_bad_arguments_are_refused_in_words(hwd):
    client = hwd()
    for args, words in (({"disks": "/dev/sda"}, "`disks` must list"),
                        ({"disks": []}, "`disks` must list"),
                        ({"disks": [1]}, "`disks` must list"),
                        ({"disks": ["x" * 300]}, "`disks` must list"),
                        ({"disks": ["/dev/nonexistent"]}, "no disk '/dev/nonexistent'"),
                        ({"disks": ["/dev/nonexistent"], "mode": "raid5"}, "`mode` must be"),
                        ({"disks": ["/dev/x"], "token": ["a"]}, "`token` must be"),
                        ({"disks": ["/dev/x"], "rm": "-rf"}, "unknown field")):
        with pytest.raises(InvalidConfig, match=words):
            client.call("disks.initialise", **args)
    with pytest.raises(InvalidConfig, match="`id`"):
        client.call("disks.job", id=["x"])


def test_storage_status_carries_resync_progress_and_smart_from_the_monitor(hwd, tmp_path):
    proc = tmp_path / "proc"
    proc.mkdir()
    shutil.copy(FIXTURES / "mdstat" / "raid1-resync", proc / "mdstat")
    text = (FIXTURES / "smartctl" / "sata-hdd-failing.json").read_text()

    def smartctl(argv):
        return json.loads(text)["smartctl"]["exit_status"], text

    monitor = StorageMonitor(tmp_path / "state", tmp_path / "smart.json", [],
                             raid=RaidMonitor(proc, tmp_path / "nosys", use_mdadm=False),
                             smart=SmartReader(run=smartctl), smart_devices=lambda: ["/dev/sda"])
    monitor.check_raid()
    monitor.check_smart()
    monitor.write_snapshot()
    volume = tmp_path / "vol"
    volume.mkdir()
    write_marker(volume, "abcd")
    (tmp_path / "data-volumes.json").write_text(json.dumps(
        {"volumes": [{"uuid": "abcd", "mountpoint": str(volume)},
                     {"uuid": "gone", "mountpoint": str(tmp_path / "nothing")}]}))
    status = hwd().call("storage.status")
    assert status["monitor"] is True
    md0 = status["raid"]["md0"]
    assert md0["state"] == "resyncing" and md0["progress_percent"] == pytest.approx(59.9)
    smart = status["smart"]["/dev/sda"]
    assert smart["verdict"] == "critical" and smart["counters"]["reallocated_sectors"] > 0
    mounted, missing = status["volumes"]
    assert mounted["mounted"] and mounted["free_bytes"] > 0
    assert not missing["mounted"] and "does not exist" in missing["detail"]


def test_without_a_monitor_snapshot_raid_is_read_directly(tmp_path):
    proc = tmp_path / "proc"
    proc.mkdir()
    shutil.copy(FIXTURES / "mdstat" / "raid1-degraded", proc / "mdstat")
    control = DiskControl(tmp_path / "volumes.json", tmp_path / "no-state",
                          raid=RaidMonitor(proc, tmp_path / "nosys", use_mdadm=False))
    status = control.status({})
    assert status["monitor"] is False and status["raid"]["md0"]["state"] == "degraded"
    assert status["volumes"] == [] and status["smart"] == {}
