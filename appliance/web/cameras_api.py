"""Cameras through the web API: the list with each camera's recording state, and adding,
changing, removing, discovering and re-keying cameras (admin).

The same steps as `nvr cameras` (appliance/cameras/manage.py): the same checks of names
and addresses, the same registry operations under its file lock (duplicates, bandwidth
budget, licensed channels). Differences, both stricter: an RTSP URL given here always
passes the address policy (no loopback unless `[cameras] allowed_networks` names a
loopback network, no link-local or metadata addresses, not this box's own services,
on any of its addresses), and a body is refused whole when any field is unknown or of
the wrong type, before anything is contacted or written.

Credentials go in (add) and never come out: the answers carry stream addresses without
user names or passwords, and whether a login is stored. The recording state comes from
the recorder's index (it writes each camera's state every few seconds). Every change,
and every refused add, is audited with the user and the camera.
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import replace
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request

from appliance.cameras.manage import (add_camera, address_policy, check_bitrate,
                                      check_camera_id, check_credentials, check_label,
                                      onvif_camera, open_camera_registry, rtsp_camera, set_label)
from appliance.cameras.registry import Camera, CameraRegistry, StreamInfo, normal_mac
from appliance.config.recorder import CAMERA_NAME
from appliance.core.errors import DataLoss, FailedPrecondition, InvalidConfig, VigilError
from appliance.web.security import accounts, client_address, require_role
from appliance.web.services import paths, required

cameras = Blueprint("cameras", __name__)

ONBOARD_DEADLINE_S = 20.0      # an ONVIF camera must answer everything within this
DISCOVERY_MAX_S = 10.0
MAX_UNICAST = 16
STALE_STATUS_S = 30.0          # the recorder writes every 2 s; older means it is not running
HEALTHY = frozenset({"starting", "connecting", "waiting_keyframe", "recording", "stopped"})
USERINFO = re.compile(r"(?i)\b(rtsps?|https?)://[^/@\s]*@")
ANY_URL = re.compile(r"(?i)\b(rtsps?|https?)://\S+")
ADD_FIELDS = frozenset({"name", "label", "xaddr", "rtsp", "sub", "bitrate_kbps", "username",
                        "password", "rotate_password", "endpoint", "enabled"})
PATCH_FIELDS = frozenset({"label", "enabled", "poe_port"})
DISCOVER_FIELDS = frozenset({"timeout", "addresses", "port"})
PORT_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,31}$")


# --- plumbing -----------------------------------------------------------------------------

def _registry() -> CameraRegistry:
    licence = current_app.config.get("VIGIL_LICENCE")
    limit = (lambda: licence().channel_limit()) if licence is not None else None
    return open_camera_registry(required("registry"), required("secrets"), paths().config,
                                channel_limit=limit)


def _policy(reg: CameraRegistry):
    """The address policy: the configured camera networks; this box's own addresses and
    services (SSH, web, and the port this request came in on) are never a camera."""
    own = set()
    for text in (request.environ.get("SERVER_PORT", ""), request.host.rpartition(":")[2]):
        if text.isdigit() and 0 < int(text) < 65536:
            own.add(int(text))
    return address_policy(reg.settings, own_ports=own, this_host=True)


def _body(allowed: frozenset[str]) -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InvalidConfig("the body must be a JSON object")
    unknown = sorted(set(data) - allowed)
    if unknown:
        shown = ", ".join(repr(k[:40]) for k in unknown[:5])
        raise InvalidConfig(f"unknown field(s) {shown}; this request takes "
                            f"{', '.join(sorted(allowed))}")
    return data


def _flag(data: dict[str, Any], name: str, default: bool) -> bool:
    value = data.get(name, default)
    if not isinstance(value, bool):
        raise InvalidConfig(f"{name}: true or false")
    return value


def _camera_arg(name: str) -> str:
    if not CAMERA_NAME.match(name):
        raise InvalidConfig("not a camera name")
    return name


def _find(reg: CameraRegistry, name: str) -> Camera | None:
    return next((c for c in reg.cameras() if c.id == name), None)


def _no_camera(name: str):
    return jsonify(error=f"no camera {name}"), 404


def _has_login(reg: CameraRegistry, name: str) -> bool | None:
    """Whether a login is stored for the camera (None: its file is unreadable)."""
    try:
        return reg.credentials.get(name) is not None
    except DataLoss:
        return None


def _who() -> str:
    return g.session.user.username


def _audit(what: str, detail: str) -> None:
    accounts().audit(_who(), what, detail, client_address())


def scrub(text: str) -> str:
    """A recorder message without the user name (or password) of any URL in it."""
    return USERINFO.sub(lambda m: m.group(1) + "://", text or "")


# --- the list -------------------------------------------------------------------------------

def _recorder_statuses() -> tuple[dict[str, dict], str]:
    """The recorder's per-camera status rows, or why there are none."""
    from appliance.recorder.index import RecordingIndex

    try:
        index = RecordingIndex(current_app.config["VIGIL_DATA_DIR"], readonly=True)
    except DataLoss:
        return {}, "the recorder has not written its index yet (no data disk, or not started)"
    except (sqlite3.Error, OSError) as exc:
        return {}, f"the recorder's index cannot be read ({exc})"
    try:
        return index.statuses(), ""
    except (sqlite3.Error, ValueError) as exc:
        return {}, f"the recorder's index cannot be read ({exc})"
    finally:
        index.close()


