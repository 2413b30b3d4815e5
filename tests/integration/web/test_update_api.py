"""The update API end to end: the real app on waitress, a real ControlServer serving
appliance.update.control's handlers on a Unix socket (as vigil-hwd does) and, behind it,
a fake UpdateService that records what it is handed (the bundle's path and sha256)
instead of running RAUC. Roles and the CSRF token, the status passed through, a bundle
streamed to the data disk byte for byte and installed as a job, a refused bundle, no data
disk, the size limit, one install at a time, and hostile file names sent to vigil-hwd
directly."""

from __future__ import annotations

import copy
import hashlib
import json
import random
import re
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from appliance.core.control import ControlClient, ControlServer
from appliance.core.errors import InvalidConfig, Unavailable
from appliance.storage.volume import write_marker
from appliance.update.control import UpdateControl
from appliance.web.security import BINARY_UPLOADS, COOKIE
from tests.integration.web.manage_site import ManageSite
from tests.integration.web_session import ApiClient
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(120)

BUILD_0_1_0, BUILD_0_2_0 = 1767225600, 1769904000          # 2026-01-01, 2026-02-01
ROLLED_BACK = ("update to 0.2.0 failed and was rolled back: the recorder failed to start "
               "3 times")
STATUS = {
    "running": {"version": "0.1.0", "build": BUILD_0_1_0, "commit": "f61d8a6", "slot": "A"},
    "slots": [
        {"name": "rootfs.0", "bootname": "A", "state": "booted", "boot_status": "good",
         "version": "0.1.0", "build": str(BUILD_0_1_0), "installed": "2026-01-02T10:00:00Z"},
        {"name": "rootfs.1", "bootname": "B", "state": "inactive", "boot_status": "bad",
         "version": "0.2.0", "build": str(BUILD_0_2_0), "installed": "2026-02-03T09:00:00Z"},
    ],
    "engine_error": "", "floor": {"version": "0.1.0", "build": BUILD_0_1_0}, "pending": None,
    "last_result": {"time": 1770112800.0, "outcome": "rolled_back", "message": ROLLED_BACK,
                    "version": "0.2.0", "running": "0.1.0"},
    "history": [{"time": 1770112800.0, "outcome": "rolled_back", "message": ROLLED_BACK,
                 "version": "0.2.0", "running": "0.1.0"}],
}
REFUSAL = "not a valid update bundle: signature verification failed"
INSTALL_PHASE = "installing the system into slot B"


class FakeUpdateService:
    """What UpdateControl calls on an UpdateService: status(), apply(), reboot().

    apply() records the path and the sha256 of the bytes it was handed, then refuses
    (`refusal`) or reports 40 % and waits for `finish` (the test decides when the install
    ends, so it can look at the job in between)."""

    def __init__(self, status: dict[str, Any]) -> None:
        self.status_answer = status
        self.refusal = ""
        self.applied: list[dict[str, Any]] = []
        self.installing = threading.Event()
        self.finish = threading.Event()
        self.rebooted = threading.Event()

    def status(self) -> dict[str, Any]:
        return copy.deepcopy(self.status_answer)

    def apply(self, bundle: Path, progress, reboot: bool = True) -> dict[str, Any]:
        data = bundle.read_bytes()
        self.applied.append({"path": bundle, "sha256": hashlib.sha256(data).hexdigest(),
                             "reboot": reboot})
        if self.refusal:
            raise InvalidConfig(self.refusal)
        progress(40, INSTALL_PHASE)
        self.installing.set()
        if not self.finish.wait(60):
            raise Unavailable("the test never let the install finish")
        return {"version": "0.2.0", "build": BUILD_0_2_0, "description": "Vigil NVR 0.2.0",
                "compatible": "vigil-nvr-pi", "bytes": len(data), "rebooting": reboot}

    def reboot(self) -> None:
        self.rebooted.set()


class UpdateRig:
    """vigil-hwd's update commands on a control socket, and the web app calling them.

    `data_disk`: the data directory carries the data volume's marker, which is how the web
    layer tells an initialised data disk (where bundles are uploaded to) from none."""

    def __init__(self, root: Path, *, data_disk: bool = True) -> None:
        self.data = root / "site" / "data"
        self.data.mkdir(parents=True)
        if data_disk:
            write_marker(self.data)
        self.uploads = self.data / "update-upload"
        self.service = FakeUpdateService(STATUS)
        self.control = UpdateControl(lambda: self.service, self.uploads, reboot_delay=0)
        self.socket = root / "hwd.sock"
        self.hwd = ControlServer(self.socket, self.control.handlers()).start()
        self.site = ManageSite(root / "site", hwd_socket=self.socket)

    def uploaded_files(self) -> list[str]:
        return sorted(p.name for p in self.uploads.iterdir()) if self.uploads.exists() else []

    def close(self) -> None:
        self.service.finish.set()       # an install a failed test left waiting ends
        self.site.close()
        self.hwd.close()


