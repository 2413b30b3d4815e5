"""The System API on the real app (waitress) with vigil-hwd's system commands on a real
control socket (sandbox OS backend, a persist partition in tmp_path): roles, each part's
change with its audit entry, bad input refused with nothing changed, backup download and
restore, factory reset back to the exact first-boot state, and 503 when vigil-hwd is
not there."""

from __future__ import annotations

import base64
import json
import re
import threading
from pathlib import Path

import pytest
from waitress.server import create_server

from appliance.system.backup import read_bundle
from appliance.web.accounts import AccountStore
from appliance.web.app import create_app
from appliance.web.security import COOKIE
from appliance.web.services import WebPaths
from tests.integration.web_session import ADMIN, PASSWORD, ApiClient
from tests.unit.system.backup_files import CAMERA_PASSWORD, good
from tests.unit.system.box import DEFAULTS, Box

USER_PASSWORD = "a long user password"
ROUTES = [("GET", "/api/v1/system", None), ("GET", "/api/v1/system/timezones", None),
          ("PUT", "/api/v1/system/hostname", {"hostname": "x1"}),
          ("PUT", "/api/v1/system/time", {"timezone": "UTC"}),
          ("PUT", "/api/v1/system/network", {"mode": "dhcp"}),
          ("POST", "/api/v1/system/backup", {}),
          ("POST", "/api/v1/system/restore", {"file": "AAAA"}),
          ("POST", "/api/v1/system/factory-reset", {"confirm": "ERASE", "password": PASSWORD}),
          ("POST", "/api/v1/system/reboot", {})]


class Site:
    def __init__(self, root: Path, hwd: bool = True) -> None:
        self.box = Box(root)
        if not hwd:
            self.box.close()
        self.accounts = AccountStore(root / "accounts.sqlite3")
        self.app = create_app(root / "data", self.accounts,
                              paths=WebPaths(hwd_socket=root / "hwd.sock"))
        self.server = create_server(self.app, host="127.0.0.1", port=0, threads=4)
        self.base = f"http://127.0.0.1:{self.server.effective_port}"
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        self.admin = ApiClient(self.base).login()

    def _serve(self) -> None:
        try:
            self.server.run()
        except OSError:
            if not self._closing.is_set():
                raise

    def user(self, name: str, role: str) -> ApiClient:
        status, answer = self.admin.json("POST", "/api/v1/users", {
            "username": name, "password": USER_PASSWORD, "role": role, "cameras": ["door"]})
        assert status == 201, answer
        return ApiClient(self.base).login(name, USER_PASSWORD)

    def audit(self, what: str) -> list[str]:
        return [e["detail"] for e in self.accounts.audit_log() if e["what"] == what]

    def close(self) -> None:
        self._closing.set()
        self.server.close()
        self._thread.join(5)
        self.box.close()
        self.accounts.close()


@pytest.fixture
def site(tmp_path):
    s = Site(tmp_path)
    yield s
    s.close()


def test_only_admins(site):
    for client in (site.user("guard", "operator"), site.user("watcher", "viewer")):
        for method, path, body in ROUTES:
            status, answer = client.json(method, path, body)
            assert status == 403, (client, method, path, status, answer)
    assert site.box.sandbox.commands == []
    assert not (site.box.paths.config_dir / "system.json").exists()


def test_overview(site):
    status, info = site.admin.json("GET", "/api/v1/system")
    assert status == 200
    assert info["settings"]["hostname"] == "vigil-0042" and info["version"]
    assert info["uptime"] > 0 and info["time"] > 1.7e9 and info["restart_needed"] is False
    status, zones = site.admin.json("GET", "/api/v1/system/timezones")
    assert status == 200 and "Europe/Berlin" in zones["timezones"] and "UTC" in zones["timezones"]
    assert zones["timezones"] == sorted(zones["timezones"])