def _recording(cam: Camera, status: dict | None, now: float) -> dict[str, Any]:
    if not cam.enabled:
        return {"state": "disabled", "detail": "disabled: not recorded", "stale": False,
                "last_error": "", "last_gap": None, "heartbeat_age_s": None}
    if status is None:
        return {"state": "waiting", "detail": "the recorder has not started this camera yet "
                "(it reads the camera list every 5 s)", "stale": False, "last_error": "",
                "last_gap": None, "heartbeat_age_s": None}
    state = str(status.get("state", "unknown"))
    detail = scrub(str(status.get("detail", "")))
    age = max(0.0, now - status.get("heartbeat_us", 0) / 1e6)
    gap = status.get("last_gap") if isinstance(status.get("last_gap"), dict) else None
    if gap:
        gap = {"cause": str(gap.get("cause", "")), "detail": scrub(str(gap.get("detail", ""))),
               "start_us": gap.get("start_us"), "end_us": gap.get("end_us")}
    return {"state": state, "detail": detail, "stale": age > STALE_STATUS_S,
            "heartbeat_age_s": round(age, 1),
            "last_error": detail if state not in HEALTHY else "",
            "last_gap": gap or None,
            "bitrate_bps": status.get("bitrate_bps")}


def _stream(info: StreamInfo | None, full: bool) -> dict[str, Any] | None:
    if info is None:
        return None
    out = {"codec": info.codec or None, "width": info.width or None,
           "height": info.height or None, "fps": info.fps or None,
           "resolution": f"{info.width}x{info.height}" if info.width and info.height else None,
           "bitrate_kbps": info.bitrate_kbps or None}
    if full:
        out["uri"] = scrub(info.uri)   # stored without credentials; scrubbed all the same
    return out


def camera_json(cam: Camera, status: dict | None, *, full: bool = True,
                has_login: bool | None = False, now: float | None = None) -> dict[str, Any]:
    """What the API shows of a camera; `full` for operators and admins (addresses)."""
    out = {"id": cam.id, "name": cam.id, "label": cam.label, "maker": cam.manufacturer,
           "model": cam.model, "firmware": cam.firmware, "enabled": cam.enabled,
           "onvif": bool(cam.xaddr), "poe_port": cam.poe_port or None, "added": cam.added,
           "main": _stream(cam.main, full), "sub": _stream(cam.sub, full),
           "recording": _recording(cam, status, time.time() if now is None else now)}
    if full:
        out.update(address=cam.host, xaddr=scrub(cam.xaddr) or None, serial=cam.serial,
                   mac=cam.mac, has_login=has_login)
    else:   # a viewer learns no addresses, also not from the recorder's messages
        rec = out["recording"]
        for key in ("detail", "last_error"):
            rec[key] = ANY_URL.sub("(the camera)", rec[key])
        if rec["last_gap"]:
            rec["last_gap"]["detail"] = ANY_URL.sub("(the camera)", rec["last_gap"]["detail"])
    return out


@cameras.get("/cameras")
def list_cameras():
    """Every role; a viewer sees only the cameras granted to them, without addresses."""
    user = g.session.user
    reg = _registry()
    cams = reg.cameras()
    statuses, problem = _recorder_statuses()
    full = user.role != "viewer"
    now = time.time()
    shown = [camera_json(c, statuses.get(c.id), full=full, now=now,
                         has_login=_has_login(reg, c.id) if full else None)
             for c in cams if user.can_view(c.id)]
    body: dict[str, Any] = {"cameras": shown, "recorder": {"ok": not problem,
                                                          "problem": problem}}
    if full:
        licence = current_app.config.get("VIGIL_LICENCE")
        body["licence"] = {"used": sum(1 for c in cams if c.enabled),
                           "allowed": licence().channel_limit() if licence else None}
        body["bandwidth"] = {"used_kbps": reg.bandwidth_kbps(cams),
                             "budget_kbps": int(reg.settings.incoming_budget_mbps * 1000)}
    return jsonify(body)


