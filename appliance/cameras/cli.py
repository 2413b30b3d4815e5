"""`nvr discover` and `nvr onvif-info`: ONVIF from the shell.

Wired into `nvr` by appliance/cli.py (`register(sub)`); also runnable on its own as
`python -m appliance.cameras.cli discover ...`. Passwords are never taken from the
command line (other users can read it in /proc): `--password-file FILE`, or `-` for stdin.
"""

from __future__ import annotations

import argparse
import json

from appliance.cameras.credentials import Credentials
from appliance.cameras.manage_cli import read_password
from appliance.cameras.onvif import AddressPolicy, Timeouts, onboard, probe
from appliance.config.cameras import CameraSettings
from appliance.core.errors import InvalidConfig


def register(sub: argparse._SubParsersAction) -> None:
    # allow_abbrev=False: `--password secret` must not pass as --password-file.
    disc = sub.add_parser("discover", allow_abbrev=False,
                          help="find ONVIF cameras on the LAN (WS-Discovery); results are "
                          "suggestions, nothing is fetched from them")
    disc.add_argument("--timeout", type=float, default=3.0, metavar="S",
                      help="seconds to listen for answers [default 3]")
    disc.add_argument("--address", action="append", default=[], metavar="IP",
                      help="probe this address by unicast instead of multicast (repeatable)")
    disc.add_argument("--interface", metavar="IP",
                      help="IPv4 address of the interface to multicast from")
    add_network_flag(disc)
    disc.add_argument("--json", action="store_true")
    disc.set_defaults(func=cmd_discover)

    info = sub.add_parser("onvif-info", allow_abbrev=False,
                          help="onboard one ONVIF camera: identity, main and sub stream, "
                          "snapshot URI (nothing is stored)")
    info.add_argument("--xaddr", required=True, metavar="URL",
                      help="the device service, e.g. http://192.168.1.20/onvif/device_service")
    info.add_argument("--user", default="", help="camera user name (omit for none)")
    info.add_argument("--password-file", metavar="FILE",
                      help="file whose first line is the password; - reads stdin")
    info.add_argument("--timeout", type=float, default=30.0, metavar="S",
                      help="overall limit for all calls [default 30]")
    add_network_flag(info)
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=cmd_onvif_info)


def add_network_flag(parser: argparse.ArgumentParser) -> None:
    default = CameraSettings().allowed_networks
    parser.add_argument("--allow-network", action="append", default=[], metavar="CIDR",
                        help="network where cameras may be (repeatable) [default: the "
                        f"cameras.allowed_networks setting's default, {default}]; loopback "
                        "only when named, e.g. 127.0.0.0/8")


def policy_from(args: argparse.Namespace) -> AddressPolicy:
    networks = args.allow_network or CameraSettings().networks()
    return AddressPolicy.for_this_host(networks)


def _bounded(value: float, low: float, high: float, flag: str) -> float:
    if not (low <= value <= high):
        raise InvalidConfig(f"{flag} must be between {low:g} and {high:g} seconds")
    return value


def cmd_discover(args: argparse.Namespace) -> int:
    timeout = _bounded(args.timeout, 0.2, 60, "--timeout")
    found = probe(policy_from(args), timeout=timeout, addresses=args.address,
                  multicast=not args.address, interface=args.interface)
    if args.json:
        print(json.dumps({"devices": [d.to_json() for d in found]}, indent=1))
        return 0
    if not found:
        print(f"no ONVIF cameras answered within {timeout:g} s")
        return 0
    for dev in found:
        label = dev.name or "(no name)"
        extra = ", ".join(x for x in (dev.hardware, dev.location, dev.mac) if x)
        print(f"{dev.sender:<16} {label}" + (f"  [{extra}]" if extra else ""))
        print(f"  endpoint {dev.endpoint}")
        for xaddr in dev.xaddrs:
            verdict = f"  REFUSED: {xaddr.refused}" if xaddr.refused else ""
            print(f"  xaddr    {xaddr.url}{verdict}")
    return 0


def cmd_onvif_info(args: argparse.Namespace) -> int:
    timeout = _bounded(args.timeout, 1, 300, "--timeout")
    creds = None
    if args.user:
        if not args.password_file:
            raise InvalidConfig("onvif-info: --user needs --password-file (or - for stdin)")
        creds = Credentials(args.user, read_password(args.password_file))
    camera = onboard(args.xaddr, creds, policy_from(args), deadline_s=timeout,
                     timeouts=Timeouts(total=min(10.0, timeout)))
    if args.json:
        print(json.dumps(camera.to_json(), indent=1))
        return 0
    print(f"{camera.manufacturer or '?'} {camera.model or '?'}  firmware {camera.firmware or '?'}"
          f"  serial {camera.serial or '?'}")
    print(f"  endpoint  {camera.endpoint_reference or '(unknown)'}")
    print(f"  mac       {camera.mac or '(unknown)'}")
    for label, stream in (("main", camera.main), ("sub", camera.sub)):
        if stream is None:
            print(f"  {label:<9} (none)")
            continue
        shape = f"{stream.width or '?'}x{stream.height or '?'}@{stream.fps or '?'}"
        rate = f"{stream.bitrate_kbps} kb/s" if stream.bitrate_kbps else "? kb/s"
        print(f"  {label:<9} {stream.uri}  {stream.codec or '?'} {shape} {rate}")
    print(f"  snapshot  {camera.snapshot_uri or '(none)'}")
    if camera.clock_offset_s is not None and abs(camera.clock_offset_s) >= 1:
        print(f"  clock     {camera.clock_offset_s:+.0f} s from this box")
    for warning in camera.warnings:
        print(f"  warning: {warning}")
    return 0