def test_each_part_is_saved_applied_and_audited(site):
    status, answer = site.admin.json("PUT", "/api/v1/system/hostname", {"hostname": "Garage"})
    assert status == 200 and answer["settings"]["hostname"] == "garage"
    assert site.audit("system_hostname") == ["vigil-0042 -> garage"]

    status, answer = site.admin.json("PUT", "/api/v1/system/time", {
        "timezone": "Europe/Berlin", "ntp_servers": ["ntp.example.org"]})
    assert status == 200 and answer["settings"]["time"]["ntp_servers"] == ["ntp.example.org"]
    assert site.audit("system_time") == ["time zone UTC -> Europe/Berlin; NTP servers "
                                         "(default) -> ntp.example.org"]

    status, answer = site.admin.json("PUT", "/api/v1/system/time",
                                     {"set_time": "2026-11-23T14:05"})
    assert status == 409 and "turn NTP off" in answer["error"]
    status, answer = site.admin.json("PUT", "/api/v1/system/time",
                                     {"ntp": False, "set_time": "2026-11-23T14:05"})
    assert status == 200 and answer["clock"]["set_to"] == "2026-11-23T13:05:00+00:00"
    assert site.audit("system_clock_set") == ["clock set by hand to 2026-11-23T13:05:00+00:00"]
    assert site.box.sandbox.commands[-1] == ["timedatectl", "set-time",
                                             "2026-11-23 13:05:00 UTC"]

    status, answer = site.admin.json("PUT", "/api/v1/system/network", {
        "mode": "static", "address": "192.168.1.20/24", "gateway": "192.168.1.1",
        "dns": ["192.168.1.1"]})
    assert status == 200, answer
    assert site.audit("system_network") == ["DHCP -> static 192.168.1.20/24 gateway "
                                            "192.168.1.1 DNS 192.168.1.1"]
    stored = json.loads((site.box.paths.config_dir / "system.json").read_text())
    assert stored["network"]["address"] == "192.168.1.20/24" and stored["hostname"] == "garage"
    network = (site.box.sandbox.root / "run/systemd/network/10-vigil-lan.network").read_text()
    assert "Address=192.168.1.20/24" in network and "Gateway=192.168.1.1" in network


BAD = [
    ("PUT", "/api/v1/system/hostname", {"hostname": "$(touch /tmp/canary)"}),
    ("PUT", "/api/v1/system/hostname", {"hostname": "a;touch /tmp/canary"}),
    ("PUT", "/api/v1/system/hostname", {"hostname": "garage\nevil"}),
    ("PUT", "/api/v1/system/hostname", {"hostname": ["garage"]}),
    ("PUT", "/api/v1/system/hostname", {"hostname": {"x": 1}}),
    ("PUT", "/api/v1/system/hostname", {"hostname": "x" * 64}),
    ("PUT", "/api/v1/system/hostname", {"name": "garage"}),
    ("PUT", "/api/v1/system/hostname", ["garage"]),
    ("PUT", "/api/v1/system/time", {"timezone": "../../etc/passwd"}),
    ("PUT", "/api/v1/system/time", {"timezone": "`touch /tmp/canary`"}),
    ("PUT", "/api/v1/system/time", {"ntp_servers": ["pool.ntp.org;touch /tmp/canary"]}),
    ("PUT", "/api/v1/system/time", {"ntp_servers": ["$(touch /tmp/canary)"]}),
    ("PUT", "/api/v1/system/time", {"ntp_servers": "pool.ntp.org"}),
    ("PUT", "/api/v1/system/time", {"ntp": "false"}),
    ("PUT", "/api/v1/system/time", {"ntp": False, "set_time": "$(touch /tmp/canary)"}),
    ("PUT", "/api/v1/system/network", {"mode": "static", "address": "192.168.1.20/24",
                                       "gateway": "192.168.2.1"}),
    ("PUT", "/api/v1/system/network", {"mode": "static", "address": "192.168.1.20/24 ;id"}),
    ("PUT", "/api/v1/system/network", {"mode": "static", "address": "192.168.1.20/24",
                                       "dns": ["|touch /tmp/canary"]}),
    ("PUT", "/api/v1/system/network", {"mode": "bridge"}),
    ("PUT", "/api/v1/system/network", {"mode": "dhcp", "confirm_other_subnet": "yes"}),
    ("POST", "/api/v1/system/backup", {"passphrase": "short"}),
    ("POST", "/api/v1/system/backup", {"passphrase": ["a long passphrase"]}),
    ("POST", "/api/v1/system/restore", {"file": "not base64!"}),
    ("POST", "/api/v1/system/restore", {"file": ""}),
    ("POST", "/api/v1/system/restore", {"file": ["AAAA"]}),
    ("POST", "/api/v1/system/factory-reset", {"confirm": "ERASE"}),
    ("POST", "/api/v1/system/factory-reset", {"confirm": "ERASE", "password": PASSWORD,
                                              "erase_recordings": "yes"}),
    ("POST", "/api/v1/system/reboot", {"now": True}),
]


