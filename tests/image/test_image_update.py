"""Issue 13 in QEMU: field updates through the web API, the health gate, rollback, and
power cuts at random moments of installs and trial boots.

The machine's firmware is U-Boot running the image's A/B boot script; RAUC installs into
the inactive slot pair; the box reboots itself into the new slot, and vigil-update keeps
the release only when the recorder records the camera again. A power cut is a SIGKILL of
QEMU. The random moments come from a seed printed at the start (VIGIL_UPDATE_SEED=<n>
repeats a run).
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import time

import pytest

from hw.camsim.clips import ensure_clip
from hw.camsim.server import SimCamera, SimCameraServer, free_port
from tests.image.box_api import (all_units_active, initialise_data_disk, insecure_context,
                                 install_job, upload_bundle)
from tests.image.machine import CAMERA_ADDRESS, QemuMachine
from tests.image.releases import Releases
from tests.integration.conftest import CACHE
from tests.integration.web_session import ApiClient
from tests.waiting import wait_until

pytestmark = pytest.mark.image
BOOT = 900          # s for one boot to all units active (TCG, shared machine)
TRIAL = 1800        # s from an install's reboot to the health gate's verdict


@pytest.fixture(scope="module")
def releases(image, tmp_path_factory):
    return Releases(image, tmp_path_factory.mktemp("releases"))


@pytest.fixture
def camera(tmp_path):
    clip = ensure_clip(CACHE, codec="h264", audio=None, seconds=6, width=640, height=360,
                       fps=25, bitrate_kbps=600, gop=25)
    server = SimCameraServer(free_port(), [SimCamera("/gate", clip)], log_path=tmp_path / "camsim.log")
    server.start()
    yield server
    server.stop()


def recorded_seconds(api: ApiClient) -> float:
    status, timeline = api.json("GET", "/api/v1/cameras/gate/timeline")
    return timeline.get("recorded_us", 0) / 1e6 if status == 200 else 0.0


def booted(machine: QemuMachine, slot: str, since: int, what: str, timeout: float = BOOT):
    return machine.wait_for_report(lambda r: all_units_active(r) and r.slot == slot, timeout,
                                   f"{what}: slot {slot} up", since)


def records_more(api: ApiClient, than: float, what: str) -> float:
    return wait_until(lambda: (lambda s: s if s >= than + 10 else None)(recorded_seconds(api)),
                      600, f"recording goes on ({what})", step=5)


def set_up_box(machine: QemuMachine) -> ApiClient:
    machine.wait_for_report(all_units_active, BOOT, "every vigil unit active")
    api = ApiClient(machine.base, context=insecure_context()).login()
    initialise_data_disk(api, ["/dev/vdb"], "single")
    return api


def power_cut_and_restart(machine: QemuMachine) -> int:
    machine.power_cut()
    since = machine.position()
    machine.power_on()
    return since


def usb_stick(bundle, work):
    """A FAT stick image with the bundle in its top directory, as an owner would make it."""
    stick = work / "stick.img"
    size_kib = bundle.stat().st_size // 1024 + 64 * 1024
    subprocess.run(["mkfs.vfat", "-C", "-n", "UPDATE", str(stick), str(size_kib)], check=True,
                   timeout=120, capture_output=True)
    subprocess.run(["mcopy", "-i", str(stick), str(bundle), f"::/{bundle.name}"], check=True,
                   timeout=600, env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"})
    return stick


def partition_hashes(disk_path, image: dict, names: list[str]) -> dict[str, str]:
    """sha256 of the named partitions of a raw disk file."""
    hashes = {}
    with open(disk_path, "rb") as disk:
        for name in names:
            part = image["partitions"][name]
            disk.seek(part.start)
            digest, left = hashlib.sha256(), part.size
            while left:
                chunk = disk.read(min(left, 1 << 20))
                digest.update(chunk)
                left -= len(chunk)
            hashes[name] = digest.hexdigest()
    return hashes


def slot_hashes(machine: QemuMachine, image: dict, names: list[str], work) -> dict[str, str]:
    """The same of the machine's disk (its qcow2 overlay, QEMU stopped)."""
    raw = work / "disk-now.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(machine.overlay), str(raw)],
                   check=True, timeout=900)
    try:
        return partition_hashes(raw, image, names)
    finally:
        raw.unlink()


