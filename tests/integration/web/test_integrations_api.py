"""The Integrations API on the real app (waitress) with vigil-hwd's fleet commands
(appliance/fleet_control.py) on a real control socket, whose systemctl is a recorder:
only admins, the CSRF token, the MQTT settings and login saved where vigil-mqtt reads
them and the password never in an answer or the audit log, bad input refused with
nothing changed, the connection test refused for link-local and metadata addresses, the
restream's switch starting and stopping the unit and its URLs only while it is on, and
503 when vigil-hwd is not there."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from appliance.cameras.credentials import CredentialStore
from appliance.core.commands import CommandResult
from appliance.core.control import ControlServer
from appliance.fleet_control import control_handlers
from appliance.mqtt.settings import load_credentials, load_settings
from appliance.restream.login import RestreamLogin
from appliance.restream.settings import load_enabled
from tests.integration.web.manage_site import ManageSite

pytestmark = pytest.mark.timeout(120)

PASSWORD = "Br0ker-secret-9"
RESTREAM_PASSWORD = "RestreamPassw0rdRestream"
START = ["systemctl", "start", "--no-block", "vigil-restream.service"]
STOP = ["systemctl", "stop", "--no-block", "vigil-restream.service"]
GOOD = {"enabled": True, "host": "mqtt.home.lan", "port": 8883, "tls": True,
        "topic_prefix": "shop/nvr1", "password_action": "set", "username": "vigil-box",
        "password": PASSWORD}
ROUTES = [("GET", "/api/v1/mqtt/settings", None), ("PUT", "/api/v1/mqtt/settings", GOOD),
          ("POST", "/api/v1/mqtt/test", {"host": "127.0.0.1", "port": 1, "tls": False}),
          ("GET", "/api/v1/restream", None), ("PUT", "/api/v1/restream", {"enabled": True})]


STOPPED = ("inactive", "dead", "success")
RUNNING = ("active", "running", "success")


class Systemctl:
    """What vigil-hwd would have run, and systemd's answers to `systemctl show` about the
    restream's unit: (ActiveState, SubState, Result) in `unit`, `after_start` once a start
    was taken; `failing` makes systemd refuse a start or stop."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []
        self.failing = False
        self.unit = STOPPED
        self.after_start = RUNNING

    def __call__(self, argv) -> CommandResult:
        if argv[1] == "show":
            active, sub, result = self.unit
            return CommandResult(0, f"ActiveState={active}\nSubState={sub}\nResult={result}\n"
                                    "ConditionResult=yes\nJob=\n", "")
        self.commands.append(list(argv))
        if self.failing:
            return CommandResult(1, "", "Unit vigil-restream.service is masked.")
        self.unit = self.after_start if argv[1] == "start" else STOPPED
        return CommandResult(0, "", "")


class IntegrationsRig:
    """The web app (camera registry with one camera, settings beside its TOML) and
    vigil-hwd's fleet commands on a control socket, as on the box: the broker's login in
    <secrets>/../mqtt, the restream login in <secrets>/../restream/login.json."""

    def __init__(self, root: Path, hwd: bool = True) -> None:
        self.socket = root / "hwd.sock"
        self.systemctl = Systemctl()
        self.site = ManageSite(root / "site", hwd_socket=self.socket)
        self.config_dir = self.site.config.parent
        self.mqtt_secrets = self.site.secrets.parent / "mqtt"
        self.restream_login = RestreamLogin(self.site.secrets.parent / "restream" / "login.json")
        self.hwd = ControlServer(self.socket, control_handlers(
            self.config_dir, self.site.secrets.parent, self.systemctl))
        self.hwd.start()
        if not hwd:
            self.hwd.close()
        status, answer = self.site.admin.json("POST", "/api/v1/cameras", {
            "name": "door", "label": "Front door", "rtsp": "rtsp://127.0.0.1:18554/door/main",
            "sub": "rtsp://127.0.0.1:18554/door/sub"})
        assert status == 201, answer

    def files(self) -> dict[str, bytes]:
        """Every settings and login file the fleet commands may write."""
        found = {}
        for top in (self.config_dir, self.mqtt_secrets, self.restream_login.path.parent):
            for path in sorted(top.rglob("*")) if top.exists() else []:
                if path.is_file() and not path.name.endswith(".lock"):
                    found[str(path)] = path.read_bytes()
        return found

    def audit(self, what: str) -> list[str]:
        return [e["detail"] for e in self.site.audit() if e["what"] == what]

    def close(self) -> None:
        self.site.close()
        self.hwd.close()