# --- adding -------------------------------------------------------------------------------------

@cameras.post("/cameras")
@require_role("admin")
def add():
    """Body: {"name", "label"?, "xaddr" (ONVIF device address) | "rtsp" (+ "sub"?,
    "bitrate_kbps"?), "username"?, "password"?, "rotate_password"?, "endpoint"?}."""
    data = _body(ADD_FIELDS)
    camera_id = check_camera_id(data.get("name"))
    label = check_label(data["label"]) if data.get("label") not in (None, "") else camera_id
    creds = check_credentials(data.get("username"), data.get("password"))
    rotate = _flag(data, "rotate_password", False)
    enabled = _flag(data, "enabled", True)
    xaddr, rtsp = data.get("xaddr"), data.get("rtsp")
    if (xaddr is None) == (rtsp is None):
        raise InvalidConfig("give the camera's ONVIF address (`xaddr`) or its RTSP URL "
                            "(`rtsp`), one of the two")
    if xaddr is not None and ("sub" in data or "bitrate_kbps" in data):
        raise InvalidConfig("`sub` and `bitrate_kbps` are for cameras added by RTSP URL; "
                            "an ONVIF camera reports its own streams")
    if rtsp is not None and ("endpoint" in data or rotate):
        raise InvalidConfig("`endpoint` and `rotate_password` need an ONVIF camera (`xaddr`)")
    if rotate and creds is None:
        raise InvalidConfig("rotate_password: give the camera's current username and password")
    endpoint = data.get("endpoint")
    if endpoint is not None and (not isinstance(endpoint, str) or not 0 < len(endpoint) <= 256
                                 or not endpoint.isprintable()):
        raise InvalidConfig("endpoint: the endpoint reference from discovery (text)")
    sub = data.get("sub")
    bitrate = check_bitrate(data.get("bitrate_kbps", 0))
    reg = _registry()
    if _find(reg, camera_id) is not None:
        raise FailedPrecondition(f"a camera named {camera_id} already exists")
    policy = _policy(reg)
    try:
        if rtsp is not None:
            camera = rtsp_camera(camera_id, label, rtsp, sub, bitrate, policy)
        else:
            camera = onvif_camera(camera_id, label, xaddr, creds, policy, endpoint=endpoint,
                                  deadline_s=ONBOARD_DEADLINE_S)
        if not enabled:
            camera = replace(camera, enabled=False)
        added = add_camera(reg, camera, creds, rotate_with=policy if rotate else None)
    except VigilError as exc:
        _audit("camera_add_refused", f"{camera_id}: {exc}")
        raise
    how = f"ONVIF {scrub(camera.xaddr)}" if xaddr is not None else f"RTSP {camera.host}"
    _audit("camera_added", f"{camera_id} ({label}) by {how}" +
           ("; password replaced" if added.rotation else ""))
    return jsonify(camera=camera_json(added.camera, None, has_login=creds is not None),
                   password_rotated=added.rotation is not None,
                   note="the recorder starts it within about 5 s"), 201


# --- changes ------------------------------------------------------------------------------------

def _poe_labels() -> set[str] | None:
    """The board's port labels from vigil-hwd's PoE snapshot, when there is one."""
    state = paths().hwd_state
    if state is None:
        return None
    from appliance.poe.runtime import read_snapshot

    snap = read_snapshot(state)
    if not snap or not isinstance(snap.get("ports"), list):
        return None
    return {str(p.get("label")) for p in snap["ports"] if isinstance(p, dict)}


