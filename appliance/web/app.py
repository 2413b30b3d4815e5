"""The Flask application factory: security first (web/security.py), then the API.

Every route needs a session except the setup and login endpoints and the static page
shells; the first-boot setup creates the admin (there is no default account).
"""

from __future__ import annotations

import errno
import importlib
import sqlite3
import sys
from pathlib import Path
from typing import Callable, Iterable

from flask import Flask, jsonify

from appliance.core.errors import (DataLoss, FailedPrecondition, InvalidConfig,
                                   ResourceExhausted, Unavailable, VigilError)
from appliance.web import security
from appliance.web.accounts import AccountStore, LoginFailed
from appliance.web.services import WebPaths

# What reading a file on a data disk that was pulled out (or is dying) fails with.
DISK_GONE_ERRNOS = frozenset({errno.EIO, errno.ENODEV, errno.ENXIO, errno.ESTALE})

# One blueprint per area; API blueprints live under /api/v1 (module, attribute).
API_BLUEPRINTS = (
    ("appliance.web.auth_api", "auth"),
    ("appliance.web.live_api", "live"),
    ("appliance.web.licence_api", "licence"),
    ("appliance.web.playback_api", "playback"),
    ("appliance.web.export_api", "exports"),
    ("appliance.web.wizard_api", "wizard"),
    ("appliance.web.certificate_api", "certificate"),
    ("appliance.web.cameras_api", "cameras"),
    ("appliance.web.poe_api", "poe"),
    ("appliance.web.storage_api", "storage"),
    ("appliance.web.alerts_api", "alerts"),
    ("appliance.web.system_api", "system"),
    ("appliance.web.recording_api", "recording"),
    ("appliance.web.metrics_api", "metrics"),
    ("appliance.web.update_api", "update"),
    ("appliance.web.integrations_api", "integrations"),
)


def create_app(data_dir: Path, accounts: AccountStore, *,
               allowed_hosts: Iterable[str] = (), licence: Callable | None = None,
               live_url: Callable[[str], str | None] | None = None,
               live_settings: dict | None = None, paths: WebPaths | None = None) -> Flask:
    app = Flask("vigil")
    app.config["VIGIL_DATA_DIR"] = Path(data_dir)
    app.config["VIGIL_ACCOUNTS"] = accounts
    app.config["VIGIL_ALLOWED_HOSTS"] = tuple(allowed_hosts)
    app.config["VIGIL_LICENCE"] = licence
    app.config["VIGIL_PATHS"] = paths or WebPaths()
    app.config["VIGIL_LIVE_URL_FOR_CAMERA"] = live_url  # camera name -> RTSP URL (sub stream)
    if live_settings is not None:
        app.config["VIGIL_LIVE_SETTINGS"] = live_settings
    security.install(app)
    from appliance.web.pages import pages

    for module, name in API_BLUEPRINTS:
        app.register_blueprint(getattr(importlib.import_module(module), name),
                               url_prefix="/api/v1")
    app.register_blueprint(pages)

    @app.errorhandler(VigilError)
    def vigil_error(exc: VigilError):
        status = (401 if isinstance(exc, LoginFailed) else
                  400 if isinstance(exc, InvalidConfig) else
                  429 if isinstance(exc, ResourceExhausted) else
                  503 if isinstance(exc, Unavailable) else
                  500 if isinstance(exc, DataLoss) else
                  409 if isinstance(exc, FailedPrecondition) else 400)
        return jsonify(error=str(exc)), status

    @app.errorhandler(sqlite3.Error)
    def index_unreadable(exc: sqlite3.Error):
        # The recorder's index lives on the data disk: pulled out, failing or corrupt.
        app.logger.error("the recorder's index cannot be read: %s", exc)
        return jsonify(error=f"the recordings cannot be read ({exc}): the data disk may be "
                             f"missing or failing; see Alerts and Storage"), 503

    @app.errorhandler(OSError)
    def disk_unreadable(exc: OSError):
        if exc.errno not in DISK_GONE_ERRNOS:
            app.log_exception(sys.exc_info())
            return jsonify(error="internal error"), 500
        app.logger.error("a file cannot be read: %s", exc)
        return jsonify(error=f"the recordings cannot be read ({exc.strerror}): the data disk "
                             f"may be missing or failing; see Alerts and Storage"), 503

    for code, text in ((403, "not allowed for this user"), (404, "not found"),
                       (405, "method not allowed"), (413, "the request is too large")):
        app.register_error_handler(code, lambda exc, text=text, code=code:
                                   (jsonify(error=text), code))
    return app