@pytest.fixture
def rig(tmp_path):
    r = IntegrationsRig(tmp_path)
    yield r
    r.close()


def test_only_admins_and_a_refused_call_changes_nothing(rig):
    before = rig.files()
    for client in (rig.site.user("guard", "operator"), rig.site.user("watcher", "viewer",
                                                                      ("door",))):
        for method, path, body in ROUTES:
            status, answer = client.json(method, path, body)
            assert status == 403, (method, path, status, answer)
    assert rig.files() == before and rig.systemctl.commands == []


def test_without_the_csrf_token_nothing_changes(rig):
    before = rig.files()
    for method, path, body in ROUTES:
        if method == "GET":
            continue
        status, _ = rig.site.admin.request(method, path, body, headers={"X-CSRF-Token": ""})
        assert status == 403, (method, path)
    assert rig.files() == before and rig.systemctl.commands == []


def test_mqtt_settings_and_login_are_saved_where_the_daemon_reads_them(rig):
    status, view = rig.site.admin.json("GET", "/api/v1/mqtt/settings")
    assert status == 200 and view["settings"]["enabled"] is False
    assert view["username"] is None and view["password_set"] is False

    status, view = rig.site.admin.json("PUT", "/api/v1/mqtt/settings", GOOD)
    assert status == 200, view
    assert view["settings"]["host"] == "mqtt.home.lan" and view["port_in_force"] == 8883
    assert view["topic_prefix_in_force"] == "shop/nvr1"
    assert view["username"] == "vigil-box" and view["password_set"] is True
    stored = load_settings(rig.config_dir / "mqtt.json")
    assert stored.enabled and stored.host == "mqtt.home.lan" and stored.tls
    login = load_credentials(rig.mqtt_secrets)
    assert (login.username, login.password) == ("vigil-box", PASSWORD)
    assert rig.audit("mqtt_settings_changed") == [
        "enabled False -> True; host '' -> 'mqtt.home.lan'; port 0 -> 8883; topic_prefix '' "
        "-> 'shop/nvr1'; login set (user vigil-box)"]

    # fields left out keep their value; "unchanged" keeps the login
    status, view = rig.site.admin.json("PUT", "/api/v1/mqtt/settings",
                                       {"discovery": False, "password_action": "unchanged"})
    assert status == 200 and view["settings"]["discovery"] is False
    assert view["settings"]["host"] == "mqtt.home.lan" and view["password_set"] is True
    assert load_credentials(rig.mqtt_secrets).password == PASSWORD

    status, view = rig.site.admin.json("PUT", "/api/v1/mqtt/settings",
                                       {"password_action": "clear"})
    assert status == 200 and view["username"] is None and view["password_set"] is False
    assert load_credentials(rig.mqtt_secrets) is None
    assert rig.audit("mqtt_settings_changed")[0] == "login cleared"


def test_the_password_never_comes_back(rig):
    answers = [rig.site.admin.request("PUT", "/api/v1/mqtt/settings", GOOD)[1],
               rig.site.admin.request("GET", "/api/v1/mqtt/settings")[1],
               rig.site.admin.request("POST", "/api/v1/mqtt/test",
                                      {"host": "127.0.0.1", "port": 1, "tls": False})[1]]
    for raw in answers:
        assert PASSWORD.encode() not in raw and b"vigil-box" in raw
    assert not any(PASSWORD in e["detail"] for e in rig.site.audit())


