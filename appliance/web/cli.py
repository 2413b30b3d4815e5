"""`nvr serve`: the web UI and API on gunicorn (web/https_server.py).

On the box (the vigil-web unit): HTTPS on --https-listen with the device certificate
from --tls-dir (made at the first start, web/tls.py), and a plain-HTTP port
(--http-listen) that only redirects to HTTPS. For development, `--listen 127.0.0.1:PORT`
serves the same app in plain HTTP, on a loopback address only.
"""

from __future__ import annotations

import argparse
import ipaddress
from pathlib import Path

from appliance.core.errors import InvalidConfig
from appliance.licensing.cli import add_licence_args

DEFAULT_TLS_DIR = "/persist/tls"


def register(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="the web UI and API: HTTPS with the device "
                           "certificate, plain HTTP only redirecting")
    serve.add_argument("--data", required=True, help="data directory (recordings and index)")
    serve.add_argument("--https-listen", default="0.0.0.0:443", metavar="ADDRESS:PORT",
                       help="where HTTPS is served [default 0.0.0.0:443]")
    serve.add_argument("--http-listen", default="0.0.0.0:80", metavar="ADDRESS:PORT",
                       help="plain HTTP that only redirects to HTTPS; 'off' for none "
                       "[default 0.0.0.0:80]")
    serve.add_argument("--listen", default=None, metavar="127.0.0.1:PORT",
                       help="development: serve plain HTTP on this loopback address instead "
                       "of HTTPS")
    serve.add_argument("--device-key", default="/persist/keys/device.pem",
                       help="the device key that signs export manifests (made at the first "
                       "export)")
    serve.add_argument("--tls-dir", default=DEFAULT_TLS_DIR,
                       help="the web server's certificate and key (made at the first start)")
    serve.add_argument("--hostname", default=None,
                       help="the box's name for the certificate and the Host check "
                       "[default: the system's hostname]")
    serve.add_argument("--hostname-file", default="/etc/hostname",
                       help="where the box's current name is read again when it changes, so "
                       "the Host check accepts a new name at once [default: /etc/hostname]")
    serve.add_argument("--addresses", default=None, metavar="IP[,IP...]",
                       help="the box's addresses for a generated certificate [default: those "
                       "of its network interfaces]")
    serve.add_argument("--threads", type=int, default=16,
                       help="request threads (each live viewer holds one) [default 16]")
    serve.add_argument("--accounts", default="/persist/config/accounts.sqlite3",
                       help="users, sessions and the audit log (created at first boot)")
    add_licence_args(serve)
    serve.add_argument("--registry", default="/persist/config/cameras.json",
                       help="the camera registry (live view uses each camera's sub stream)")
    serve.add_argument("--secrets", default="/persist/secrets/cameras")
    serve.add_argument("--config", default="/persist/config/recorder.toml",
                       help="the appliance's settings file (TOML)")
    serve.add_argument("--volumes", default="/persist/config/data-volumes.json",
                       help="the initialised data disks (vigil-hwd writes it)")
    serve.add_argument("--hwd-state", default="/persist/state/storage",
                       help="vigil-hwd's status snapshots")
    serve.add_argument("--hwd-socket", default="/run/vigil/hwd.sock",
                       help="vigil-hwd's control socket")
    serve.set_defaults(func=cmd_serve)

    from appliance.web.certificate_cli import register as register_certificate

    register_certificate(sub)


def parse_address(text: str, option: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    try:
        address = ipaddress.ip_address(host.strip("[]"))
        number = int(port)
    except ValueError:
        raise InvalidConfig(f"{option} {text!r}: expected ADDRESS:PORT") from None
    if not 0 < number < 65536:
        raise InvalidConfig(f"{option}: port {number} is out of range")
    return str(address), number


def parse_listen(text: str) -> tuple[str, int]:
    """--listen: plain HTTP, so loopback only (the box serves HTTPS)."""
    host, port = parse_address(text, "--listen")
    if not ipaddress.ip_address(host).is_loopback:
        raise InvalidConfig("--listen serves plain HTTP, on a loopback address only; the box "
                            "serves HTTPS (--https-listen)")
    return host, port


def device_identity(args: argparse.Namespace):
    """The names for the certificate: --hostname/--addresses, else the system's."""
    from appliance.web.tls import DeviceIdentity, discover_identity

    found = discover_identity() if not (args.hostname and args.addresses) else None
    hostname = args.hostname or found.hostname
    if args.addresses is not None:
        addresses = tuple(a.strip() for a in args.addresses.split(",") if a.strip())
        for address in addresses:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise InvalidConfig(f"--addresses: {address!r} is not an IP address") from None
    else:
        addresses = found.addresses
    return DeviceIdentity(hostname, addresses)


def live_urls(args: argparse.Namespace):
    """camera name -> the RTSP URL live view opens: the sub stream when the camera has one."""
    from appliance.cameras.manage import live_stream_url
    from appliance.cameras.manage_cli import open_registry

    # The settings file is optional for live view (its [cameras] section has defaults).
    registry_args = argparse.Namespace(**vars(args))
    if args.config and not Path(args.config).exists():
        registry_args.config = None

    return lambda name: live_stream_url(open_registry(registry_args), name)


def web_paths(args: argparse.Namespace):
    from appliance.web.services import WebPaths

    return WebPaths(registry=Path(args.registry), secrets=Path(args.secrets),
                    hwd_state=Path(args.hwd_state), hwd_socket=Path(args.hwd_socket),
                    config=Path(args.config), volumes=Path(args.volumes),
                    tls_dir=Path(args.tls_dir), device_key=Path(args.device_key))


def app_factory(args: argparse.Namespace, identity, names):
    """What the server's worker process calls to make the app (after the fork: the
    accounts database and the live-view hub belong to that process)."""
    def load():
        from appliance.licensing.cli import open_store
        from appliance.web.accounts import AccountStore
        from appliance.web.app import create_app
        from appliance.web.certificate_api import IDENTITY

        app = create_app(Path(args.data), AccountStore(Path(args.accounts)),
                         licence=lambda: open_store(args), live_url=live_urls(args),
                         paths=web_paths(args))
        # The box's names and the served certificate's, read on each request (HostNames).
        app.config["VIGIL_ALLOWED_HOSTS"] = names
        app.config[IDENTITY] = lambda: identity
        return app
    return load


def cmd_serve(args: argparse.Namespace) -> int:
    from appliance.web.https_server import HostNames, Listen, serve_https, serve_plain
    from appliance.web.tls import TlsStore

    if args.threads < 2:
        raise InvalidConfig("--threads: at least 2")
    identity = device_identity(args)
    store = TlsStore(Path(args.tls_dir))
    if args.listen:
        names = HostNames(identity.dns_names(), None, Path(args.hostname_file))
        serve_plain(app_factory(args, identity, names), Listen(*parse_listen(args.listen)),
                    args.threads)
        return 0
    https = Listen(*parse_address(args.https_listen, "--https-listen"))
    http = None if args.http_listen == "off" else \
        Listen(*parse_address(args.http_listen, "--http-listen"))
    if http is not None and (http.host, http.port) == (https.host, https.port):
        raise InvalidConfig("--http-listen and --https-listen must differ")
    names = HostNames(identity.dns_names(), store.served_path, Path(args.hostname_file))
    serve_https(app_factory(args, identity, names), https, http, store, identity,
                args.threads, names)
    return 0
