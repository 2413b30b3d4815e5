"""vigil-hwd's fleet commands (appliance/fleet_control.py) on plain files: mqtt.set writes
the settings and the login where vigil-mqtt reads them, checks everything before writing
anything and replaces a damaged file; restream.set saves the switch and asks systemd to
start or stop the unit; restream.status turns systemd's view of the unit into the page's
words and says what is wrong when it does not match the switch."""

from __future__ import annotations

import json

import pytest

from appliance.cameras.credentials import Credentials
from appliance.core.commands import CommandResult
from appliance.core.errors import InvalidConfig
from appliance.fleet_control import control_handlers
from appliance.mqtt.settings import load_credentials, load_settings, save_credentials
from appliance.restream.settings import load_enabled

LOGIN = {"action": "set", "username": "vigil-box", "password": "Br0ker-secret-9"}


class Box:
    def __init__(self, root) -> None:
        self.config = root / "config"
        self.secrets = root / "secrets"
        self.commands: list[list[str]] = []
        self.exit_code = 0
        self.show = ""      # what `systemctl show` prints (nothing: no systemd)
        self.handlers = control_handlers(self.config, self.secrets, self.run)

    def run(self, argv) -> CommandResult:
        if argv[1] == "show":
            assert argv[2:] == ["--property=ActiveState,SubState,Result,ConditionResult,Job",
                                "vigil-restream.service"], argv
            return CommandResult(self.exit_code, self.show, "")
        self.commands.append(list(argv))
        return CommandResult(self.exit_code, "", "Failed to start: unit masked")

    def files(self) -> dict[str, bytes]:
        root = self.config.parent
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
                if p.is_file()}


@pytest.fixture
def box(tmp_path):
    return Box(tmp_path)


def test_mqtt_settings_and_login_land_where_the_daemon_reads_them(box):
    answer = box.handlers["mqtt.set"]({"changes": {"enabled": True, "host": "10.0.0.5",
                                                   "tls": False}, "login": LOGIN})
    assert answer["settings"]["host"] == "10.0.0.5" and answer["previous"]["enabled"] is False
    assert answer["username"] == "vigil-box" and answer["login"] == "set"
    assert "Br0ker-secret-9" not in json.dumps(answer)
    settings = load_settings(box.config / "mqtt.json")
    assert settings.enabled and settings.effective_port == 1883
    assert load_credentials(box.secrets / "mqtt") == Credentials("vigil-box", "Br0ker-secret-9")
    assert oct((box.secrets / "mqtt").stat().st_mode & 0o777) == "0o700"

    box.handlers["mqtt.set"]({"changes": {"port": 18883}})      # the login stays
    assert load_settings(box.config / "mqtt.json").host == "10.0.0.5"
    assert load_credentials(box.secrets / "mqtt").username == "vigil-box"
    box.handlers["mqtt.set"]({"login": {"action": "clear"}})
    assert load_credentials(box.secrets / "mqtt") is None


@pytest.mark.parametrize("args, words", [
    ({"changes": {"host": "a b"}, "login": LOGIN}, "is not a host name"),
    ({"changes": {"password": "x"}}, "unknown setting(s) password"),
    ({"changes": []}, "changes: an object"),
    ({"changes": {}, "login": {"action": "set", "username": "u"}}, "give both"),
    ({"changes": {}, "login": {"action": "clear", "username": "u"}}, "unknown field(s) username"),
    ({"changes": {}, "login": {"action": "drop"}}, "the action is one of unchanged, set, clear"),
    ({"changes": {}, "login": "set"}, "an object with an action"),
    ({"changes": {}, "reason": "x"}, "unknown field(s) reason"),
])
def test_mqtt_refusals_write_nothing(box, args, words):
    save_credentials(box.secrets / "mqtt", Credentials("old", "old-password"))
    before = box.files()
    with pytest.raises(InvalidConfig) as caught:
        box.handlers["mqtt.set"](args)
    assert words in str(caught.value)
    assert box.files() == before