@pytest.mark.timeout(2400)
def test_refused_bundles_leave_the_inactive_slots_untouched(image, releases, boot_machine, tmp_path):
    """A3: unknown signer, another product's compatible, an older release, a truncated and
    an extended bundle: each refused with its reason; slot B's partitions keep their bytes."""
    good = releases.refused("9.9.9", "newer-but-never-installed")
    truncated, extended = tmp_path / "truncated.raucb", tmp_path / "extended.raucb"
    data = good.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    extended.write_bytes(data + b"appended by someone")
    cases = {
        "unknown signer": (releases.refused("9.9.8", "unknown-signer", unknown_key=True), "signature"),
        "other compatible": (releases.refused("9.9.7", "other-product", compatible="acme-dvr"),
                             "not this box"),
        "older release": (releases.refused("0.0.9", "older"), "older than the running"),
        "truncated": (truncated, "bundle"),
        "extended": (extended, "bundle"),
    }
    machine = boot_machine(free_port())
    api = set_up_box(machine)
    for what, (bundle, words) in cases.items():
        status, started = upload_bundle(api, bundle)
        assert status == 202, (what, started)
        job = install_job(api, timeout=600)
        assert job["error"] and words in job["error"], (what, job)
    status, answer = api.json("GET", "/api/v1/update")
    assert status == 200 and answer["running"]["slot"] == "A" and answer["pending"] is None, answer
    machine.stop()
    slot_b = [image["settings"]["SLOT_BOOT_B_NAME"], image["settings"]["ROOT_B_NAME"]]
    assert slot_hashes(machine, image, slot_b, tmp_path) == partition_hashes(image["raw"], image, slot_b)


@pytest.mark.timeout(14400)
def test_update_commits_rolls_back_and_survives_power_cuts(image, releases, boot_machine, camera,
                                                           tmp_path):
    seed = int(os.environ.get("VIGIL_UPDATE_SEED", time.time()))
    rng = random.Random(seed)
    print(f"power-cut seed: {seed} (VIGIL_UPDATE_SEED={seed} repeats it)")
    cuts: list[str] = []
    n1_version, n1 = releases.release(1)
    n2_version, n2_broken = releases.release(2, broken_recorder=True)
    n_version = releases.build["version"]

    machine = boot_machine(camera.port)
    api = set_up_box(machine)
    status, added = api.json("POST", "/api/v1/cameras",
                             {"name": "gate", "rtsp": f"rtsp://{CAMERA_ADDRESS}:8554/gate"})
    assert status == 201, added
    api.json("POST", "/api/v1/setup/finish", {})
    recorded = records_more(api, 0, "release N")
    _, certificate = api.json("GET", "/api/v1/system/certificate")

    # Cut 1: during the install of N+1 into slot B. Slot A boots, B was never made primary.
    assert upload_bundle(api, n1)[0] == 202
    job = install_job(api, until_percent=rng.randint(5, 90))
    cuts.append(f"install of {n1_version} at {job['percent']}%")
    since = power_cut_and_restart(machine)
    report = booted(machine, "A", since, "after a cut during an install")
    assert report.release == n_version and not report.pending, report
    api = ApiClient(machine.base, context=insecure_context()).login()
    recorded = records_more(api, recorded, "after cut 1")

    # N+1 from a USB stick: the box installs it and reboots into slot B for its trial.
    # Cut 2 during that trial. The stick stays in: it never installs the same release twice.
    since = machine.position()
    machine.plug_usb_stick(usb_stick(n1, tmp_path))
    machine.wait_for_console(rb"vigil: booting slot B", TRIAL, since)
    time.sleep(rng.uniform(5, 120))      # the power cut's random moment in the trial boot
    cuts.append(f"trial boot of {n1_version}, {machine.console()[since:].count('VIGIL-REPORT-BEGIN')} reports in")
    since = power_cut_and_restart(machine)
    report = machine.wait_for_report(lambda r: r.slot == "B" and r.update[0] == "committed", TRIAL,
                                     f"{n1_version} committed after its health gate", since)
    assert report.release == n1_version and report.update[1] == n1_version, report
    api = ApiClient(machine.base, context=insecure_context()).login()   # users survived
    recorded = records_more(api, recorded, f"on {n1_version}")
    status, update = api.json("GET", "/api/v1/update")
    assert update["running"]["version"] == n1_version and update["running"]["slot"] == "B", update
    assert update["last_result"]["outcome"] == "committed", update
    assert api.json("GET", "/api/v1/system/certificate")[1] == certificate   # keys survived

    # Cut 3: during the install of the broken N+2 into slot A. B (N+1) boots as before.
    assert upload_bundle(api, n2_broken)[0] == 202
    job = install_job(api, until_percent=rng.randint(5, 90))
    cuts.append(f"install of {n2_version} at {job['percent']}%")
    since = power_cut_and_restart(machine)
    report = booted(machine, "B", since, "after a cut during the second install")
    assert report.release == n1_version, report
    api = ApiClient(machine.base, context=insecure_context()).login()

    # N+2 cannot record: its trial fails, and it is rolled back. Cut 4 during that trial.
    since = machine.position()
    assert upload_bundle(api, n2_broken)[0] == 202
    job = install_job(api)
    assert not job["error"], job
    machine.wait_for_console(rb"vigil: booting slot A", BOOT, since)
    time.sleep(rng.uniform(5, 120))
    cuts.append(f"trial boot of {n2_version}")
    since = power_cut_and_restart(machine)
    # Cut 5: while the old slot boots after the failed trial (it is writing the result).
    machine.wait_for_console(rb"vigil: booting slot B", TRIAL, since)
    time.sleep(rng.uniform(5, 90))
    cuts.append("boot back into the previous slot after the failed trial")
    since = power_cut_and_restart(machine)
    report = machine.wait_for_report(lambda r: r.slot == "B" and r.update[0] == "rolled_back", TRIAL,
                                     f"{n2_version} rolled back", since)
    assert report.release == n1_version and report.update[1] == n2_version, report
    assert "failed and was rolled back" in report.update[2] and "recorder" in report.update[2], report
    api = ApiClient(machine.base, context=insecure_context()).login()
    records_more(api, recorded, f"back on {n1_version} after the rollback")
    status, update = api.json("GET", "/api/v1/update")
    assert update["running"]["version"] == n1_version and update["pending"] is None, update
    assert update["last_result"]["message"].startswith(f"update to {n2_version} failed and was "
                                                       f"rolled back"), update
    print("power cuts:", "; ".join(cuts))
    assert len(cuts) >= 5


