"""The first-boot wizard: its progress, the security checklist, and finishing it once.

The wizard's first step is the admin account (POST /api/v1/setup, auth_api.py, possible
exactly once). Every later step saves through the ordinary admin API of its area (time
and network: system_api; disks and retention: storage_api; cameras: cameras_api), so
the wizard adds no second way to change a setting. This blueprint only remembers which
step the owner finished (an interrupted setup resumes there), builds the closing
security checklist, and finishes the wizard exactly once: afterwards /setup sends the
owner to the live page and nothing here can be changed again.
"""

from __future__ import annotations

from typing import Any, Callable

from flask import Blueprint, current_app, g, jsonify, request

from appliance.core.errors import FailedPrecondition, InvalidConfig, VigilError
from appliance.web.security import accounts, client_address, require_role
from appliance.web.services import hwd, paths

wizard = Blueprint("wizard", __name__)

STEPS = ("admin", "time", "network", "disks", "cameras", "retention", "summary")


@wizard.get("/setup/wizard")
@require_role("admin")
def progress():
    state = accounts().wizard_state()
    return jsonify(steps=list(STEPS), step=state["step"] or "admin",
                   finished=state["finished"] is not None)


@wizard.post("/setup/wizard")
@require_role("admin")
def step_done():
    """Body: {"step": one of STEPS}: the owner finished that step (resume point)."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict) or set(data) != {"step"} or data["step"] not in STEPS:
        raise InvalidConfig(f"give {{\"step\": ...}} with one of {', '.join(STEPS)}")
    if accounts().wizard_state()["finished"] is not None:
        raise FailedPrecondition("the first-boot setup is finished; change settings on "
                                 "their own pages")
    accounts().wizard_step_done(data["step"])
    return jsonify(step=data["step"])


@wizard.get("/setup/checklist")
@require_role("admin")
def checklist():
    return jsonify(items=security_checklist())


@wizard.post("/setup/finish")
@require_role("admin")
def finish():
    items = security_checklist()
    accounts().finish_wizard()
    accounts().audit(g.session.user.username, "setup_finished",
                     "; ".join(f"{i['item']}: {'ok' if i['ok'] else 'check'}" for i in items),
                     client_address())
    return jsonify(finished=True, items=items)


# --- the security checklist ------------------------------------------------------------------

def _item(item: str, ok: bool | None, detail: str) -> dict[str, Any]:
    """ok: True (done), False (the owner should act), None (cannot tell here)."""
    return {"item": item, "ok": ok, "detail": detail}


def _checked(item: str, check: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return check()
    except VigilError as exc:
        return _item(item, None, f"could not check: {exc}")


def security_checklist() -> list[dict[str, Any]]:
    return [_accounts_item(), _checked("HTTPS", _https_item),
            _checked("Clock", _clock_item), _checked("Recording disk", _disk_item),
            _checked("Cameras", _cameras_item), _checked("Licence", _licence_item)]


def _accounts_item() -> dict[str, Any]:
    users = accounts().users()
    admins = [u.username for u in users if u.role == "admin"]
    return _item("Accounts", True,
                 f"{len(admins)} admin account(s) ({', '.join(admins)}), {len(users)} in all; "
                 "the box has no default password: not for the web, SSH or the system")


def _https_item() -> dict[str, Any]:
    tls_dir = paths().tls_dir
    if tls_dir is None:
        return _item("HTTPS", None, "development mode: plain HTTP on this computer only "
                     "(the box serves HTTPS with its own certificate)")
    from appliance.web.certificate_api import _identity, _store

    store = _store()
    if not store.served_path.exists():
        return _item("HTTPS", False, "no certificate yet: restart the web server")
    status = store.status(_identity()).to_json()
    return _item("HTTPS", True, f"{status['source']} certificate, SHA-256 "
                 f"{status['fingerprint_sha256']}: compare it with what your browser shows "
                 f"for this page; valid for {status['days_left']} more days")


def _clock_item() -> dict[str, Any]:
    system = hwd().call("system.get")
    time_settings = system.get("settings", system).get("time", {})
    if time_settings.get("ntp"):
        return _item("Clock", True, f"time zone {time_settings.get('timezone')}, kept right "
                     "by NTP (recordings and evidence carry correct times)")
    return _item("Clock", False, f"time zone {time_settings.get('timezone')}; NTP is off: set "
                 "the time by hand after power cuts, or turn NTP on")


def _disk_item() -> dict[str, Any]:
    volumes_file = paths().volumes
    if volumes_file is None:
        return _item("Recording disk", None, "development mode records into ./var/data")
    from appliance.storage.volume import load_volumes

    volumes = load_volumes(volumes_file)
    if not volumes:
        return _item("Recording disk", False, "no data disk is initialised, so the box is "
                     "not recording: it never records onto its SD card or eMMC; connect a "
                     "disk and initialise it in the Disks step or on the Storage page")
    return _item("Recording disk", True, f"{len(volumes)} data volume(s) initialised; the "
                 "Storage page shows RAID and SMART health")


def _cameras_item() -> dict[str, Any]:
    from appliance.web.cameras_api import _registry

    cameras = _registry().cameras()
    if not cameras:
        return _item("Cameras", False, "no camera yet: plug one into a PoE port or add one")
    enabled = sum(1 for c in cameras if c.enabled)
    return _item("Cameras", True, f"{len(cameras)} camera(s), {enabled} enabled; their "
                 "passwords are kept outside the web root and never shown")


def _licence_item() -> dict[str, Any]:
    factory = current_app.config.get("VIGIL_LICENCE")
    if factory is None:
        return _item("Licence", None, "licensing is not configured on this server")
    store = factory()
    status = store.status().to_json()
    return _item("Licence", True, f"{store.channel_limit()} channels "
                 f"({status.get('source') or status.get('edition') or 'in force'})")