@pytest.mark.parametrize("body, words", [
    ({"host": "mqtt://vigil:secret@mqtt.lan"}, "is not a host name or IP address"),
    ({"host": "mqtt.lan\n"}, "is not a host name or IP address"),
    ({"host": "10.1"}, "is not a host name or IP address"),
    ({"enabled": True, "host": ""}, "give the broker's host name"),
    ({"port": 70000}, "mqtt.port: 70000 is above the maximum 65535"),
    ({"port": "1883"}, "mqtt.port: expected a number"),
    ({"port": float("inf")}, "expected a whole number"),
    ({"tls": False, "ca_file": "/etc/hostname"}, "only used with TLS"),
    ({"ca_file": "ca.pem"}, "give an absolute path"),
    ({"ca_file": "/etc/passwd"}, "not a PEM file of CA certificates"),
    ({"ca_file": "/dev/zero"}, "give a readable PEM file"),
    ({"ca_certificate": "my broker's CA"}, "no PEM certificate"),
    ({"ca_certificate": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"},
     "never a private key"),
    ({"ca_certificate": ["not", "text"]}, "give the PEM text"),
    ({"ca_certificate": "x", "ca_file": "/etc/ssl/certs/ca-certificates.crt"}, "not both"),
    ({"topic_prefix": "vigil/#"}, "no wildcards"),
    ({"keepalive_s": 1}, "below the minimum"),
    ({"format": 2}, "unknown field(s) format"),
    ({"password": PASSWORD}, 'given with password_action "set"'),
    ({"username": "other"}, 'given with password_action "set"'),
    ({"password_action": "set", "username": "vigil-box"}, "give both"),
    ({"password_action": "set", "username": "a\nb", "password": "x"}, "control characters"),
    ({"password_action": "forget"}, "password_action"),
])
def test_bad_settings_are_refused_and_change_nothing(rig, body, words):
    rig.site.admin.json("PUT", "/api/v1/mqtt/settings", GOOD)
    before, audit = rig.files(), rig.site.audit()
    # (json.dumps writes infinity as `Infinity`, which Flask's parser reads back)
    status, answer = rig.site.admin.request("PUT", "/api/v1/mqtt/settings", body)
    assert status == 400, answer
    assert words in json.loads(answer)["error"]
    assert rig.files() == before and rig.site.audit() == audit


@pytest.mark.parametrize("host, words", [
    ("169.254.169.254", "link-local"),
    ("100.100.100.200", "cloud metadata"),
    ("fe80::1", "link-local"),
    ("127.0.0.1", "one of this appliance's own services"),
])
def test_the_connection_test_refuses_metadata_link_local_and_the_box_itself(rig, host, words):
    port = 8554 if host == "127.0.0.1" else 1883
    status, answer = rig.site.admin.json("POST", "/api/v1/mqtt/test",
                                         {"host": host, "port": port, "tls": False})
    assert status == 400 and words in answer["error"], answer


def test_the_connection_test_says_which_step_failed(rig):
    with socket.socket() as closed:      # a loopback port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    status, answer = rig.site.admin.json("POST", "/api/v1/mqtt/test",
                                         {"host": "127.0.0.1", "port": port, "tls": False})
    assert status == 200, answer
    assert answer["ok"] is False and answer["step"] == "connect"
    assert answer["message"].startswith(f"nothing accepts connections on 127.0.0.1:{port}")
    assert answer["broker"] == f"127.0.0.1:{port}" and answer["username"] is None
    assert not (rig.config_dir / "mqtt.json").exists()     # a test saves nothing


def test_the_restream_is_off_by_default_and_shows_urls_only_when_on(rig):
    rig.restream_login.path.parent.mkdir(parents=True)
    rig.restream_login.path.write_text(json.dumps({"username": "restream",
                                                   "password": RESTREAM_PASSWORD}))
    status, view = rig.site.admin.json("GET", "/api/v1/restream")
    assert status == 200 and view["enabled"] is False and view["cameras"] == []
    assert view["service"] == "stopped" and view["problem"] is None
    assert b"rtsp://" not in rig.site.admin.request("GET", "/api/v1/restream")[1]

    status, view = rig.site.admin.json("PUT", "/api/v1/restream", {"enabled": True})
    assert status == 200 and view["enabled"] is True and view["problems"] == []
    assert view["service"] == "running" and view["problem"] is None
    assert rig.systemctl.commands == [START]
    assert load_enabled(rig.config_dir / "restream.json") is True
    assert view["user"] == "restream" and view["port"] == 8554
    assert view["cameras"] == [{
        "camera": "door", "skipped": {}, "main_codec": "h264", "sub_codec": "h264",
        "main": "rtsp://restream@127.0.0.1:8554/door/main",
        "sub": "rtsp://restream@127.0.0.1:8554/door/sub"}]
    for raw in (rig.site.admin.request("GET", "/api/v1/restream")[1],
                json.dumps(view).encode()):
        assert RESTREAM_PASSWORD.encode() not in raw
    assert rig.audit("restream_switched") == ["off -> on"]

    status, view = rig.site.admin.json("PUT", "/api/v1/restream", {"enabled": False})
    assert status == 200 and view["enabled"] is False and view["cameras"] == []
    assert rig.systemctl.commands == [START, STOP]
    assert load_enabled(rig.config_dir / "restream.json") is False