@cameras.patch("/cameras/<name>")
@require_role("admin")
def change(name: str):
    """Body: any of {"label": text, "enabled": bool, "poe_port": port label or ""}."""
    _camera_arg(name)
    data = _body(PATCH_FIELDS)
    if not data:
        raise InvalidConfig(f"nothing to change: give {', '.join(sorted(PATCH_FIELDS))}")
    label = check_label(data["label"]) if "label" in data else None
    enabled = _flag(data, "enabled", False) if "enabled" in data else None
    port = data.get("poe_port")
    if "poe_port" in data:
        if not isinstance(port, str) or (port and not PORT_LABEL.match(port)):
            raise InvalidConfig("poe_port: the port's label (e.g. \"Port 3\"), or \"\" for none")
        labels = _poe_labels()
        if port and labels is not None and port not in labels:
            raise InvalidConfig(f"poe_port: this box has no port {port!r} "
                                f"({', '.join(sorted(labels))})")
    reg = _registry()
    if _find(reg, name) is None:
        return _no_camera(name)
    changes = []
    if enabled is not None:        # first: the only change the registry may refuse
        try:
            reg.set_enabled(name, enabled)
        except VigilError as exc:
            _audit("camera_change_refused", f"{name}: {exc}")
            raise
        changes.append("enabled" if enabled else "disabled")
    if label is not None:
        set_label(reg, name, label)
        changes.append(f"label {label!r}")
    if "poe_port" in data:
        reg.set_poe_port(name, port)
        changes.append(f"PoE port {port!r}" if port else "no PoE port")
    _audit("camera_changed", f"{name}: {', '.join(changes)}")
    cam = reg.get(name)
    return jsonify(camera=camera_json(cam, None, has_login=_has_login(reg, name)))


@cameras.delete("/cameras/<name>")
@require_role("admin")
def remove(name: str):
    _camera_arg(name)
    _body(frozenset())
    reg = _registry()
    cam = _find(reg, name)
    if cam is None:
        return _no_camera(name)
    reg.remove(name)
    _audit("camera_removed", f"{name} ({cam.label}); its recordings are kept")
    return jsonify(removed=name, recordings="kept",
                   note=f"{cam.label} is no longer recorded and its login is deleted; its "
                   "recordings stay on the disk (Recordings) until retention removes them")


@cameras.post("/cameras/<name>/rotate-password")
@require_role("admin")
def rotate(name: str):
    """Give the camera's user a new generated password over ONVIF (never shown)."""
    from appliance.cameras.rotation import rotate_password

    _camera_arg(name)
    _body(frozenset())
    reg = _registry()
    if _find(reg, name) is None:
        return _no_camera(name)
    try:
        done = rotate_password(reg, name, _policy(reg))
    except VigilError as exc:
        _audit("camera_password_rotation_failed", f"{name}: {exc}")
        raise
    _audit("camera_password_rotated", f"{name}: user {done.username}")
    return jsonify(done.to_json())


# --- discovery ---------------------------------------------------------------------------------

@cameras.post("/cameras/discover")
@require_role("admin")
def discover():
    """WS-Discovery: suggestions only, nothing is fetched from them. Body (all optional):
    {"timeout": seconds (0.5-10, default the `discovery_seconds` setting), "addresses":
    [IP, ...] to probe by unicast instead of multicast, "port": their WS-Discovery port}."""
    from appliance.cameras.onvif import probe

    data = _body(DISCOVER_FIELDS)
    reg = _registry()
    timeout = data.get("timeout", reg.settings.discovery_seconds)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
            or not 0.5 <= timeout <= DISCOVERY_MAX_S:
        raise InvalidConfig(f"timeout: 0.5-{DISCOVERY_MAX_S:g} seconds")
    addresses = data.get("addresses", [])
    if not isinstance(addresses, list) or len(addresses) > MAX_UNICAST or not all(
            isinstance(a, str) and 0 < len(a) <= 64 for a in addresses):
        raise InvalidConfig(f"addresses: a list of at most {MAX_UNICAST} IP addresses")
    from appliance.cameras.onvif.policy import literal_ip

    names = [a for a in addresses if literal_ip(a) is None]  # no name lookups from here
    if names:
        raise InvalidConfig(f"addresses: {str(names[0])[:64]!r} is not an IP address")
    port = data.get("port", 3702)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise InvalidConfig("port: 1-65535")
    started = time.monotonic()
    found = probe(_policy(reg), timeout=float(timeout), addresses=addresses,
                  multicast=not addresses, port=port)
    known = reg.cameras()
    devices = []
    for dev in found:
        entry = dev.to_json()
        entry["usable_xaddrs"] = dev.usable_xaddrs
        entry["registered_as"] = next(
            (c.id for c in known if (dev.endpoint and c.endpoint == dev.endpoint) or
             (dev.mac and c.mac and normal_mac(c.mac) == normal_mac(dev.mac)) or
             any(x.url == c.xaddr for x in dev.xaddrs)), None)
        devices.append(entry)
    _audit("camera_discovery", f"{len(devices)} found" +
           (f" probing {', '.join(addresses)}" if addresses else ""))
    return jsonify(devices=devices, seconds=round(time.monotonic() - started, 1),
                   note="suggestions: nothing was contacted; add one with its address")
