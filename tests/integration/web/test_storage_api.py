"""The storage API on the real app (waitress) with vigil-hwd's storage commands on a real
control socket: the overview from a real index and a real monitor snapshot, roles, the
deletion audit, retention settings that the recorder's retention worker picks up, bad
input refused with nothing changed, and a loop disk initialised through the job API."""

from __future__ import annotations

import json
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
from waitress.server import create_server

from appliance.config.storage import CameraRetention, StorageSettings
from appliance.core.clock import SimulatedClock
from appliance.core.control import ControlServer
from appliance.recorder.index import RecordingIndex, Segment
from appliance.storage.control import control_handlers
from appliance.storage.gate import WriteGate
from appliance.storage.monitor import StorageMonitor
from appliance.storage.raid import RaidMonitor
from appliance.storage.retention.overrides import OverridesFile
from appliance.storage.retention.policy import US_PER_DAY, RetentionPolicy
from appliance.storage.retention.worker import RetentionWorker
from appliance.storage.smart import SmartReader
from appliance.storage.volume import write_marker
from appliance.web.accounts import AccountStore
from appliance.web.app import create_app
from appliance.web.services import WebPaths
from tests.integration.web_session import ApiClient
from tests.waiting import wait_until

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "storage"
MIB = 1024 * 1024
PASSWORD = "a long password"
NOW_US = 1_790_000_000 * 1_000_000


class Site:
    """The real app on waitress, its WebPaths pointing at files and sockets in `root`."""

    def __init__(self, root: Path, hwd: bool = True, **hwd_options) -> None:
        self.root = root
        self.data = root / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.state = root / "state"
        self.config = root / "config" / "vigil.toml"
        self.config.parent.mkdir(parents=True, exist_ok=True)
        self.control = None
        if hwd:
            hwd_options.setdefault("include_virtual", True)
            hwd_options.setdefault("min_size_bytes", 128 * MIB)
            hwd_options.setdefault("mountpoint", str(root / "vigil"))
            self.control = ControlServer(root / "hwd.sock", control_handlers(
                root / "config" / "data-volumes.json", self.state, **hwd_options)).start()
        self.accounts = AccountStore(root / "accounts.sqlite3")
        paths = WebPaths(hwd_state=self.state, config=self.config,
                         hwd_socket=root / "hwd.sock" if hwd else None)
        self.app = create_app(self.data, self.accounts, paths=paths)
        self.server = create_server(self.app, host="127.0.0.1", port=0, threads=4,
                                    asyncore_use_poll=True)  # a clean close from a test
        self.base = f"http://127.0.0.1:{self.server.effective_port}"
        self._thread = threading.Thread(target=self.server.run, daemon=True)
        self._thread.start()
        self.admin = ApiClient(self.base).login()

    def user(self, name: str, role: str, cameras=()) -> ApiClient:
        status, answer = self.admin.json("POST", "/api/v1/users", {
            "username": name, "password": PASSWORD, "role": role, "cameras": list(cameras)})
        assert status == 201, answer
        return ApiClient(self.base).login(name, PASSWORD)

    def audit(self, what: str) -> list[dict]:
        return [e for e in self.accounts.audit_log(1000) if e["what"] == what]

    def close(self) -> None:
        self.server.close()
        self._thread.join(5)
        if self.control is not None:
            self.control.close()
        self.accounts.close()


@contextmanager
def running_sites(root: Path) -> Iterator:
    """A factory of Sites under `root`, all closed at the end (the alerts and users tests
    use it too)."""
    sites = []

    def start(**options) -> Site:
        s = Site(root / f"site{len(sites)}", **options)
        sites.append(s)
        return s

    try:
        yield start
    finally:
        for s in sites:
            s.close()


@pytest.fixture
def site(tmp_path):
    with running_sites(tmp_path) as start:
        yield start


