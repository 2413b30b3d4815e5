"""`nvr cameras`: list, add, enable, disable and remove the cameras the box records."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from urllib.parse import urlsplit

from appliance.cameras.credentials import Credentials, CredentialStore
from appliance.cameras.registry import Camera, CameraRegistry, StreamInfo
from appliance.core.errors import InvalidConfig
from appliance.licensing.cli import add_licence_args, open_store

DEFAULT_REGISTRY = "/persist/config/cameras.json"
DEFAULT_SECRETS = "/persist/secrets/cameras"


def register(sub: argparse._SubParsersAction) -> None:
    cams = sub.add_parser("cameras", help="the cameras this box records")
    cams.add_argument("action", nargs="?", default="list",
                      choices=["list", "add", "remove", "enable", "disable"])
    cams.add_argument("camera", nargs="?", help="remove/enable/disable: the camera id")
    cams.add_argument("--registry", default=DEFAULT_REGISTRY)
    cams.add_argument("--secrets", default=DEFAULT_SECRETS)
    cams.add_argument("--config", help="the appliance TOML file ([cameras] settings)")
    cams.add_argument("--name", help="add: the camera id (letters, digits, '-', '_')")
    cams.add_argument("--label", help="add: what the owner sees (default: the name)")
    cams.add_argument("--xaddr", help="add: the camera's ONVIF device service URL (from "
                      "`nvr discover`): maker, model, serial and streams are asked for")
    cams.add_argument("--allow-network", action="append", default=[], metavar="CIDR",
                      help="add --xaddr: also allow this network (e.g. 127.0.0.0/8 in tests)")
    cams.add_argument("--rtsp", help="add: main stream URL, rtsp:// or rtsps://, no password")
    cams.add_argument("--sub", help="add: sub stream URL")
    cams.add_argument("--bitrate-kbps", type=int, default=0,
                      help="add: main stream bitrate if known (counts against the budget)")
    cams.add_argument("--user", help="add: the camera's user name")
    cams.add_argument("--password-file", help="add: read the password from this file "
                      "('-' for stdin); never given on the command line")
    cams.add_argument("--json", action="store_true")
    add_licence_args(cams)
    cams.set_defaults(func=cmd_cameras)


def open_registry(args: argparse.Namespace) -> CameraRegistry:
    from appliance.config.cameras import build_camera_settings
    from appliance.config.recorder import load_config_file

    values = load_config_file(Path(args.config)).camera_settings \
        if getattr(args, "config", None) else {}
    limit = open_store(args).channel_limit if hasattr(args, "licence") else None
    return CameraRegistry(Path(args.registry), CredentialStore(Path(args.secrets)),
                          build_camera_settings(values), channel_limit=limit)


def _onboard(reg: CameraRegistry, args: argparse.Namespace, creds: Credentials | None) -> Camera:
    """Ask the camera (ONVIF) what it is and where its streams are; every address it
    gives is checked against the allowed networks before anything is fetched."""
    from appliance.cameras.onvif import AddressPolicy, onboard
    from appliance.cameras.registry import from_onboarded

    networks = [str(n) for n in reg.settings.networks()] + list(args.allow_network)
    policy = AddressPolicy(networks)
    onboarded = onboard(args.xaddr, creds, policy)
    camera = from_onboarded(onboarded, args.name, args.label or "")
    policy.check_url(camera.main.uri, "stream")
    return camera


def read_password(source: str) -> str:
    text = sys.stdin.readline() if source == "-" else Path(source).read_text(encoding="utf-8")
    password = text.rstrip("\r\n")
    if not password:
        raise InvalidConfig("the password file is empty")
    return password


def cmd_cameras(args: argparse.Namespace) -> int:
    reg = open_registry(args)
    if args.action == "list":
        cams = reg.cameras()
        if args.json:
            print(json.dumps({"cameras": [c.to_json() for c in cams],
                              "incoming_kbps": reg.bandwidth_kbps(cams),
                              "budget_kbps": int(reg.settings.incoming_budget_mbps * 1000)},
                             indent=1))
            return 0
        for c in cams:
            state = "enabled" if c.enabled else "disabled"
            print(f"{c.id:<16} {c.label:<20} {c.host:<16} {state:<8} {c.manufacturer} "
                  f"{c.model} {c.main.uri}")
        return 0
    if args.action == "add":
        return _add(reg, args)
    if not args.camera:
        raise InvalidConfig(f"cameras {args.action}: name the camera")
    if args.action == "remove":
        reg.remove(args.camera)
    else:
        reg.set_enabled(args.camera, args.action == "enable")
    print(f"camera {args.camera}: {args.action}d")
    return 0


def _add(reg: CameraRegistry, args: argparse.Namespace) -> int:
    if not args.name or not (args.rtsp or args.xaddr):
        raise InvalidConfig("cameras add: give --name and --xaddr (ONVIF, see `nvr discover`) "
                            "or --rtsp")
    creds = None
    if args.user:
        if not args.password_file:
            raise InvalidConfig("cameras add: --user needs --password-file")
        creds = Credentials(args.user, read_password(args.password_file))
    if args.xaddr:
        camera = _onboard(reg, args, creds)
    else:
        host = urlsplit(args.rtsp).hostname or ""
        sub = StreamInfo(args.sub) if args.sub else None
        camera = Camera(args.name, args.label or args.name, host,
                        StreamInfo(args.rtsp, bitrate_kbps=args.bitrate_kbps), sub)
    added = reg.add(camera, creds)
    print(json.dumps(added.to_json()) if args.json else f"camera {added.id} added")
    return 0
