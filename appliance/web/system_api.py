"""The System area through the web API: host name, time, network, configuration backup
and restore, factory reset (admin only; the page is templates/system.html).

The settings belong to vigil-hwd (root): every change goes over its control socket
(`system.*` commands, appliance/system/control.py), and when it does not answer the
route says so with 503. Each change is written to the audit log with the old and the
new value. The accounts are this process's own, so a backup carries them in and a
restore or a factory reset replaces or empties them here, after vigil-hwd has done its
part (when vigil-hwd refuses, the accounts stay as they are).

A restore's file is checked here completely before vigil-hwd is asked (and vigil-hwd
checks it again): a bad file is refused with the reason and changes nothing.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from appliance import __version__
from appliance.core.errors import InvalidConfig
from appliance.system.backup import read_bundle
from appliance.system.timezones import available_zones
from appliance.web.security import COOKIE, accounts, client_address, require_role
from appliance.web.services import hwd

system = Blueprint("system", __name__)

SLOW_COMMAND_TIMEOUT = 120.0  # a factory reset stops and starts the recorder


def _body(allowed: tuple[str, ...]) -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InvalidConfig("the body must be a JSON object")
    unknown = sorted(str(k)[:40] for k in set(data) - set(allowed))
    if unknown:
        raise InvalidConfig(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(allowed)}")
    return data


def _audit(what: str, detail: str) -> None:
    accounts().audit(g.session.user.username, what, detail, client_address())


def _change(changes: dict[str, Any], confirm_other_subnet: bool = False,
            set_time: Any = None) -> dict[str, Any]:
    return hwd().call("system.set", changes=changes, client=client_address(),
                      confirm_other_subnet=confirm_other_subnet, set_time=set_time)


@system.get("/system")
@require_role("admin")
def show():
    """Settings, the box's time (UTC seconds and local ISO), uptime, software version."""
    return jsonify({**hwd().call("system.get"), "version": __version__})


@system.get("/system/timezones")
@require_role("admin")
def timezones():
    """The zones of the box's own zoneinfo database (read here: no daemon needed)."""
    return jsonify(timezones=sorted(available_zones()))


@system.put("/system/hostname")
@require_role("admin")
def put_hostname():
    data = _body(("hostname",))
    answer = _change({"hostname": data.get("hostname")})
    old, new = answer["previous"]["hostname"], answer["settings"]["hostname"]
    _audit("system_hostname", f"{old} -> {new}")
    return jsonify(answer)


def _time_detail(old: dict, new: dict) -> str:
    parts = []
    if old["timezone"] != new["timezone"]:
        parts.append(f"time zone {old['timezone']} -> {new['timezone']}")
    if old["ntp"] != new["ntp"]:
        parts.append(f"NTP {'on' if old['ntp'] else 'off'} -> {'on' if new['ntp'] else 'off'}")
    if old["ntp_servers"] != new["ntp_servers"]:
        parts.append(f"NTP servers {' '.join(old['ntp_servers']) or '(default)'} -> "
                     f"{' '.join(new['ntp_servers']) or '(default)'}")
    return "; ".join(parts) or "unchanged"


@system.put("/system/time")
@require_role("admin")
def put_time():
    """{"timezone", "ntp", "ntp_servers"} (any of them) and, with NTP off, "set_time":
    "2026-11-23T14:05" (the box's local time, or ISO 8601 with an offset)."""
    data = _body(("timezone", "ntp", "ntp_servers", "set_time"))
    changes = {k: v for k, v in data.items() if k != "set_time"}
    set_time = data.get("set_time")
    if set_time is not None and (not isinstance(set_time, str) or not set_time.strip()):
        raise InvalidConfig("set_time: the time as text, e.g. \"2026-11-23T14:05\" (leave "
                            "it out to keep the clock as it is)")
    set_time = set_time or None
    answer = _change({"time": changes}, set_time=set_time)
    detail = _time_detail(answer["previous"]["time"], answer["settings"]["time"])
    if detail != "unchanged" or not set_time:
        _audit("system_time", detail)
    if answer.get("clock"):
        _audit("system_clock_set", f"clock set by hand to {answer['clock']['set_to']}")
    return jsonify(answer)


@system.put("/system/network")
@require_role("admin")
def put_network():
    """{"mode": "dhcp"} or {"mode": "static", "address": "192.168.1.20/24", "gateway",
    "dns": [...]}; "confirm_other_subnet": true when a router connects the owner's
    network to the new one."""
    data = _body(("mode", "address", "gateway", "dns", "confirm_other_subnet"))
    confirm = data.pop("confirm_other_subnet", False)
    if not isinstance(confirm, bool):
        raise InvalidConfig("`confirm_other_subnet` must be true or false")
    answer = _change({"network": data}, confirm)
    old, new = answer["previous"]["network"], answer["settings"]["network"]
    _audit("system_network", f"{_network_text(old)} -> {_network_text(new)}")
    return jsonify(answer)


