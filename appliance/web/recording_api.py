"""Recording modes through the web API: per camera a fixed mode or a weekly schedule with
holidays, and the seconds kept before and after each camera event (issue 11).

The settings live in recording.json beside the appliance TOML
(appliance/recorder/recording_settings.py); the recorder re-reads the file within a
second of a change, so nothing restarts. A change is all or nothing: one bad value
refuses it with the reason and the file stays as it was.
"""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request

from appliance.core.errors import InvalidConfig
from appliance.recorder.recording_settings import (BOUNDS, DEFAULT_POST_S, DEFAULT_PRE_S,
                                                   load_recording_settings,
                                                   recording_settings_path,
                                                   update_recording_settings)
from appliance.recorder.schedule import MODES
from appliance.web.security import accounts, client_address, require_role
from appliance.web.services import paths, required

recording = Blueprint("recording", __name__)

APPLIES = "the recorder reads the change within about a second; no restart"


def _path():
    return recording_settings_path(required("config"))


def _known_cameras() -> set[str] | None:
    """The registry's cameras (None: this server has no registry to check against)."""
    if paths().registry is None:
        return None
    from appliance.web.cameras_api import _registry

    return {cam.id for cam in _registry().cameras()}


@recording.get("/recording")
@require_role("admin")
def show():
    return jsonify({**load_recording_settings(_path()).to_json(), "modes": list(MODES),
                    "defaults": {"mode": "continuous", "pre_event_s": DEFAULT_PRE_S,
                                 "post_event_s": DEFAULT_POST_S, "event_max_age_days": 0},
                    "bounds": {k: list(v) for k, v in BOUNDS.items()}, "applies": APPLIES})


@recording.put("/recording")
@require_role("admin")
def change():
    """Body: {"cameras": {name: {"mode": ...} or {"schedule": {...}}, plus "pre_event_s",
    "post_event_s", "event_max_age_days"; null: back to continuous}}."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict) or set(data) != {"cameras"}:
        raise InvalidConfig("give {\"cameras\": {camera: settings}}, nothing else")
    cameras = data["cameras"]
    known = _known_cameras()
    if isinstance(cameras, dict) and known is not None:
        unknown = sorted(str(name)[:40] for name in cameras if name not in known)
        if unknown:
            raise InvalidConfig(f"no camera named {', '.join(unknown)[:200]}")
    before = load_recording_settings(_path()).to_json()["cameras"]
    after = update_recording_settings(_path(), cameras)
    changed = [f"{name}: {_summary(before.get(name))} -> {_summary(after['cameras'].get(name))}"
               for name in sorted(set(before) | set(after["cameras"]))
               if before.get(name) != after["cameras"].get(name)]
    accounts().audit(g.session.user.username, "recording_changed",
                     "; ".join(changed)[:2000] or "no change", client_address())
    return jsonify({**after, "changed": changed, "applies": APPLIES})


def _summary(cam: dict | None) -> str:
    if cam is None:
        return "continuous (default)"
    how = cam.get("mode") or "schedule"
    return f"{how}, pre {cam['pre_event_s']:g} s, post {cam['post_event_s']:g} s"