def test_a_damaged_settings_file_is_replaced(box):
    box.config.mkdir()
    (box.config / "mqtt.json").write_text("{not json")
    answer = box.handlers["mqtt.set"]({"changes": {"host": "mqtt.lan"}})
    assert answer["previous"]["host"] == "" and load_settings(box.config / "mqtt.json").host \
        == "mqtt.lan"


def test_the_restream_switch_starts_and_stops_the_unit(box):
    assert box.handlers["restream.set"]({"enabled": True}) == {
        "enabled": True, "previous": False, "problems": []}
    assert load_enabled(box.config / "restream.json") is True
    box.handlers["restream.set"]({"enabled": False})
    assert load_enabled(box.config / "restream.json") is False
    assert box.commands == [["systemctl", "start", "--no-block", "vigil-restream.service"],
                            ["systemctl", "stop", "--no-block", "vigil-restream.service"]]


def test_a_refused_systemctl_is_reported_with_the_switch_saved(box):
    box.exit_code = 1
    answer = box.handlers["restream.set"]({"enabled": True})
    assert answer["problems"] == ["saved, but systemd did not take the start of the restream: "
                                  "Failed to start: unit masked"]
    assert load_enabled(box.config / "restream.json") is True


@pytest.mark.parametrize("args", [{"enabled": "on"}, {}, {"enabled": True, "port": 1}])
def test_a_bad_switch_changes_nothing(box, args):
    with pytest.raises(InvalidConfig):
        box.handlers["restream.set"](args)
    assert box.files() == {} and box.commands == []


def unit(active: str, sub: str, result: str = "success", condition: str = "yes",
         job: str = "") -> str:
    """`systemctl show` output for the restream unit (systemd's own property order)."""
    return (f"Result={result}\nJob={job}\nActiveState={active}\nSubState={sub}\n"
            f"ConditionResult={condition}\n")


@pytest.mark.parametrize("enabled, show, service, problem", [
    (True, unit("active", "running"), "running", None),
    (True, unit("inactive", "dead", job="812"), "starting", None),     # start queued
    (False, unit("active", "running", job="813"), "stopping", None),   # stop queued
    (True, unit("activating", "start-pre"), "starting", None),
    (True, unit("activating", "auto-restart", "exit-code"), "restarting", "keeps stopping"),
    (True, unit("failed", "failed", "exit-code"), "failed", "stopped with an error (exit-code)"),
    (True, unit("inactive", "dead", "exec-condition"), "stopped", "start check"),
    (True, unit("inactive", "dead", condition="no"), "stopped", "start check"),
    (True, unit("inactive", "dead"), "stopped", "is not running"),
    (False, unit("inactive", "dead"), "stopped", None),
    (False, unit("failed", "failed", "exit-code"), "failed", None),   # off: nothing to fix
    (True, "", None, None),                                           # no systemd (dev mode)
    (True, "Failed to connect to bus", None, None),
])
def test_the_restream_status_in_the_pages_words(box, enabled, show, service, problem):
    box.handlers["restream.set"]({"enabled": enabled})
    box.show = show
    answer = box.handlers["restream.status"]({})
    assert answer["service"] == service
    if problem is None:
        assert answer["problem"] is None
    else:
        assert problem in answer["problem"] and "switched on" in answer["problem"]


def test_the_restream_status_when_systemctl_fails_or_the_switch_is_damaged(box):
    box.exit_code = 1
    box.show = unit("active", "running")
    assert box.handlers["restream.status"]({}) == {"service": None, "problem": None}
    box.exit_code = 0
    box.config.mkdir(parents=True)
    (box.config / "restream.json").write_text("{damaged")
    assert box.handlers["restream.status"]({}) == {"service": "running", "problem": None}
    with pytest.raises(InvalidConfig, match="unknown field"):
        box.handlers["restream.status"]({"enabled": True})