def _network_text(net: dict) -> str:
    if net["mode"] == "dhcp":
        return "DHCP"
    text = f"static {net['address']}"
    if net["gateway"]:
        text += f" gateway {net['gateway']}"
    if net["dns"]:
        text += " DNS " + " ".join(net["dns"])
    return text


# --- backup and restore ----------------------------------------------------------------------

def _passphrase(data: dict) -> str | None:
    value = data.get("passphrase")
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise InvalidConfig("the passphrase must be text")
    return value


@system.post("/system/backup")
@require_role("admin")
def backup():
    """The configuration and the accounts as a file (a POST: it may carry a passphrase,
    which also puts the camera passwords in, encrypted)."""
    data = _body(("passphrase",))
    passphrase = _passphrase(data)
    answer = hwd().call("system.backup", users=accounts().export_users(), passphrase=passphrase)
    raw = base64.b64decode(answer["file"])
    _audit("config_backup", f"{answer['name']} ({len(raw)} bytes, "
           f"{'with camera passwords, encrypted' if answer['sealed'] else 'no camera passwords'})")
    return Response(raw, mimetype="application/gzip", headers={
        "Content-Disposition": f'attachment; filename="{answer["name"]}"',
        "Cache-Control": "no-store"})


@system.post("/system/restore")
@require_role("admin")
def restore():
    """{"file": "<the backup, base64>", "passphrase": "..."}: checked completely, then the
    configuration replaced (vigil-hwd) and the accounts; everybody logs in again."""
    data = _body(("file", "passphrase"))
    if not isinstance(data.get("file"), str) or not data["file"]:
        raise InvalidConfig("choose the backup file to restore")
    try:
        raw = base64.b64decode(data["file"], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidConfig("the backup file did not arrive intact (not valid base64)") from None
    passphrase = _passphrase(data)
    try:
        bundle = read_bundle(raw, passphrase)
        users = accounts().check_import(bundle.users) if bundle.users is not None else None
    except InvalidConfig as exc:
        _audit("config_restore_refused", str(exc))
        raise
    answer = hwd(SLOW_COMMAND_TIMEOUT).call("system.restore", file=data["file"],
                                            passphrase=passphrase)
    who = g.session.user.username
    if users is not None:
        accounts().replace_users(users)
    summary = answer["summary"]
    accounts().audit(who, "config_restored",
                     f"backup of {summary.get('hostname')} made {summary.get('created')}: "
                     f"{', '.join(summary['files']) or 'no files'}; "
                     f"{len(users) if users is not None else 'no'} accounts; camera passwords "
                     f"{answer['camera_credentials']}", client_address())
    answer["accounts"] = ("replaced: log in again with an account of the backup"
                          if users is not None else "kept (the backup holds none)")
    resp = jsonify(answer)
    if users is not None:
        resp.delete_cookie(COOKIE, path="/")
    return resp


# --- factory reset and restart -----------------------------------------------------------------

@system.post("/system/factory-reset")
@require_role("admin")
def factory_reset():
    """{"confirm": "<the box's name>" or "ERASE", "password": "<yours>",
    "erase_recordings": false}: back to first-boot setup."""
    data = _body(("confirm", "password", "erase_recordings"))
    erase = data.get("erase_recordings", False)
    if not isinstance(erase, bool):
        raise InvalidConfig("`erase_recordings` must be true or false")
    if not isinstance(data.get("confirm"), str) or not data["confirm"]:
        raise InvalidConfig("type the box's name or ERASE to confirm")
    if not isinstance(data.get("password"), str) or not data["password"]:
        raise InvalidConfig("enter your password to confirm")
    who = g.session.user.username
    accounts().confirm_password(who, data["password"], client_address())
    try:
        answer = hwd(SLOW_COMMAND_TIMEOUT).call("system.factory_reset", confirm=data["confirm"],
                                                erase_recordings=erase)
    except InvalidConfig as exc:
        _audit("factory_reset_refused", str(exc))
        raise
    accounts().factory_reset()
    accounts().audit(who, "factory_reset", f"erased: {', '.join(answer['erased'])}, accounts; "
                     f"kept: {', '.join(answer['kept'])}", client_address())
    answer["erased"] = answer["erased"] + ["accounts, sessions and the audit log"]
    answer["next"] = (f"The box is back at first-boot setup under the name "
                      f"{answer['hostname']} ({answer['network']}): open it again and create "
                      "the admin account.")
    resp = jsonify(answer)
    resp.delete_cookie(COOKIE, path="/")
    return resp


@system.post("/system/reboot")
@require_role("admin")
def reboot():
    _body(())
    answer = hwd().call("system.reboot")
    _audit("system_reboot", "restart requested")
    return jsonify(answer)
