"""`nvr cameras`: list, add, enable, disable and remove the cameras the box records;
replace a camera's factory password (rotate-password, or add --rotate-password); find
cameras again after an address change (rediscover)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.cameras.credentials import Credentials, CredentialStore
from appliance.cameras.manage import (add_camera, address_policy, check_camera_id,
                                      check_label, onvif_camera, open_camera_registry,
                                      rtsp_camera)
from appliance.cameras.registry import Camera, CameraRegistry
from appliance.core.errors import InvalidConfig
from appliance.licensing.cli import add_licence_args, open_store

if TYPE_CHECKING:
    from appliance.cameras.onvif import AddressPolicy

DEFAULT_REGISTRY = "/persist/config/cameras.json"
DEFAULT_SECRETS = "/persist/secrets/cameras"


def register(sub: argparse._SubParsersAction) -> None:
    # allow_abbrev=False: `--password secret` must not pass as --password-file.
    cams = sub.add_parser("cameras", allow_abbrev=False, help="the cameras this box records")
    cams.add_argument("action", nargs="?", default="list",
                      choices=["list", "add", "remove", "enable", "disable", "rotate-password",
                               "rediscover", "default-credentials"])
    cams.add_argument("camera", nargs="?",
                      help="remove/enable/disable/rotate-password: the camera id")
    cams.add_argument("--registry", default=DEFAULT_REGISTRY)
    cams.add_argument("--adoption-secrets", default="/persist/secrets/adoption",
                      help="default-credentials: where the owner's default camera login is "
                      "kept for PoE auto-adoption")
    cams.add_argument("--secrets", default=DEFAULT_SECRETS)
    cams.add_argument("--config", help="the appliance TOML file ([cameras] settings)")
    cams.add_argument("--name", help="add: the camera id (letters, digits, '-', '_')")
    cams.add_argument("--label", help="add: what the owner sees (default: the name)")
    cams.add_argument("--xaddr", help="add: the camera's ONVIF device service URL (from "
                      "`nvr discover`): maker, model, serial and streams are asked for")
    cams.add_argument("--allow-network", action="append", default=[], metavar="CIDR",
                      help="add --xaddr, rotate-password, rediscover: also allow this network "
                      "(e.g. 127.0.0.0/8 in tests)")
    cams.add_argument("--rtsp", help="add: main stream URL, rtsp:// or rtsps://, no password")
    cams.add_argument("--sub", help="add: sub stream URL")
    cams.add_argument("--bitrate-kbps", type=int, default=0,
                      help="add: main stream bitrate if known (counts against the budget)")
    cams.add_argument("--user", help="add: the camera's user name")
    cams.add_argument("--password-file", help="add: read the password from this file "
                      "('-' for stdin); never given on the command line")
    cams.add_argument("--rotate-password", action="store_true",
                      help="add --xaddr: after adding, replace the camera's (factory) password "
                      "with a strong generated one (ONVIF SetUser), verified before it is "
                      "stored; it is never shown")
    cams.add_argument("--timeout", type=float, metavar="S",
                      help="rediscover: seconds to listen for WS-Discovery answers [default: "
                      "the cameras.discovery_seconds setting]")
    cams.add_argument("--address", action="append", default=[], metavar="IP",
                      help="rediscover: probe this address by unicast instead of multicast "
                      "(repeatable)")
    cams.add_argument("--port", type=int, default=3702,
                      help="rediscover --address: their WS-Discovery port [default 3702]")
    cams.add_argument("--json", action="store_true")
    add_licence_args(cams)
    cams.set_defaults(func=cmd_cameras)


def open_registry(args: argparse.Namespace) -> CameraRegistry:
    limit = open_store(args).channel_limit if hasattr(args, "licence") else None
    config = Path(args.config) if getattr(args, "config", None) else None
    if config is not None and not config.exists():
        raise InvalidConfig(f"{config}: no such configuration file")
    return open_camera_registry(Path(args.registry), Path(args.secrets), config,
                                channel_limit=limit)


def camera_policy(reg: CameraRegistry, args: argparse.Namespace) -> AddressPolicy:
    """The address policy for this registry's cameras: the configured networks plus
    --allow-network."""
    return address_policy(reg.settings, args.allow_network)


def _onboard(reg: CameraRegistry, args: argparse.Namespace, creds: Credentials | None) -> Camera:
    """Ask the camera (ONVIF) what it is and where its streams are; every address it
    gives is checked against the allowed networks before anything is fetched."""
    return onvif_camera(args.name, _label(args), args.xaddr, creds, camera_policy(reg, args))


def _label(args: argparse.Namespace) -> str:
    return check_label(args.label) if args.label is not None else ""


def _default_credentials(args: argparse.Namespace) -> int:
    """The login PoE auto-adoption tries on a new camera (e.g. the one the owner set on all
    of them, or the maker's activation password); kept 0600 like every camera password."""
    from appliance.poe.adoption import set_default_credentials

    if not args.user or not args.password_file:
        raise InvalidConfig("default-credentials: give --user and --password-file")
    store = CredentialStore(Path(args.adoption_secrets))
    set_default_credentials(store, Credentials(args.user, read_password(args.password_file)))
    print("default camera credentials for PoE adoption saved")
    return 0


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
    if args.action == "default-credentials":
        return _default_credentials(args)
    if args.action == "add":
        return _add(reg, args)
    if args.action == "rediscover":
        return _rediscover(reg, args)
    if not args.camera:
        raise InvalidConfig(f"cameras {args.action}: name the camera")
    if args.action == "rotate-password":
        return _rotate(reg, args)
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
    check_camera_id(args.name)
    creds = None
    if args.user:
        if not args.password_file:
            raise InvalidConfig("cameras add: --user needs --password-file")
        creds = Credentials(args.user, read_password(args.password_file))
    if args.rotate_password and not (args.xaddr and creds):
        raise InvalidConfig("cameras add --rotate-password: give --xaddr, --user and "
                            "--password-file (the camera's current password)")
    if args.xaddr:
        camera = _onboard(reg, args, creds)
    else:
        camera = rtsp_camera(args.name, _label(args), args.rtsp, args.sub, args.bitrate_kbps)
    added = add_camera(reg, camera, creds,
                       rotate_with=camera_policy(reg, args) if args.rotate_password else None)
    if added.rotation is None:
        print(json.dumps(added.camera.to_json()) if args.json else
              f"camera {added.camera.id} added")
        return 0
    print(json.dumps({**added.camera.to_json(), "password_rotated": True}) if args.json else
          f"camera {added.camera.id} added; its password was replaced by a generated one "
          "(stored, not shown)")
    return 0


def _rotate(reg: CameraRegistry, args: argparse.Namespace) -> int:
    from appliance.cameras.rotation import rotate_password

    done = rotate_password(reg, args.camera, camera_policy(reg, args))
    if args.json:
        print(json.dumps(done.to_json()))
    else:
        print(f"camera {done.camera_id}: the password of user {done.username} was replaced "
              "by a generated one (stored, not shown)" + (f"; {done.note}" if done.note else ""))
    return 0


def _rediscover(reg: CameraRegistry, args: argparse.Namespace) -> int:
    from appliance.cameras.rediscover import rediscover

    timeout = args.timeout if args.timeout is not None else reg.settings.discovery_seconds
    if not (0.2 <= timeout <= 60):
        raise InvalidConfig("--timeout must be between 0.2 and 60 seconds")
    report = rediscover(reg, camera_policy(reg, args), timeout, addresses=args.address,
                        multicast=not args.address, port=args.port)
    if args.json:
        print(json.dumps(report.to_json(), indent=1))
        return 0
    for move in report.moved:
        print(f"moved     {move.camera_id:<16} {move.old_host} -> {move.new_host}")
    for held in report.held:
        print(f"not moved {held.camera_id:<16} found at {held.host}: {held.reason}")
    for camera_id in report.unchanged:
        print(f"unchanged {camera_id}")
    for camera_id in report.not_seen:
        print(f"not seen  {camera_id}")
    for dev in report.unknown:
        usable = dev.usable_xaddrs
        print(f"new       {dev.sender:<16} {dev.name or '(no name)'}  endpoint {dev.endpoint}"
              + (f"  xaddr {usable[0]}" if usable else "  (no usable address)"))
    if report.unknown:
        print("new devices are not added; add one with `nvr cameras add --name NAME --xaddr "
              "URL --user USER --password-file FILE`")
    if not (report.moved or report.held or report.unchanged or report.unknown):
        print(f"no ONVIF camera answered within {timeout:g} s")
    return 0
