"""Issue 4's hotplug promise on the real kernel, udev and systemd of the image: a USB data
disk recording a camera is pulled out (a surprise removal through QEMU's QMP), and

- an alert says so, recording stops writing there, and nothing falls back to the boot
  media (the mount point is left unmounted, on the read-only root);
- plugged back in, the disk is checked (e2fsck), mounted again, and recording resumes,
  with the time it was out shown as a gap with its cause.

Kept out of `make image-test` with the RAID1 test (`make image-test-storage`)."""

from __future__ import annotations

import json
import time

import pytest

from hw.camsim.clips import ensure_clip
from hw.camsim.server import SimCamera, SimCameraServer, free_port
from tests.image.box_api import all_units_active, initialise_data_disk, insecure_context
from tests.image.conftest import ARTIFACTS
from tests.image.machine import CAMERA_ADDRESS
from tests.integration.conftest import CACHE
from tests.integration.web_session import ApiClient
from tests.waiting import wait_until

pytestmark = [pytest.mark.image, pytest.mark.image_storage]
S = 1_000_000


def usb_disk(api: ApiClient) -> str | None:
    status, listing = api.json("GET", "/api/v1/storage/disks")
    found = [d["device"] for d in listing.get("disks", []) if status == 200
             and d.get("bus") == "usb" and d.get("role") == "free"]
    return found[0] if found else None


def timeline(api: ApiClient, camera: str) -> dict:
    status, body = api.json("GET", f"/api/v1/cameras/{camera}/timeline")
    return body if status == 200 else {}


def alert(api: ApiClient, words: str) -> dict | None:
    status, body = api.json("GET", "/api/v1/alerts?limit=1000")
    found = [a for a in body.get("alerts", []) if status == 200 and words in a.get("text", "")]
    return found[0] if found else None


@pytest.mark.timeout(1500)
def test_a_usb_data_disk_pulled_out_and_plugged_back(boot_machine, tmp_path):
    clip = ensure_clip(CACHE, codec="h264", audio=None, seconds=6, width=640, height=360,
                       fps=25, bitrate_kbps=600, gop=25)
    camera = SimCameraServer(free_port(), [SimCamera("/gate", clip)],
                             log_path=tmp_path / "camsim.log")
    camera.start()
    disk = tmp_path / "usb-data.img"
    with open(disk, "wb") as handle:
        handle.truncate(16 << 30)
    try:
        machine = boot_machine(camera.port, data_disks=0)
        machine.wait_for_report(all_units_active, 600, "every vigil unit active")
        api = ApiClient(machine.base, context=insecure_context()).login()
        machine.plug_usb_disk(disk, "usbdata")
        device = wait_until(lambda: usb_disk(api), 120, "the USB disk in the inventory", step=2)
        initialise_data_disk(api, [device], "single")
        status, added = api.json("POST", "/api/v1/cameras",
                                 {"name": "gate", "rtsp": f"rtsp://{CAMERA_ADDRESS}:8554/gate"})
        assert status == 201, added
        status, finished = api.json("POST", "/api/v1/setup/finish", {})
        assert status in (200, 201), finished
        wait_until(lambda: timeline(api, "gate").get("recorded_us", 0) >= 20 * S, 600,
                   "20 s recorded onto the USB disk", step=5)

        # Pulled out while recording.
        pulled = time.monotonic()
        machine.unplug_usb("usbdata")
        removed = wait_until(lambda: alert(api, "was removed"), 120,
                             "the removal alert", step=1)
        alert_s = time.monotonic() - pulled
        assert removed["severity"] == "critical" and "recording to /srv/vigil has stopped" \
            in removed["text"], removed
        since = machine.position()
        out = machine.wait_for_report(lambda r: "/srv/vigil" not in r.mounts, 120,
                                      "/srv/vigil let go", since)
        assert out.mounts["/"][1] == "squashfs", "what is left under /srv/vigil is read-only"

        # Plugged back: checked, mounted again, recording again.
        plugged = time.monotonic()
        machine.plug_usb_disk(disk, "usbdata")
        back = wait_until(lambda: alert(api, "was checked"), 300,
                          "the disk checked and mounted again", step=2)
        assert "mounted at /srv/vigil; recording resumes" in back["text"], back
        before = timeline(api, "gate")["recorded_us"]
        wait_until(lambda: timeline(api, "gate").get("recorded_us", 0) >= before + 10 * S,
                   300, "10 s more recorded after the disk came back", step=5)
        resumed_s = time.monotonic() - plugged
        report = machine.wait_for_report(lambda r: "/srv/vigil" in r.mounts, 120,
                                         "/srv/vigil mounted again")
    finally:
        camera.stop()

    assert report.mounts["/srv/vigil"][0].startswith("/dev/sd"), report.mounts
    gaps = [g for g in timeline(api, "gate")["gaps"] if g.get("cause")]
    assert "disk_missing" in {g["cause"] for g in gaps}, gaps   # not "power loss or crash"
    assert report.failed == [], report.failed
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    summary = {"removal_alert_s": round(alert_s, 1), "replug_to_recording_s": round(resumed_s, 1),
               "gap_causes": sorted({g["cause"] for g in gaps})}
    (ARTIFACTS / "usb-data-disk.json").write_text(json.dumps(summary, indent=1) + "\n")
    print("usb data disk:", json.dumps(summary))
