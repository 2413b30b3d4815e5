"""Storage and health through the web API: space, forecast, disks, RAID, SMART, the
deletion audit, retention settings, and initialising data disks.

Roles: operators may read the overview (a failing disk or a shrinking forecast is what
the person on site acts on); the deletion audit, retention changes and initialising
disks are the admin's. Disks, RAID and SMART come from vigil-hwd (root) over its control
socket; space and the forecast come from the recorder's index, opened read-only; retention
settings are read and written through appliance.storage.retention.overrides, the same
models and file the recorder's retention worker re-reads (docs/design/storage.md).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from flask import Blueprint, abort, current_app, g, jsonify, request

from appliance.config.recorder import CAMERA_NAME
from appliance.config.storage import StorageSettings
from appliance.core.errors import DataLoss, InvalidConfig, Unavailable
from appliance.recorder.index import RecordingIndex
from appliance.storage.health import storage_report
from appliance.storage.retention.overrides import (EDITABLE, check_changes,
                                                   effective_cameras, effective_settings,
                                                   overrides_path, retention_in_force,
                                                   save_overrides)
from appliance.web.security import RANK, accounts, client_address, require_role
from appliance.web.services import hwd, paths, required

storage = Blueprint("storage", __name__)

DELETIONS_DEFAULT, DELETIONS_MAX = 200, 5000
APPLIES = ("the recorder's retention worker re-reads these settings at its next pass "
           "(within retention_interval seconds); no restart needed")


def _data_dir() -> Path:
    return Path(current_app.config["VIGIL_DATA_DIR"])


def _retention():
    return retention_in_force(paths().config)


def _hwd_call(command: str, **args):
    """vigil-hwd's answer, or (None, the reason it is missing) when it cannot answer."""
    try:
        return hwd().call(command, **args), ""
    except Unavailable as exc:
        return None, str(exc)


def _settings_json(retention) -> dict:
    out = {}
    base = dataclasses.asdict(retention.base)
    for f in dataclasses.fields(StorageSettings):
        if f.name not in EDITABLE:
            continue
        meta = f.metadata
        source = ("web" if f.name in retention.overrides.storage else
                  "config" if base[f.name] != f.default else "default")
        out[f.name] = {"value": getattr(retention.settings, f.name), "default": f.default,
                       "description": meta.get("description", ""), "low": meta.get("low"),
                       "high": meta.get("high"), "choices": list(meta.get("choices") or []),
                       "source": source}
    return out


def _cameras_json(retention, known: list[str]) -> dict:
    names = sorted(set(known) | set(retention.cameras))
    return {name: {**(dataclasses.asdict(retention.cameras[name]) if name in retention.cameras
                      else {"max_age_days": 0.0, "max_gib": 0.0}),
                   "source": "web" if name in retention.overrides.cameras else
                   "config" if name in retention.base_cameras else "default"}
            for name in names}


def _known_cameras(retention) -> list[str]:
    """Cameras the owner can set limits for: recorded, configured or registered."""
    names = set(retention.base_cameras)
    try:
        index = RecordingIndex(_data_dir(), readonly=True)
    except DataLoss:
        pass
    else:
        try:
            names |= set(index.cameras())
        finally:
            index.close()
    registry = paths().registry
    if registry is not None and Path(registry).exists():
        from appliance.cameras.credentials import CredentialStore
        from appliance.cameras.registry import CameraRegistry
        from appliance.config.cameras import CameraSettings

        try:
            store = CredentialStore(paths().secrets or Path(registry).parent)
            names |= {c.id for c in CameraRegistry(Path(registry), store,
                                                   CameraSettings()).cameras()}
        except DataLoss:
            pass
    return sorted(names)


@storage.get("/storage")
@require_role("operator")
def overview():
    """Volumes with used/free space, the forecast per camera, disks with SMART, md RAID
    with resync progress, and the retention in force."""
    retention = _retention()
    report = storage_report(_data_dir(), retention.settings, retention.cameras, devices=False)
    status, status_error = _hwd_call("storage.status")
    disks, _ = _hwd_call("disks.list") if status is not None else (None, "")
    is_admin = RANK[g.session.user.role] >= RANK["admin"]
    return jsonify(
        data=report["data"], forecast=report["cameras"], deletions_24h=report["deletions_24h"],
        volumes=(status or {}).get("volumes"), raid=(status or {}).get("raid"),
        smart=(status or {}).get("smart"), monitor=(status or {}).get("monitor"),
        jobs=(status or {}).get("jobs", []), disks=(disks or {}).get("disks"),
        devices_error=status_error,
        retention={"settings": _settings_json(retention),
                   "cameras": _cameras_json(retention, list(report["cameras"]))},
        can_change=is_admin)


