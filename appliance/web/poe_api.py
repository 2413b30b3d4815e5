"""PoE ports through the web API: their state (read from vigil-hwd's snapshot) with the
camera on each, and the two things a person may do to a port.

vigil-hwd owns the PoE controllers; this blueprint never touches them. It reads the
snapshot hwd writes after every poll (`<hwd_state>/poe.json`, appliance/poe/runtime.py)
and sends commands over hwd's control socket (appliance/poe/control.py):

    GET  /api/v1/poe                           operator, admin
    POST /api/v1/poe/ports/<port>/power-cycle  operator, admin   {"reason"?: text}
    POST /api/v1/poe/ports/<port>/enabled      admin             {"enabled": true|false}

`<port>` is the port number or its label ("Port 3", URL-encoded). Viewers get 403: port
states name no camera they were granted, and there is nothing for them to do here. A
power cycle counts against the port's hourly limit (`poe.max_cycles_per_hour`) like an
automatic one; a refusal is 409 with hwd's reason. Every action, and every refusal,
is audited with the user, the port and the camera on it.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, g, jsonify, request

from appliance.core.errors import DataLoss, InvalidConfig, Unavailable, VigilError
from appliance.web.security import accounts, client_address, require_role
from appliance.web.services import hwd, paths, required

poe = Blueprint("poe", __name__)

STALE_S = 30.0          # hwd writes every poll (1 s by default, at most 10 s)
MAX_REASON = 120


def _port_arg(port: str) -> int | str:
    """The port from the URL: a number, or a label as the board profile spells it."""
    if port.isascii() and port.isdigit() and len(port) <= 3:
        return int(port)
    if not 0 < len(port) <= 64 or not port.isprintable():
        raise InvalidConfig("not a PoE port: give its number or its label")
    return port


def _body(allowed: frozenset[str]) -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InvalidConfig("the body must be a JSON object")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise InvalidConfig(f"unknown field(s) {', '.join(repr(k[:40]) for k in unknown[:5])}")
    return data


def _cameras_by_port() -> dict[str, dict[str, str]]:
    """Port label -> the camera linked to it in the registry (when there is a registry)."""
    p = paths()
    if p.registry is None or p.secrets is None:
        return {}
    from appliance.cameras.manage import open_camera_registry

    try:
        cams = open_camera_registry(p.registry, p.secrets, p.config).cameras()
    except (DataLoss, InvalidConfig):
        return {}
    return {c.poe_port: {"id": c.id, "label": c.label, "enabled": c.enabled}
            for c in cams if c.poe_port}


def _snapshot() -> dict[str, Any]:
    from appliance.poe.runtime import SNAPSHOT_NAME, read_snapshot

    state = required("hwd_state")
    snap = read_snapshot(state, max_age=STALE_S)
    if snap is None or not isinstance(snap.get("ports"), list):
        if not (state / SNAPSHOT_NAME).exists():
            raise Unavailable("no PoE status yet: vigil-hwd has not written one (it is not "
                              "running, or this board has no PoE switch)")
        raise Unavailable(f"the PoE status is older than {STALE_S:.0f} s: vigil-hwd is not "
                          "running or not answering")
    return snap


def _audit(what: str, detail: str) -> None:
    accounts().audit(g.session.user.username, what, detail, client_address())


def _port_and_camera(port: int | str) -> str:
    """"Port 3 (camera door)" for the audit log, from the snapshot when it is readable."""
    try:
        ports = _snapshot()["ports"]
    except VigilError:
        return f"port {port}"
    for entry in ports:
        if isinstance(entry, dict) and (entry.get("port") == port or
                                        str(entry.get("label", "")).lower() == str(port).lower()):
            label = str(entry.get("label"))
            camera = _cameras_by_port().get(label)
            return label + (f" (camera {camera['id']})" if camera else "")
    return f"port {port}"


@poe.get("/poe")
@require_role("operator")
def status():
    snap = _snapshot()
    cameras = _cameras_by_port()
    for entry in snap["ports"]:
        if isinstance(entry, dict):
            entry["camera"] = cameras.get(str(entry.get("label")))
    try:
        snap["age_s"] = round(max(0.0, time.time() - float(snap.get("time", 0))), 1)
    except (TypeError, ValueError):
        snap["age_s"] = None
    return jsonify(snap)


@poe.post("/poe/ports/<port>/power-cycle")
@require_role("operator")
def power_cycle(port: str):
    """Off for `poe.cycle_off_seconds`, then on again: the camera reboots."""
    target = _port_arg(port)
    data = _body(frozenset({"reason"}))
    reason = data.get("reason", "")
    if not isinstance(reason, str) or len(reason) > MAX_REASON or not reason.isprintable():
        raise InvalidConfig(f"reason: one line of text, at most {MAX_REASON} characters")
    why = f"{g.session.user.username} in the web UI" + (f": {reason.strip()}" if reason.strip()
                                                       else "")
    where = _port_and_camera(target)
    try:
        result = hwd().call("poe.power_cycle", port=target, reason=why)
    except VigilError as exc:
        _audit("poe_power_cycle_refused", f"{where}: {exc}")
        raise
    _audit("poe_power_cycle", where)
    return jsonify(result), 202


@poe.post("/poe/ports/<port>/enabled")
@require_role("admin")
def set_enabled(port: str):
    """Switch a port's power on or off; vigil-hwd keeps the choice across restarts
    (poe-ports.json, appliance/poe/port_choices.py)."""
    target = _port_arg(port)
    data = _body(frozenset({"enabled"}))
    if not isinstance(data.get("enabled"), bool):
        raise InvalidConfig("enabled: true or false")
    where = _port_and_camera(target)
    try:
        result = hwd().call("poe.set_enabled", port=target, enabled=data["enabled"])
    except VigilError as exc:
        _audit("poe_port_change_refused", f"{where}: {exc}")
        raise
    _audit("poe_port_enabled" if data["enabled"] else "poe_port_disabled", where)
    return jsonify(port=result, lasts="until it is changed again: kept across restarts")