def test_bad_input_is_refused_with_a_reason_and_changes_nothing(site):
    Path("/tmp/canary").unlink(missing_ok=True)
    before = site.box.persist_state()
    users = site.accounts.users()
    for method, path, body in BAD:
        status, answer = site.admin.json(method, path, body)
        assert status == 400, (path, body, status, answer)
        assert answer["error"] and "Traceback" not in answer["error"], answer
    assert not Path("/tmp/canary").exists()
    assert site.box.persist_state() == before and site.box.sandbox.commands == []
    assert site.accounts.users() == users
    # not JSON, no CSRF token
    assert site.admin.request("PUT", "/api/v1/system/hostname", None, {
        "Content-Type": "text/plain"})[0] == 415
    assert site.admin.request("PUT", "/api/v1/system/hostname", {"hostname": "x1"},
                              {"X-CSRF-Token": ""})[0] == 403
    assert site.box.persist_state() == before


def test_backup_download_and_restore(site):
    site.user("guard", "operator")
    site.admin.json("PUT", "/api/v1/system/hostname", {"hostname": "garage"})
    status, raw = site.admin.request("POST", "/api/v1/system/backup",
                                     {"passphrase": "a long backup passphrase"})
    assert status == 200
    assert raw[:2] == b"\x1f\x8b" and CAMERA_PASSWORD.encode() not in raw
    bundle = read_bundle(raw, "a long backup passphrase")
    assert [u["username"] for u in bundle.users] == ["guard", "owner"]
    assert bundle.cameras == {"door": {"username": "admin", "password": CAMERA_PASSWORD}}
    assert re.match(r"vigil-config-garage-\d{8}-\d{6}\.tar\.gz \(\d+ bytes, with camera "
                    r"passwords, encrypted\)", site.audit("config_backup")[0])

    # later: another name, another user, then the restore
    site.admin.json("PUT", "/api/v1/system/hostname", {"hostname": "other"})
    site.user("intruder", "admin")
    status, answer = site.admin.json("POST", "/api/v1/system/restore", {
        "file": base64.b64encode(raw).decode(), "passphrase": "a long backup passphrase"})
    assert status == 200, answer
    assert answer["restart_needed"] and answer["accounts"].startswith("replaced")
    assert answer["summary"]["hostname"] == "garage"
    assert sorted(u.username for u in site.accounts.users()) == ["guard", "owner"]
    assert site.admin.json("GET", "/api/v1/me")[0] == 401         # everybody logs in again
    admin = ApiClient(site.base).login()                           # with the backup's password
    assert admin.json("GET", "/api/v1/system")[1]["settings"]["hostname"] == "garage"
    assert admin.json("GET", "/api/v1/system")[1]["restart_needed"] is True
    [detail] = site.audit("config_restored")
    assert "backup of garage" in detail and "2 accounts" in detail


