"""The licence through the web API: what is in force, and installing a new file."""

from __future__ import annotations

import base64
import binascii

from flask import Blueprint, current_app, g, jsonify, request

from appliance.core.errors import InvalidConfig
from appliance.web.security import accounts, client_address, require_role

licence = Blueprint("licence", __name__)


def _store():
    factory = current_app.config.get("VIGIL_LICENCE")
    if factory is None:
        raise InvalidConfig("licensing is not configured on this server")
    return factory()


@licence.get("/licence")
@require_role("admin")
def show():
    store = _store()
    return jsonify({**store.status().to_json(), "serial": store.serial})


@licence.post("/licence")
@require_role("admin")
def install():
    """Body: {"licence": "<the file's text>"} or {"licence_base64": "..."}; a bad file is
    refused with the reason and the licence in force stays."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InvalidConfig("the body must be a JSON object")
    if isinstance(data.get("licence"), str):
        raw = data["licence"].encode("utf-8", "replace")
    elif isinstance(data.get("licence_base64"), str):
        try:
            raw = base64.b64decode(data["licence_base64"], validate=True)
        except (binascii.Error, ValueError):
            raise InvalidConfig("`licence_base64` is not valid base64") from None
    else:
        raise InvalidConfig("give the licence file as `licence` (text) or `licence_base64`")
    installed = _store().install(raw)
    accounts().audit(g.session.user.username, "licence_installed",
                     f"{installed.licence_id}: {installed.channels} channels", client_address())
    return jsonify(installed.to_json()), 201