@storage.get("/storage/deletions")
@require_role("admin")
def deletions():
    """The retention audit: newest first. ?limit= (1-5000, default 200), ?camera=."""
    text = request.args.get("limit", str(DELETIONS_DEFAULT))
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= DELETIONS_MAX:
        raise InvalidConfig(f"`limit` must be a whole number from 1 to {DELETIONS_MAX}")
    camera = request.args.get("camera") or None
    if camera is not None and not CAMERA_NAME.match(camera):
        raise InvalidConfig("`camera` is not a camera name")
    try:
        index = RecordingIndex(_data_dir(), readonly=True)
    except DataLoss:
        return jsonify(deletions=[], note="nothing recorded yet")
    try:
        rows = index.deletions(camera, int(text))
    finally:
        index.close()
    return jsonify(deletions=[dataclasses.asdict(d) for d in reversed(rows)])


@storage.get("/storage/retention")
@require_role("admin")
def get_retention():
    retention = _retention()
    return jsonify(settings=_settings_json(retention),
                   cameras=_cameras_json(retention, _known_cameras(retention)),
                   applies=APPLIES)


@storage.put("/storage/retention")
@require_role("admin")
def put_retention():
    """Body: {"storage": {setting: value, ...}, "cameras": {name: {"max_age_days": d,
    "max_gib": g}}}; settings not named keep their values. All or nothing."""
    config = required("config")
    data = request.get_json(silent=True)
    if not isinstance(data, dict) or set(data) - {"storage", "cameras"} or not data:
        raise InvalidConfig("give `storage` and/or `cameras`, nothing else")
    retention = _retention()
    changed = check_changes(retention.overrides, data.get("storage"), data.get("cameras"),
                            retention.base_cameras)
    known = set(_known_cameras(retention))
    unknown = sorted(set(data.get("cameras") or {}) - known)
    if unknown:
        raise InvalidConfig(f"no camera named {', '.join(unknown)[:200]}")
    settings = effective_settings(retention.base, changed)   # e.g. mark + headroom < 60 %
    cameras = effective_cameras(retention.base_cameras, changed)
    save_overrides(overrides_path(config), changed)
    words = [f"storage.{k}: {getattr(retention.settings, k)} -> {getattr(settings, k)}"
             for k in EDITABLE if getattr(retention.settings, k) != getattr(settings, k)]
    for name in sorted(set(cameras) | set(retention.cameras)):
        old, new = retention.cameras.get(name), cameras.get(name)
        if old != new:
            words.append(f"camera {name}: {_limits(old)} -> {_limits(new)}")
    accounts().audit(g.session.user.username, "retention_changed",
                     "; ".join(words) or "no change", client_address())
    after = retention_in_force(config)
    return jsonify(settings=_settings_json(after), cameras=_cameras_json(after, sorted(known)),
                   applies=APPLIES, changed=words)


def _limits(ret) -> str:
    if ret is None:
        return "defaults"
    return f"{ret.max_age_days:g} days, {ret.max_gib:g} GiB"


@storage.get("/storage/disks")
@require_role("admin")
def list_disks():
    return jsonify(hwd().call("disks.list"))


@storage.post("/storage/disks/initialise")
@require_role("admin")
def initialise():
    """Body: {"disks": [device|serial|WWN, ...], "mode": "single"|"raid1", "token": ...}.
    Without a token: the plan and its confirmation token. With it: a job id to poll."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict) or set(data) - {"disks", "mode", "token"}:
        raise InvalidConfig("give `disks`, `mode` and (to go ahead) `token`, nothing else")
    answer = hwd(timeout=60).call("disks.initialise", **data)
    if answer.get("job"):
        plan = answer.get("plan") or {}
        accounts().audit(g.session.user.username, "disks_initialise",
                         f"{data.get('mode', 'single')}: " + ", ".join(
                             f"{e['device']} ({e['model'] or '?'}, serial {e['serial'] or '?'})"
                             for e in plan.get("erases", [])) + f"; job {answer['job']['id']}",
                         client_address())
        return jsonify(answer), 202
    return jsonify(answer)


@storage.get("/storage/jobs/<name>")
@require_role("admin")
def job(name: str):
    if len(name) > 64:
        abort(404)
    answer = hwd().call("disks.job", id=name)
    if answer.get("job") is None:
        return jsonify(error="no such job (vigil-hwd may have restarted; list the disks "
                             "again)"), 404
    return jsonify(answer["job"])
