"""`nvr restream`: `urls` shows each camera's restream URLs (the user, not the password
unless --show-password); `run` is the daemon (unit vigil-restream); `enabled` answers
whether the owner switched the restream on (exit 0) or not (exit 1), for the unit's
ExecCondition=."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from appliance.core.errors import DataLoss, InvalidConfig
from appliance.restream.login import DEFAULT_LOGIN, RestreamLogin
from appliance.restream.plan import AUTH_METHODS, DEFAULT_AUTH_METHODS, DEFAULT_PORT
from appliance.restream.settings import DEFAULT_SETTINGS, load_enabled

DEFAULT_REGISTRY = "/persist/config/cameras.json"
DEFAULT_SECRETS = "/persist/secrets/cameras"


def register(sub: argparse._SubParsersAction) -> None:
    restream = sub.add_parser("restream", help="each camera's streams served on the LAN for a "
                              "VMS (urls: show them; run: the daemon; enabled: exit 0 "
                              "when the owner switched it on, 1 when not)")
    restream.add_argument("action", nargs="?", default="urls",
                          choices=["urls", "run", "enabled"])
    restream.add_argument("--settings", default=DEFAULT_SETTINGS,
                          help="enabled: the owner's switch (JSON, off without the file)")
    restream.add_argument("--registry", default=DEFAULT_REGISTRY)
    restream.add_argument("--secrets", default=DEFAULT_SECRETS,
                          help="directory of the cameras' credentials (mode 0700)")
    restream.add_argument("--config", help="the appliance TOML file ([cameras] settings)")
    restream.add_argument("--login", default=DEFAULT_LOGIN,
                          help="the restream user and password (made at the first run, 0600)")
    restream.add_argument("--listen", default="0.0.0.0", help="run: address to listen on")
    restream.add_argument("--port", type=int, default=DEFAULT_PORT, help="RTSP port")
    restream.add_argument("--auth", action="append", choices=AUTH_METHODS, metavar="METHOD",
                          help="run: RTSP authentication offered, digest and/or basic "
                          f"(repeatable) [default: {' '.join(DEFAULT_AUTH_METHODS)}]")
    restream.add_argument("--host", help="urls: the box's address in the URLs [default: its "
                          "first LAN address]")
    restream.add_argument("--show-password", action="store_true",
                          help="urls: put the password into the URLs (for the admin at the "
                          "console; anyone who sees it can watch every camera)")
    restream.add_argument("--json", action="store_true")
    restream.set_defaults(func=cmd_restream)


def open_registry(args: argparse.Namespace):
    from appliance.cameras.manage import open_camera_registry

    return open_camera_registry(Path(args.registry), Path(args.secrets),
                                Path(args.config) if args.config else None)


def cmd_restream(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise InvalidConfig("--port must be from 1 to 65535")
    if args.action == "run":
        return run(args)
    if args.action == "enabled":
        return enabled(args)
    return urls(args)


def enabled(args: argparse.Namespace) -> int:
    """0 when switched on, 1 when off. systemd skips the unit's start on 1 without marking
    it failed, and does not restart it; a damaged switch counts as off (said on stderr)."""
    try:
        on = load_enabled(Path(args.settings))
    except DataLoss as exc:
        print(f"nvr: the restream stays off: {exc}", file=sys.stderr)
        return 1
    if not on:
        print(f"the restream is off ({args.settings})", file=sys.stderr)
    return 0 if on else 1


def urls(args: argparse.Namespace) -> int:
    from appliance.restream.plan import box_address, plan_from_registry, url_table

    login = RestreamLogin(Path(args.login)).require()
    mounts, skipped = plan_from_registry(open_registry(args))
    host = args.host or box_address()
    rows = url_table(mounts, skipped, host, args.port, login, args.show_password)
    if args.json:
        out = {"user": login.username, "host": host, "port": args.port, "cameras": rows}
        if args.show_password:
            out["password"] = login.password
        print(json.dumps(out, indent=1))
        return 0
    for row in rows:
        for stream in ("main", "sub"):
            if stream in row:
                print(f"{row['camera']:<16} {stream:<4} {row[stream]}")
            elif stream in row["skipped"]:
                print(f"{row['camera']:<16} {stream:<4} not served: {row['skipped'][stream]}")
    if not rows:
        print("no cameras yet")
    if not args.show_password:
        print(f"user {login.username}; the password: nvr restream urls --show-password")
    return 0


def run(args: argparse.Namespace) -> int:
    from appliance.cli import run_until_signalled
    from appliance.core.sdnotify import SystemdNotifier
    from appliance.restream.supervisor import RestreamSupervisor

    supervisor = RestreamSupervisor(open_registry(args), RestreamLogin(Path(args.login)),
                                    args.listen, args.port,
                                    auth_methods=tuple(args.auth or DEFAULT_AUTH_METHODS))
    notifier = SystemdNotifier()

    def start() -> None:
        supervisor.start()
        notifier.ready()

    def tick() -> None:
        supervisor.tick()
        notifier.watchdog()

    run_until_signalled(start, tick, supervisor.stop, interval=2.0)
    return 0
