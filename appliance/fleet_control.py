"""vigil-hwd's commands behind the Integrations page: the MQTT broker's settings and
login, and the switch of the RTSP restream.

vigil-web runs unprivileged. It reads these settings itself (mqtt.json and restream.json
beside the appliance TOML, mode 0644; the broker's login belongs to the vigil user) but
does not write them: the login's directory (/persist/secrets/mqtt) is outside what its
unit may write, and the restream's switch starts or stops a unit. vigil-hwd (root) does
both, checking every argument again (the socket's other clients are not trusted more
than the web):

    mqtt.set      {"changes": {<any field of appliance.mqtt.settings.MqttSettings>},
                   "login": {"action": "unchanged"} | {"action": "clear"} |
                            {"action": "set", "username": "...", "password": "..."},
                   "ca_certificate": "<PEM>" (optional: the broker's CA, kept beside
                                     mqtt.json and named by ca_file; broker_ca.py)}
                  -> {"settings", "previous", "username", "login"}
    restream.set  {"enabled": true|false} -> {"enabled", "previous", "problems"}
    restream.status {} -> {"service": "running"|"starting"|"restarting"|"stopping"|
                                      "stopped"|"failed"|null (no systemd),
                           "problem": str|null}

vigil-mqtt follows its settings file and its login directory by itself (one `stat`
each a second): nothing restarts. The login is written before the settings, so a daemon
that sees new settings sees the login that goes with them. The restream is started or
stopped through systemd (--no-block: the relay's first start builds GStreamer's plugin
registry, longer than the control socket waits); its unit asks `nvr restream enabled`
before every start, so the switch holds across reboots. Because the start is not waited
for, restream.status asks systemd how the unit is doing, and says so when a restream
switched on is not running (the page shows it and asks again while it starts).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

from appliance.cameras.manage import check_credentials
from appliance.config.owner_file import write_owner_file
from appliance.core.commands import CommandResult
from appliance.core.errors import DataLoss, InvalidConfig
from appliance.mqtt import broker_ca
from appliance.mqtt import settings as mqtt_settings
from appliance.mqtt.cli import hand_to_directory_owner
from appliance.restream import settings as restream_settings

log = logging.getLogger(__name__)

RESTREAM_UNIT = "vigil-restream.service"
LOGIN_ACTIONS = ("unchanged", "set", "clear")

Run = Callable[[Sequence[str]], CommandResult]


def _only(args: dict[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(str(k)[:40] for k in set(args) - allowed)
    if unknown:
        raise InvalidConfig(f"{what}: unknown field(s) {', '.join(unknown)}")


def host_run(argv: Sequence[str]) -> CommandResult:
    """systemctl on the box, with the system area's time limit."""
    from appliance.system.backends import HostSystem

    return HostSystem().run(argv)


def check_login(login: Any):
    """(action, credentials): what to do with the broker's login."""
    if not isinstance(login, dict):
        raise InvalidConfig("login: an object with an action (unchanged, set or clear)")
    action = login.get("action", "unchanged")
    if action not in LOGIN_ACTIONS:
        raise InvalidConfig(f"login: the action is one of {', '.join(LOGIN_ACTIONS)}")
    if action != "set":
        _only(login, {"action"}, f"login {action}")
        return action, None
    _only(login, {"action", "username", "password"}, "login")
    credentials = check_credentials(login.get("username"), login.get("password"))
    if credentials is None:
        raise InvalidConfig("login: give the user name and the password to set")
    return action, credentials


class MqttSwitch:
    """mqtt.set: the owner's broker settings and its login."""

    def __init__(self, config_dir: Path, secrets: Path) -> None:
        self.config_dir = Path(config_dir)
        self.settings_path = self.config_dir / mqtt_settings.SETTINGS_NAME
        self.secrets = Path(secrets)
        self._lock = threading.Lock()

    def current(self) -> mqtt_settings.MqttSettings:
        """The stored settings; the defaults when the file is damaged (saving replaces it)."""
        try:
            return mqtt_settings.load_settings(self.settings_path)
        except DataLoss as exc:
            log.warning("mqtt settings: %s", exc)
            return mqtt_settings.MqttSettings()

    def set(self, args: dict[str, Any]) -> dict[str, Any]:
        """Everything is checked before anything is written. `ca_certificate` (PEM text,
        broker_ca.py) is kept beside the settings and becomes `ca_file`."""
        _only(args, {"changes", "login", "ca_certificate"}, "mqtt.set")
        changes = args.get("changes", {})
        if not isinstance(changes, dict):
            raise InvalidConfig("changes: an object of MQTT settings")
        action, credentials = check_login(args.get("login", {"action": "unchanged"}))
        ca = None
        if "ca_certificate" in args:
            if "ca_file" in changes:
                raise InvalidConfig("give ca_certificate (the PEM text) or ca_file (a path on "
                                    "the box), not both")
            ca = broker_ca.check_ca_pem(args["ca_certificate"])
            changes = {**changes, "ca_file": str(self.config_dir / ca.file_name)}
        with self._lock:
            old = self.current()
            new = mqtt_settings.parse_settings({**asdict(old), **changes})
            if ca is not None:
                broker_ca.save_ca(self.config_dir, ca)
            self._write_login(action, credentials)
            write_owner_file(self.settings_path,
                             {"format": mqtt_settings.FORMAT, **asdict(new)})
            broker_ca.remove_unused(self.config_dir, keep=new.ca_file)
            username = self._stored_username()
        before, after = asdict(old), asdict(new)
        log.info("mqtt settings saved: %s; login %s", ", ".join(
            k for k in after if after[k] != before[k]) or "nothing changed", action)
        return {"settings": after, "previous": before,
                "username": username, "login": action}

    def _stored_username(self) -> str | None:
        """The login's user name now; None without one or when its file is damaged (the
        web page says so; setting a login again replaces the file)."""
        try:
            login = mqtt_settings.load_credentials(self.secrets)
        except DataLoss:
            return None
        return login.username if login else None

    def _write_login(self, action: str, credentials) -> None:
        if action == "set":
            mqtt_settings.save_credentials(self.secrets, credentials)
            hand_to_directory_owner(self.secrets)   # vigil-mqtt reads it as user vigil
        elif action == "clear":
            mqtt_settings.delete_credentials(self.secrets)