@pytest.mark.image_soak
@pytest.mark.timeout(7 * 24 * 3600)
def test_power_cuts_during_installs_and_trials_never_leave_the_box_unbootable(
        image, releases, boot_machine, camera):
    """`make image-soak`: VIGIL_SOAK_CUTS (100) power cuts, alternately during an install
    and during a trial boot; after each, the box must come up on some slot and record."""
    seed = int(os.environ.get("VIGIL_UPDATE_SEED", time.time()))
    rng = random.Random(seed)
    print(f"power-cut seed: {seed}")
    machine = boot_machine(camera.port)
    api = set_up_box(machine)
    assert api.json("POST", "/api/v1/cameras", {"name": "gate",
                    "rtsp": f"rtsp://{CAMERA_ADDRESS}:8554/gate"})[0] == 201
    api.json("POST", "/api/v1/setup/finish", {})
    recorded = records_more(api, 0, "release N")
    step, (version, bundle) = 1, releases.release(1)
    for cut in range(int(os.environ.get("VIGIL_SOAK_CUTS", "100"))):
        status, update = api.json("GET", "/api/v1/update")
        if update["running"]["version"] == version:       # committed: the next release
            step += 1
            version, bundle = releases.release(step)
        during_install = cut % 2 == 0
        since = machine.position()
        assert upload_bundle(api, bundle)[0] == 202
        if during_install:
            install_job(api, until_percent=rng.randint(1, 95))
        else:
            assert not install_job(api)["error"]
            machine.wait_for_console(rb"vigil: booting slot", BOOT, since)
            time.sleep(rng.uniform(1, 150))
        since = power_cut_and_restart(machine)
        machine.wait_for_report(all_units_active, BOOT + TRIAL, f"up again after cut {cut + 1}", since)
        api = ApiClient(machine.base, context=insecure_context()).login()
        wait_until(lambda: api.json("GET", "/api/v1/update/job")[0] == 200 and
                   api.json("GET", "/api/v1/update")[1].get("pending") is None, TRIAL,
                   "no update left on trial", step=10)
        recorded = records_more(api, recorded, f"after cut {cut + 1}")