def test_a_switch_systemd_refuses_is_saved_and_says_so(rig):
    rig.systemctl.failing = True
    status, view = rig.site.admin.json("PUT", "/api/v1/restream", {"enabled": True})
    assert status == 200 and view["enabled"] is True
    assert view["problems"] == ["saved, but systemd did not take the start of the restream: "
                                "Unit vigil-restream.service is masked."]
    assert view["service"] == "stopped" and "is not running" in view["problem"]


def test_a_restream_that_fails_after_its_start_is_shown_as_failed(rig):
    """The start is queued (--no-block), so its failure shows on the next look."""
    rig.systemctl.after_start = ("activating", "start-pre", "success")
    status, view = rig.site.admin.json("PUT", "/api/v1/restream", {"enabled": True})
    assert status == 200 and view["service"] == "starting" and view["problem"] is None
    rig.systemctl.unit = ("failed", "failed", "exit-code")
    status, view = rig.site.admin.json("GET", "/api/v1/restream")
    assert status == 200 and view["enabled"] is True and view["service"] == "failed"
    assert view["problem"] == ("switched on, but the restream stopped with an error (exit-code); "
                               "the box's journal has the reason (journalctl -u vigil-restream)")
    assert view["cameras"], "the URLs still show: the switch is on"


@pytest.mark.parametrize("body, words", [
    ({"enabled": "yes"}, "enabled"), ({"enabled": 1}, "enabled"), ({}, "enabled"),
    ({"enabled": True, "port": 9554}, "nothing else"), ([True], "a JSON object")])
def test_a_bad_switch_is_refused_and_changes_nothing(rig, body, words):
    before = rig.files()
    status, answer = rig.site.admin.json("PUT", "/api/v1/restream", body)
    assert status == 400 and words in answer["error"], answer
    assert rig.files() == before and rig.systemctl.commands == []


def test_without_vigil_hwd_changes_answer_503_and_the_settings_still_show(tmp_path):
    rig = IntegrationsRig(tmp_path, hwd=False)
    try:
        for path, body in (("/api/v1/mqtt/settings", GOOD), ("/api/v1/restream",
                                                             {"enabled": True})):
            status, answer = rig.site.admin.json("PUT", path, body)
            assert status == 503 and "vigil-hwd is not running" in answer["error"], answer
        assert rig.site.admin.json("GET", "/api/v1/mqtt/settings")[0] == 200
        status, view = rig.site.admin.json("GET", "/api/v1/restream")
        assert status == 200 and view["service"] is None
        assert view["problem"].startswith("the restream's state is unknown: vigil-hwd is not "
                                          "running"), view
        assert not (rig.config_dir / "mqtt.json").exists()
        assert CredentialStore(rig.mqtt_secrets).get("broker") is None
    finally:
        rig.close()


def test_an_admin_can_ask_for_the_restream_password_and_it_is_audited(rig):
    status, _ = rig.site.admin.json("GET", "/api/v1/restream/login")
    assert status == 409    # made at the restream's first start
    rig.restream_login.path.parent.mkdir(parents=True)
    rig.restream_login.path.write_text(json.dumps({"username": "restream",
                                                   "password": RESTREAM_PASSWORD}))
    for client in (rig.site.user("guard", "operator"), rig.site.user("watcher", "viewer",
                                                                      ("door",))):
        status, answer = client.request("GET", "/api/v1/restream/login")
        assert status == 403 and RESTREAM_PASSWORD.encode() not in answer
    status, login = rig.site.admin.json("GET", "/api/v1/restream/login")
    assert status == 200 and login == {"user": "restream", "password": RESTREAM_PASSWORD}
    assert rig.audit("restream_login_shown") == ["user restream"]