def record(data: Path, camera: str, count: int, seconds: int = 60, size: int = 1_000_000):
    """Segments in a real index (rows only: the API reads figures, not files)."""
    index = RecordingIndex(data)
    start = NOW_US - count * seconds * 1_000_000
    for i in range(count):
        s = start + i * seconds * 1_000_000
        index.add_segment(Segment(camera, i + 1, s, s + seconds * 1_000_000, size,
                                  f"recordings/{camera}/{i}.mp4"))
    index.close()


def snapshot(state: Path, root: Path, mdstat: str = "raid1-resync",
             smart: str = "sata-hdd-healthy.json") -> None:
    """What vigil-hwd's monitor writes: parsed from recorded mdstat and smartctl output."""
    proc = root / "proc"
    proc.mkdir(exist_ok=True)
    shutil.copy(FIXTURES / "mdstat" / mdstat, proc / "mdstat")
    text = (FIXTURES / "smartctl" / smart).read_text()
    monitor = StorageMonitor(state, root / "smart.json", [],
                             raid=RaidMonitor(proc, root / "nosys", use_mdadm=False),
                             smart=SmartReader(run=lambda argv: (json.loads(text)["smartctl"]
                                                                 ["exit_status"], text)),
                             smart_devices=lambda: ["/dev/sda"])
    monitor.check_raid()
    monitor.check_smart()
    monitor.write_snapshot()


def test_the_overview_shows_space_forecast_raid_progress_and_smart(site):
    s = site()
    write_marker(s.data)  # an initialised data volume (the recorder checks the same marker)
    record(s.data, "door", 90)
    snapshot(s.state, s.root)
    status, answer = s.admin.json("GET", "/api/v1/storage")
    assert status == 200, answer
    assert answer["data"]["volume_ok"] and answer["data"]["total_bytes"] > 0
    door = answer["forecast"]["door"]
    assert door["bytes_held"] == 90_000_000 and door["bytes_per_day"] > 0
    assert answer["raid"]["md0"]["state"] == "resyncing"
    assert answer["raid"]["md0"]["progress_percent"] == pytest.approx(59.9)
    assert answer["smart"]["/dev/sda"]["verdict"] == "healthy"
    assert answer["monitor"] is True and answer["devices_error"] == ""
    assert isinstance(answer["disks"], list)
    settings = answer["retention"]["settings"]
    assert settings["min_free_percent"]["value"] == 5.0 and "allow_boot_media" not in settings
    assert answer["can_change"] is True


def test_without_vigil_hwd_the_overview_says_why_devices_are_missing(site):
    s = site(hwd=False)
    status, answer = s.admin.json("GET", "/api/v1/storage")
    assert status == 200 and answer["disks"] is None and answer["raid"] is None
    assert "hwd socket" in answer["devices_error"]
    status, answer = s.admin.json("POST", "/api/v1/storage/disks/initialise",
                                  {"disks": ["/dev/sdb"], "mode": "single"})
    assert status == 503 and "hwd socket" in answer["error"]


def test_roles(site):
    s = site()
    operator = s.user("guard", "operator")
    viewer = s.user("watcher", "viewer", ["door"])
    status, answer = operator.json("GET", "/api/v1/storage")
    assert status == 200 and answer["can_change"] is False
    for method, path, body in (("GET", "/api/v1/storage/deletions", None),
                               ("GET", "/api/v1/storage/retention", None),
                               ("PUT", "/api/v1/storage/retention", {"storage": {}}),
                               ("GET", "/api/v1/storage/disks", None),
                               ("POST", "/api/v1/storage/disks/initialise", {"disks": ["x"]}),
                               ("GET", "/api/v1/storage/jobs/abc", None)):
        assert operator.json(method, path, body)[0] == 403, (method, path)
        assert viewer.json(method, path, body)[0] == 403, (method, path)
    assert viewer.json("GET", "/api/v1/storage")[0] == 403