@pytest.fixture
def rig(tmp_path):
    r = UpdateRig(tmp_path)
    yield r
    r.close()


def bundle_bytes(size: int, seed: int = 7) -> bytes:
    """Not a real bundle (the fake service only hashes it), but bytes in an order that
    a truncated, reordered or padded copy would not reproduce."""
    return random.Random(seed).randbytes(size)


def upload(client: ApiClient, body: bytes, *, csrf: bool = True) -> tuple[int, dict]:
    """POST the bundle as the raw body, as the Update page does."""
    headers = {"Content-Type": "application/octet-stream"}
    if csrf:
        headers["X-CSRF-Token"] = client.csrf
    req = urllib.request.Request(client.base + "/api/v1/update/bundle", data=body,
                                 method="POST", headers=headers)
    try:
        with client.opener.open(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def job_of(client: ApiClient) -> dict[str, Any] | None:
    status, answer = client.json("GET", "/api/v1/update/job")
    assert status == 200, answer
    return answer["job"]


def finished_job(client: ApiClient) -> dict[str, Any]:
    return wait_until(lambda: (job := job_of(client)) and job["done"] and job, 30,
                      "the install job to end")


def test_only_admins_reach_the_update_routes(rig):
    operator = rig.site.user("guard", "operator")
    viewer = rig.site.user("watcher", "viewer", ("door",))
    for client in (operator, viewer):
        assert client.json("GET", "/api/v1/update") == (403, {"error": "not allowed for this user"})
        assert client.json("GET", "/api/v1/update/job")[0] == 403
        assert upload(client, bundle_bytes(1000))[0] == 403
    assert ApiClient(rig.site.base).json("GET", "/api/v1/update")[0] == 401
    assert rig.service.applied == [] and not rig.uploads.exists()


def test_a_bundle_upload_without_the_csrf_token_is_refused(rig):
    status, answer = upload(rig.site.admin, bundle_bytes(1000), csrf=False)
    assert status == 403 and "CSRF" in answer["error"]
    assert rig.service.applied == [] and not rig.uploads.exists()


def test_the_status_is_vigil_hwds_with_its_job(rig):
    status, answer = rig.site.admin.json("GET", "/api/v1/update")
    assert status == 200
    assert answer == {**STATUS, "job": None}
    assert job_of(rig.site.admin) is None


def test_an_uploaded_bundle_reaches_vigil_hwd_byte_for_byte_and_installs(rig):
    body = bundle_bytes(3 * 1024 * 1024 + 17)           # more than one 1 MiB chunk
    status, answer = upload(rig.site.admin, body)
    assert status == 202, answer
    name = answer["job"]["file"]
    assert re.fullmatch(r"upload-\d+\.raucb", name) and answer["job"]["done"] is False

    assert rig.service.installing.wait(30)
    running = job_of(rig.site.admin)
    assert (running["percent"], running["phase"], running["done"]) == (40, INSTALL_PHASE, False)
    assert rig.uploaded_files() == [name]               # on the data disk while installing
    assert rig.service.applied == [{"path": rig.uploads / name,
                                    "sha256": hashlib.sha256(body).hexdigest(),
                                    "reboot": False}]

    rig.service.finish.set()
    done = finished_job(rig.site.admin)
    assert done["error"] == "" and done["percent"] == 100
    assert done["result"]["version"] == "0.2.0" and done["result"]["bytes"] == len(body)
    assert rig.service.rebooted.wait(30)
    assert rig.uploaded_files() == []                   # neither the bundle nor a .part left
    assert rig.site.admin.json("GET", "/api/v1/update")[1]["job"] == done
    audit = [e for e in rig.site.audit() if e["what"] == "update_uploaded"]
    assert [(e["who"], e["detail"]) for e in audit] == [("owner", f"{len(body)} bytes")]


def test_a_refused_bundle_is_the_jobs_error_and_is_deleted(rig):
    rig.service.refusal = REFUSAL
    body = bundle_bytes(64 * 1024)
    status, answer = upload(rig.site.admin, body)
    assert status == 202, answer
    done = finished_job(rig.site.admin)
    assert done["error"] == REFUSAL and done["result"] is None and done["percent"] < 100
    assert rig.service.applied[0]["sha256"] == hashlib.sha256(body).hexdigest()
    assert rig.uploaded_files() == []
    assert not rig.service.rebooted.is_set()


def test_without_a_data_disk_the_upload_is_refused_naming_the_usb_stick(tmp_path):
    rig = UpdateRig(tmp_path, data_disk=False)
    try:
        status, answer = upload(rig.site.admin, bundle_bytes(1000))
        assert status == 409 and "USB stick" in answer["error"], answer
        assert rig.service.applied == [] and not rig.uploads.exists()
    finally:
        rig.close()


def test_a_body_over_the_limit_is_refused_before_anything_is_written(rig, monkeypatch):
    monkeypatch.setitem(BINARY_UPLOADS, "update.upload", 4096)
    status, answer = upload(rig.site.admin, bundle_bytes(4097))
    assert (status, answer) == (413, {"error": "the request is too large"})
    assert rig.service.applied == [] and not rig.uploads.exists()
    rig.service.finish.set()
    assert upload(rig.site.admin, bundle_bytes(4096))[0] == 202     # the limit itself is fine
    assert finished_job(rig.site.admin)["error"] == ""


def test_a_content_length_over_one_and_a_half_gib_is_refused_unread(rig):
    """The real limit, with a forged Content-Length on a 10-byte body: refused on the
    header alone. (In the Flask test client: waitress would wait for the promised bytes.)"""
    limit = BINARY_UPLOADS["update.upload"]
    assert limit == 1536 * 1024 * 1024
    client = rig.site.app.test_client()
    client.set_cookie(COOKIE, next(c.value for c in rig.site.admin.jar if c.name == COOKIE))
    resp = client.post("/api/v1/update/bundle", data=b"0123456789",
                       headers={"Content-Type": "application/octet-stream",
                                "X-CSRF-Token": rig.site.admin.csrf},
                       environ_overrides={"CONTENT_LENGTH": str(limit + 1)})
    assert resp.status_code == 413 and resp.json == {"error": "the request is too large"}
    assert rig.service.applied == [] and not rig.uploads.exists()


def test_a_second_install_while_one_runs_is_refused_and_its_upload_deleted(rig):
    first = bundle_bytes(50_000, seed=1)
    status, answer = upload(rig.site.admin, first)
    assert status == 202, answer
    assert rig.service.installing.wait(30)
    status, refused = upload(rig.site.admin, bundle_bytes(50_000, seed=2))
    assert status == 409 and "being installed already" in refused["error"], refused
    assert rig.uploaded_files() == [answer["job"]["file"]]
    assert len(rig.service.applied) == 1
    rig.service.finish.set()
    assert finished_job(rig.site.admin)["result"]["bytes"] == len(first)


def test_a_json_body_is_not_taken_for_a_bundle(rig):
    """The page sends the file as application/octet-stream. A JSON body (a script that
    expected to name a file, as update.apply does on vigil-hwd's socket) is a mistake:
    refused with 415 before anything is written or handed to vigil-hwd."""
    status, answer = rig.site.admin.json("POST", "/api/v1/update/bundle",
                                         {"file": "../../etc/passwd"})
    assert status == 415 and "application/octet-stream" in answer["error"], answer
    assert rig.service.applied == [] and rig.uploaded_files() == []
    assert job_of(rig.site.admin) is None


HOSTILE_FILES = ["../x.raucb", "/etc/passwd", "a.raucb/..", "..", ".raucb", "x.raucb\n",
                 "sub/x.raucb", "x.RAUCB.part", "", 42, None, ["x.raucb"], {"name": "x.raucb"}]


def test_vigil_hwd_refuses_hostile_file_names(rig, tmp_path):
    rig.uploads.mkdir()
    (tmp_path / "x.raucb").write_bytes(b"outside the upload directory")
    (rig.uploads / "link.raucb").symlink_to(tmp_path / "x.raucb")
    hwd = ControlClient(rig.socket, timeout=10)
    for name in HOSTILE_FILES + ["link.raucb", "missing.raucb"]:
        with pytest.raises(InvalidConfig):
            hwd.call("update.apply", file=name)
    with pytest.raises(InvalidConfig, match="only `file`"):
        hwd.call("update.apply", file="link.raucb", path="/etc/passwd")
    assert rig.service.applied == [] and hwd.call("update.job") == {"job": None}