UNIT_PROPERTIES = ("ActiveState", "SubState", "Result", "ConditionResult", "Job")


def unit_properties(run: Run, unit: str) -> dict[str, str] | None:
    """systemd's ActiveState, SubState, Result, ConditionResult and Job (the id of a
    queued start or stop, empty or 0 without one) of `unit`; None when systemd cannot say
    (no systemd, as in development mode, or systemctl failing)."""
    result = run(["systemctl", "show", f"--property={','.join(UNIT_PROPERTIES)}", unit])
    if result.returncode != 0:
        return None
    found = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    return found if found.get("ActiveState") else None


def restream_service(enabled: bool, unit: dict[str, str] | None) -> tuple[str | None, str | None]:
    """(service, problem): the relay's state in the page's words, and what is wrong when
    it does not match the owner's switch."""
    if unit is None:
        return None, None
    active = unit["ActiveState"]
    if unit.get("Job", "0") not in ("", "0"):
        service = "starting" if enabled else "stopping"     # the switch's job is queued
    elif active == "active":
        service = "running"
    elif unit.get("SubState") == "auto-restart":
        service = "restarting"      # it stopped with an error; systemd starts it again
    elif active in ("activating", "reloading"):
        service = "starting"
    elif active == "deactivating":
        service = "stopping"
    elif active == "failed":
        service = "failed"
    else:
        service = "stopped"
    if not enabled:
        return service, None
    if service == "restarting":
        return service, ("switched on, but the restream keeps stopping with an error and "
                         "systemd starts it again; the box's journal has the reason "
                         "(journalctl -u vigil-restream)")
    if service == "failed":
        return service, (f"switched on, but the restream stopped with an error ("
                         f"{unit.get('Result') or 'failed'}); the box's journal has the reason "
                         "(journalctl -u vigil-restream)")
    skipped = unit.get("Result") == "exec-condition" or unit.get("ConditionResult") == "no"
    if service == "stopped" and skipped:
        return service, ("switched on, but the restream's start check (ExecCondition=nvr "
                         "restream enabled) did not pass; the box's journal has the reason "
                         "(journalctl -u vigil-restream)")
    if service == "stopped":
        return service, "switched on, but the restream is not running: switch it off and on again"
    return service, None


class RestreamSwitch:
    """restream.set: the owner's switch, and the unit started or stopped to match it."""

    def __init__(self, config_dir: Path, run: Run) -> None:
        self.settings_path = Path(config_dir) / restream_settings.SETTINGS_NAME
        self.run = run
        self._lock = threading.Lock()

    def set(self, args: dict[str, Any]) -> dict[str, Any]:
        _only(args, {"enabled"}, "restream.set")
        enabled = restream_settings.check_enabled(args.get("enabled"))
        with self._lock:
            try:
                previous = restream_settings.load_enabled(self.settings_path)
            except DataLoss as exc:
                log.warning("restream switch: %s", exc)
                previous = False
            restream_settings.save_enabled(self.settings_path, enabled)
            result = self.run(["systemctl", "start" if enabled else "stop", "--no-block",
                               RESTREAM_UNIT])
        problems = [] if result.returncode == 0 else [
            f"saved, but systemd did not take the {'start' if enabled else 'stop'} of the "
            f"restream: {result.tail() or result.returncode}"]
        log.info("restream switched %s (was %s)", "on" if enabled else "off",
                 "on" if previous else "off")
        return {"enabled": enabled, "previous": previous, "problems": problems}

    def status(self, args: dict[str, Any]) -> dict[str, Any]:
        _only(args, set(), "restream.status")
        try:
            enabled = restream_settings.load_enabled(self.settings_path)
        except DataLoss:
            enabled = False     # the web reads the file itself and names the damage
        service, problem = restream_service(enabled, unit_properties(self.run, RESTREAM_UNIT))
        return {"service": service, "problem": problem}


def control_handlers(config_dir: Path, secrets_dir: Path,
                     run: Run = host_run) -> dict[str, Callable]:
    """mqtt.set and restream.set for a ControlServer. `config_dir`: where the appliance's
    settings files are (/persist/config); `secrets_dir`: the parent of the logins'
    directories (/persist/secrets, the broker's login in mqtt/ below it)."""
    mqtt = MqttSwitch(config_dir, Path(secrets_dir) / "mqtt")
    restream = RestreamSwitch(config_dir, run)
    return {"mqtt.set": mqtt.set, "restream.set": restream.set,
            "restream.status": restream.status}