def test_the_deletion_audit_newest_first_and_its_limits(site):
    s = site()
    record(s.data, "door", 5)
    index = RecordingIndex(s.data)
    for i, seg in enumerate(index.segments("door")[:3]):
        deletion = index.begin_deletion(seg, "max_age", "older than 1 days", NOW_US + i)
        index.finish_deletion(deletion, seg.path)
    index.close()
    status, answer = s.admin.json("GET", "/api/v1/storage/deletions?limit=2")
    assert status == 200
    assert [d["time_us"] for d in answer["deletions"]] == [NOW_US + 2, NOW_US + 1]
    assert answer["deletions"][0]["rule"] == "max_age" and answer["deletions"][0]["state"] == "done"
    for query in ("limit=0", "limit=abc", "limit=99999", "limit=-1", "camera=../etc",
                  "camera=%3Cscript%3E"):
        status, answer = s.admin.json("GET", f"/api/v1/storage/deletions?{query}")
        assert status == 400 and answer["error"], query


def test_retention_changes_are_validated_audited_and_picked_up_by_the_retention_worker(site):
    s = site()
    s.config.write_text('[storage]\nmin_free_percent = 8.0\n\n[[camera]]\nname = "door"\n'
                        'url = "rtsp://192.0.2.10/stream"\nmax_gib = 100.0\n')
    status, answer = s.admin.json("GET", "/api/v1/storage/retention")
    assert status == 200
    assert answer["settings"]["min_free_percent"] == {**answer["settings"]["min_free_percent"],
                                                      "value": 8.0, "source": "config"}
    assert answer["cameras"]["door"]["max_gib"] == 100.0
    # The recorder's retention worker, as the recorder runs it, with the same file.
    base = RetentionPolicy(StorageSettings(min_free_percent=8.0),
                           {"door": CameraRetention(0, 100)})
    index = RecordingIndex(s.data)
    worker = RetentionWorker(s.data, index, base, SimulatedClock(), threading.Event(),
                             WriteGate(), set, lambda detail: None,
                             overrides=OverridesFile(s.config.with_name("retention.json")))
    worker.reload_overrides()
    assert worker.policy.max_age_us("door") is None

    status, answer = s.admin.json("PUT", "/api/v1/storage/retention", {
        "storage": {"max_age_days": 30, "full_disk_action": "stop"},
        "cameras": {"door": {"max_age_days": 7}}})
    assert status == 200, answer
    assert answer["settings"]["max_age_days"]["value"] == 30.0
    assert answer["settings"]["max_age_days"]["source"] == "web"
    assert answer["cameras"]["door"] == {"max_age_days": 7.0, "max_gib": 100.0, "source": "web"}
    [entry] = s.audit("retention_changed")
    assert "storage.max_age_days: 0.0 -> 30.0" in entry["detail"]
    assert "storage.full_disk_action: overwrite -> stop" in entry["detail"]
    assert "camera door: 0 days, 100 GiB -> 7 days, 100 GiB" in entry["detail"]
    assert worker.reload_overrides() is True
    assert worker.policy.max_age_us("door") == 7 * US_PER_DAY
    assert worker.policy.max_age_us("garden") == 30 * US_PER_DAY
    assert worker.settings.full_disk_action == "stop" and worker.settings.min_free_percent == 8.0
    assert worker.reload_overrides() is False  # unchanged file: nothing to do
    # A damaged file (a bad edit by hand) keeps the policy in force and says so once.
    s.config.with_name("retention.json").write_text('{"format": 1, "storage": {"max_age')
    assert worker.reload_overrides() is False
    assert worker.policy.max_age_us("door") == 7 * US_PER_DAY
    assert [a["message"] for a in index.alerts()][-1].startswith(
        "retention settings not applied")
    assert s.admin.json("GET", "/api/v1/storage/retention")[0] == 500
    index.close()


