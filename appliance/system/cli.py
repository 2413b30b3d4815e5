"""`nvr system apply` (the boot step) and `nvr system show`.

At boot the image runs `nvr system apply` once, after /persist is mounted and before
systemd-networkd and systemd-timesyncd start (docs/design/system.md has the unit): it
finishes a restore a power cut interrupted, then renders system.json into /run and
sets the host name. A damaged system.json does not leave the box unreachable: the
defaults (DHCP) are applied and the reason is printed (exit code 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from appliance.core.errors import DataLoss


def add_paths_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config-dir", default="/persist/config",
                        help="where system.json and the other configuration files are")
    parser.add_argument("--secrets", default="/persist/secrets/cameras",
                        help="the cameras' credentials (a restore may have staged them)")
    parser.add_argument("--adoption-secrets", default="/persist/secrets/adoption")
    parser.add_argument("--lan-interface", default="eth0", help="the board's LAN port")
    parser.add_argument("--default-hostname", default="vigil",
                        help="the host name while none is set (and after a factory reset)")


def system_paths(args: argparse.Namespace):
    from appliance.system.paths import SystemPaths

    return SystemPaths(config_dir=Path(args.config_dir), camera_secrets=Path(args.secrets),
                       adoption_secrets=Path(args.adoption_secrets),
                       mqtt_secrets=Path(args.adoption_secrets).parent / "mqtt",
                       lan_interface=args.lan_interface,
                       default_hostname=args.default_hostname)


def register(sub: argparse._SubParsersAction) -> None:
    system = sub.add_parser("system", help="host name, time and network of the box: apply "
                            "the stored settings (boot step) or show them")
    system.add_argument("action", choices=["apply", "show"])
    add_paths_args(system)
    system.add_argument("--root", default="/", help="apply: write the /run files under this "
                        "root (the box: /)")
    system.add_argument("--sandbox", help="apply: development, write under this directory "
                        "and only list the commands")
    system.add_argument("--json", action="store_true")
    system.set_defaults(func=cmd_system)


def cmd_system(args: argparse.Namespace) -> int:
    from appliance.system.apply import apply_settings
    from appliance.system.backends import HostSystem, SandboxSystem
    from appliance.system.settings import SystemSettings, check_hostname, load_settings
    from appliance.system.transaction import recover

    paths = system_paths(args)
    default = SystemSettings(hostname=check_hostname(args.default_hostname))
    problems, notes = [], []
    if args.action == "apply":
        try:
            if recover(paths.journal, paths.transaction_dirs()):
                notes.append("finished a configuration restore that a power cut had "
                             "interrupted")
        except (OSError, DataLoss) as exc:
            problems.append(f"an interrupted restore could not be finished ({exc})")
    try:
        settings = load_settings(paths.settings, paths.zoneinfo, default)
    except DataLoss as exc:
        settings = default
        problems.append(f"{exc}; applied the defaults")
    if args.action == "show":
        print(json.dumps(settings.to_json(), indent=1) if args.json else
              f"host name {settings.hostname}\ntime zone {settings.time.timezone}, NTP "
              f"{'on' if settings.time.ntp else 'off'} "
              f"{' '.join(settings.time.ntp_servers) or '(default servers)'}\n"
              f"network {settings.network.summary()}")
        return 0
    system = SandboxSystem(Path(args.sandbox)) if args.sandbox else HostSystem(Path(args.root))
    report = apply_settings(system, settings, paths.lan_interface, boot=True)
    problems += report.problems
    if args.json:
        print(json.dumps({"settings": settings.to_json(), "ran": report.ran,
                          "problems": problems, "notes": notes}, indent=1))
    else:
        print(f"applied: {settings.hostname}, {settings.time.timezone}, "
              f"{settings.network.summary()}")
        for note in notes:
            print(note)
        for problem in problems:
            print(f"problem: {problem}", file=sys.stderr)
    return 1 if problems else 0
