"""`nvr serve`: the web API on a WSGI server (waitress)."""

from __future__ import annotations

import argparse
import ipaddress
from pathlib import Path

from appliance.core.errors import InvalidConfig
from appliance.licensing.cli import add_licence_args


def register(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="the web API (playback so far) on localhost")
    serve.add_argument("--data", required=True, help="data directory (recordings and index)")
    serve.add_argument("--listen", default="127.0.0.1:8080", help="address:port (loopback "
                       "only until HTTPS arrives with the web UI)")
    serve.add_argument("--accounts", default="/persist/config/accounts.sqlite3",
                       help="users, sessions and the audit log (created at first boot)")
    add_licence_args(serve)
    serve.add_argument("--registry", default="/persist/config/cameras.json",
                       help="the camera registry (live view uses each camera's sub stream)")
    serve.add_argument("--secrets", default="/persist/secrets/cameras")
    serve.set_defaults(func=cmd_serve)


def parse_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    try:
        address = ipaddress.ip_address(host.strip("[]"))
        number = int(port)
    except ValueError:
        raise InvalidConfig(f"--listen {text!r}: expected ADDRESS:PORT") from None
    if not address.is_loopback:
        raise InvalidConfig("without HTTPS (it arrives with the web UI) the API listens on "
                            "loopback only")
    if not 0 < number < 65536:
        raise InvalidConfig(f"--listen: port {number} is out of range")
    return str(address), number


def live_urls(args: argparse.Namespace):
    """camera name -> the RTSP URL live view opens: the sub stream when the camera has one."""
    from appliance.cameras.manage_cli import open_registry
    from appliance.cameras.registry import with_credentials

    def url_for(name: str) -> str | None:
        registry = open_registry(args)
        for cam in registry.cameras():
            if cam.id == name and cam.enabled:
                stream = cam.sub or cam.main
                return with_credentials(stream.uri, registry.credentials.get(cam.id))
        return None
    return url_for


def cmd_serve(args: argparse.Namespace) -> int:
    from waitress import serve

    from appliance.web.app import create_app

    from appliance.licensing.cli import open_store
    from appliance.web.accounts import AccountStore

    host, port = parse_listen(args.listen)
    app = create_app(Path(args.data), AccountStore(Path(args.accounts)),
                     licence=lambda: open_store(args), live_url=live_urls(args))
    serve(app, host=host, port=port, threads=8, ident="vigil")
    return 0