@pytest.mark.parametrize("body", [
    {"storage": {"max_age_days": "30"}},
    {"storage": {"max_age_days": -1}},
    {"storage": {"max_age_days": 1e308 * 10}},
    {"storage": {"max_age_days": True}},
    {"storage": {"max_age_days": [30]}},
    {"storage": {"allow_boot_media": True}},
    {"storage": {"no_such_setting": 1}},
    {"storage": {"x" * 10_000: 1}},
    {"storage": {"min_free_percent": 50, "free_headroom_percent": 15}},
    {"storage": {"full_disk_action": "$(touch /tmp/canary)"}},
    {"storage": "max_age_days=30"},
    {"cameras": {"<script>alert(1)</script>": {"max_age_days": 1}}},
    {"cameras": {"../../etc": {"max_age_days": 1}}},
    {"cameras": {"nosuchcamera": {"max_age_days": 1}}},
    {"cameras": {"door": {"max_age_days": -5}}},
    {"cameras": {"door": {"max_gib": "lots"}}},
    {"cameras": {"door": {"keep": 1}}},
    {"cameras": {"door": 7}},
    {"cameras": ["door"]},
    {"other": 1},
    {},
    [],
])
def test_bad_retention_input_is_refused_and_changes_nothing(site, body):
    s = site()
    record(s.data, "door", 2)
    assert s.admin.json("PUT", "/api/v1/storage/retention",
                        {"storage": {"max_age_days": 9}})[0] == 200
    before = s.config.with_name("retention.json").read_bytes()
    status, answer = s.admin.json("PUT", "/api/v1/storage/retention", body)
    assert status == 400 and answer["error"], (body, status, answer)
    assert len(answer["error"]) < 600
    assert s.config.with_name("retention.json").read_bytes() == before
    assert len(s.audit("retention_changed")) == 1
    assert not Path("/tmp/canary").exists()


def test_nan_and_infinity_are_refused(site):
    s = site()
    for raw in (b'{"storage": {"max_age_days": NaN}}', b'{"storage": {"max_age_days": 1e309}}',
                b'{"storage": {"max_age_days": -Infinity}}'):
        status, data = _raw_put(s, raw)
        assert status == 400, (raw, data)
    assert not s.config.with_name("retention.json").exists()


def _raw_put(s: Site, raw: bytes):
    import urllib.error
    import urllib.request

    req = urllib.request.Request(s.base + "/api/v1/storage/retention", data=raw, method="PUT",
                                 headers={"Content-Type": "application/json",
                                          "X-CSRF-Token": s.admin.csrf})
    try:
        with s.admin.opener.open(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@pytest.mark.timeout(180)
def test_initialise_a_loop_disk_through_the_web_api(site):
    from tests.integration.storage.loopdev import loop_disks, mounts_from

    s = site()
    with loop_disks(s.root, 1, size_mib=256) as (disk,):
        status, plan = s.admin.json("POST", "/api/v1/storage/disks/initialise",
                                    {"disks": [disk.node], "mode": "single"})
        assert status == 200 and plan["job"] is None, plan
        assert plan["plan"]["erases"][0]["device"] == disk.node
        status, answer = s.admin.json("POST", "/api/v1/storage/disks/initialise",
                                      {"disks": [disk.node], "mode": "single",
                                       "token": "zzzzzzzz"})
        assert status == 400 and "confirmation token" in answer["error"]
        for bad in ({"disks": [disk.node], "command": "disks.list"},
                    {"disks": disk.node}, {"disks": [disk.node], "mode": "raid0"}):
            assert s.admin.json("POST", "/api/v1/storage/disks/initialise", bad)[0] == 400, bad
        assert not s.audit("disks_initialise")
        status, started = s.admin.json("POST", "/api/v1/storage/disks/initialise",
                                       {"disks": [disk.node], "mode": "single",
                                        "token": plan["token"]})
        assert status == 202, started
        job_id = started["job"]["id"]

        def done():
            code, job = s.admin.json("GET", f"/api/v1/storage/jobs/{job_id}")
            assert code == 200, job
            return job if job["done"] else None

        job = wait_until(done, 120, "the initialise job", step=0.1)
        assert job["error"] == "" and job["percent"] == 100.0
        assert mounts_from(disk.node) == [str(s.root / "vigil")]
        [entry] = s.audit("disks_initialise")
        assert disk.node in entry["detail"] and job_id in entry["detail"]
        status, answer = s.admin.json("GET", "/api/v1/storage")
        assert [v["mounted"] for v in answer["volumes"]] == [True]
    assert s.admin.json("GET", "/api/v1/storage/jobs/0123456789abcdef")[0] == 404