def test_bad_backup_files_are_refused_and_change_nothing(site):
    status, raw = site.admin.request("POST", "/api/v1/system/backup", {})
    assert status == 200
    before = site.box.persist_state()
    users = site.accounts.users()
    cases = {
        "truncated": raw[: len(raw) // 2],
        "corrupt": raw[:100] + bytes([raw[100] ^ 0x5A]) + raw[101:],
        "foreign": b"PK\x03\x04" + b"\0" * 200,
        "too large": b"\x1f\x8b" + b"\0" * (100 * 1024),
    }
    for name, data in cases.items():
        status, answer = site.admin.json("POST", "/api/v1/system/restore",
                                         {"file": base64.b64encode(data).decode()})
        assert status == 400, (name, answer)
    status, answer = site.admin.json("POST", "/api/v1/system/restore", {
        "file": base64.b64encode(raw).decode(), "passphrase": "a long passphrase here"})
    assert status == 400 and "has no passphrase" in answer["error"]
    # a 50 MB upload never reaches the route: the body limit answers first
    huge = base64.b64encode(b"\x1f\x8b" + b"\0" * (50 * 1024 * 1024)).decode()
    status, answer = site.admin.json("POST", "/api/v1/system/restore", {"file": huge})
    assert status == 413 and answer["error"] == "the request is too large"
    assert site.box.persist_state() == before and site.accounts.users() == users
    assert site.admin.json("GET", "/api/v1/me")[0] == 200         # still logged in
    refusals = site.audit("config_restore_refused")
    assert len(refusals) == 5 and "truncated" in refusals[-1]     # (newest first)


def protected_routes(app):
    from appliance.web.security import PUBLIC, PUBLIC_PREFIXES
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC or rule.endpoint.startswith(PUBLIC_PREFIXES):
            continue
        url = re.sub(r"<[^>]+>", "x", re.sub(r"<int:[^>]+>", "1", rule.rule))
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield method, url


def test_factory_reset_back_to_first_boot(site):
    guard = site.user("guard", "operator")
    site.admin.json("PUT", "/api/v1/system/hostname", {"hostname": "garage"})
    before = site.box.persist_state()
    # the password again, and the name or ERASE: anything else changes nothing
    status, answer = site.admin.json("POST", "/api/v1/system/factory-reset",
                                     {"confirm": "garage", "password": "not my password"})
    assert status == 400 and answer["error"] == "the password is wrong"
    status, answer = site.admin.json("POST", "/api/v1/system/factory-reset",
                                     {"confirm": "vigil", "password": PASSWORD})
    assert status == 400 and "type the box's name (garage) or ERASE" in answer["error"]
    assert site.box.persist_state() == before and len(site.accounts.users()) == 2
    assert site.audit("password_confirm_failed") == [""]
    assert site.audit("factory_reset_refused") == [
        "to confirm, type the box's name (garage) or ERASE"]

    old_cookie = site.admin.cookie
    status, answer = site.admin.json("POST", "/api/v1/system/factory-reset",
                                     {"confirm": "garage", "password": PASSWORD})
    assert status == 200, answer
    assert "accounts, sessions and the audit log" in answer["erased"]
    assert "first-boot setup" in answer["next"] and "recordings" in answer["kept"]

    # exactly the first-boot state
    assert site.admin.json("GET", "/api/v1/setup") == (200, {"needed": True})
    client = site.app.test_client()
    client.set_cookie(COOKIE, old_cookie.split("=", 1)[1])
    routes = list(protected_routes(site.app))
    assert ("PUT", "/api/v1/system/hostname") in routes
    for method, url in routes:
        resp = client.open(url, method=method, json={} if method != "GET" else None)
        assert resp.status_code == 503 and resp.json["error"] == "setup required", (method, url)
    assert guard.json("GET", "/api/v1/me")[0] == 503
    assert site.accounts.users() == [] and site.accounts.sessions_of(ADMIN) == 0
    assert [(e["what"], e["who"]) for e in site.accounts.audit_log()] == [
        ("factory_reset", ADMIN)]
    config_dir = site.box.paths.config_dir
    assert sorted(p.name for p in config_dir.iterdir() if p.suffix in (".json", ".toml")) == [
        "data-volumes.json", "recorder.toml"]
    assert (config_dir / "recorder.toml").read_bytes() == DEFAULTS
    assert list(site.box.paths.camera_secrets.iterdir()) == []
    assert (site.box.root / "persist/licence/licence.txt").exists()
    assert (site.box.paths.data_dir / "recordings/door/2026-11-23/14/seg.mp4").exists()
    # a new owner sets the box up; the old session stays dead
    new = ApiClient(site.base).login("newowner", "another long password")
    assert new.json("GET", "/api/v1/system")[1]["settings"]["hostname"] == "vigil-0042"
    assert client.get("/api/v1/me").status_code == 401


def test_503_when_hwd_is_not_running(tmp_path):
    site = Site(tmp_path, hwd=False)
    try:
        for method, path, body in ROUTES:
            if path.endswith("timezones") or path.endswith("restore"):
                continue
            status, answer = site.admin.json(method, path, body)
            assert status == 503, (path, answer)
            assert "vigil-hwd is not running" in answer["error"], answer
        status, answer = site.admin.json("POST", "/api/v1/system/restore", {
            "file": base64.b64encode(good()).decode()})           # a good file, checked here
        assert status == 503 and "vigil-hwd is not running" in answer["error"]
        assert site.admin.json("GET", "/api/v1/system/timezones")[0] == 200  # no daemon needed
        assert [u.username for u in site.accounts.users()] == [ADMIN]  # no reset, no restore
    finally:
        site.close()


def test_503_when_the_server_has_no_hwd_socket(tmp_path):
    accounts = AccountStore(tmp_path / "accounts.sqlite3")
    app = create_app(tmp_path / "data", accounts)
    client = app.test_client()
    csrf = client.post("/api/v1/setup", json={"username": ADMIN, "password": PASSWORD}).json["csrf"]
    resp = client.get("/api/v1/system")
    assert resp.status_code == 503 and "started without hwd socket" in resp.json["error"]
    resp = client.put("/api/v1/system/hostname", json={"hostname": "x1"},
                      headers={"X-CSRF-Token": csrf})
    assert resp.status_code == 503
    accounts.close()
