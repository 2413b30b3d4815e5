"""The Flask application factory.

So far it serves the playback API (timeline, HLS playlists, recorded segments). The web
issue adds the first-boot wizard, login and roles in front of every route; until then
`nvr serve` binds to localhost only.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, jsonify

from appliance.core.errors import InvalidConfig, ResourceExhausted, Unavailable, VigilError


def create_app(data_dir: Path) -> Flask:
    app = Flask("vigil")
    app.config["VIGIL_DATA_DIR"] = Path(data_dir)
    from appliance.web.playback_api import playback

    app.register_blueprint(playback, url_prefix="/api/v1")

    @app.errorhandler(VigilError)
    def vigil_error(exc: VigilError):
        status = 400 if isinstance(exc, InvalidConfig) else \
            429 if isinstance(exc, ResourceExhausted) else \
            503 if isinstance(exc, Unavailable) else 409
        return jsonify(error=str(exc)), status

    @app.errorhandler(404)
    def not_found(exc):
        return jsonify(error="not found"), 404

    return app
