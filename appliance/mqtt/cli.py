"""`nvr mqtt`: the MQTT daemon (`run`, unit vigil-mqtt), `check` of the owner's settings,
and `credentials` (the broker's user name, with the password read from stdin)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from appliance.core.errors import InvalidConfig

DEFAULT_SETTINGS = "/persist/config/mqtt.json"
DEFAULT_SECRETS = "/persist/secrets/mqtt"
DEFAULT_FALLBACK_QUEUE = "/run/vigil-mqtt/queue.sqlite3"


def register(sub: argparse._SubParsersAction) -> None:
    mqtt = sub.add_parser("mqtt", help="events to an MQTT broker, with Home Assistant "
                                       "discovery (run: the daemon)")
    mqtt.add_argument("action", nargs="?", default="run", choices=["run", "check", "credentials"])
    mqtt.add_argument("--settings", default=DEFAULT_SETTINGS, help="the owner's MQTT settings "
                      "(JSON; docs/design/mqtt.md)")
    mqtt.add_argument("--secrets", default=DEFAULT_SECRETS,
                      help="directory of the broker's user name and password (mode 0700)")
    mqtt.add_argument("--data", default="/srv/vigil/data",
                      help="data directory: the recorder's index, and the queue")
    mqtt.add_argument("--state", default="/persist/state/storage",
                      help="vigil-hwd's state directory (alert log, storage and PoE snapshots)")
    mqtt.add_argument("--fallback-queue", default=DEFAULT_FALLBACK_QUEUE,
                      help="the queue while there is no data disk (in RAM)")
    mqtt.add_argument("--allow-boot-media", action="store_true",
                      help="treat --data as a data disk even without its marker (development)")
    mqtt.add_argument("--board", default=None,
                      help="board profile (default: /etc/vigil/board, else sim)")
    mqtt.add_argument("--poll-interval", type=float, default=1.0,
                      help="seconds between two collections of events (0.1-10)")
    mqtt.add_argument("--username", help="credentials: the broker's user name (the password "
                      "is read from stdin, one line)")
    mqtt.add_argument("--clear", action="store_true", help="credentials: forget them")
    mqtt.add_argument("--json", action="store_true")
    mqtt.set_defaults(func=cmd_mqtt)


def cmd_mqtt(args: argparse.Namespace) -> int:
    if args.action == "credentials":
        return set_credentials(args)
    if args.action == "check":
        return check(args)
    return run(args)


def paths_from(args: argparse.Namespace):
    from appliance.mqtt.service import MqttPaths

    return MqttPaths(settings=Path(args.settings), secrets=Path(args.secrets),
                     data_dir=Path(args.data), hwd_state=Path(args.state) if args.state else None,
                     fallback_queue=Path(args.fallback_queue),
                     allow_boot_media=args.allow_boot_media)


def run(args: argparse.Namespace) -> int:
    from appliance.cli import run_until_signalled
    from appliance.mqtt.service import MqttService, box_identity

    if not 0.1 <= args.poll_interval <= 10:
        raise InvalidConfig("--poll-interval must be from 0.1 to 10 seconds")
    service = MqttService(paths_from(args), box_identity(args.board))
    run_until_signalled(service.start, service.tick, service.stop, interval=args.poll_interval)
    return service.exit_code or 0


def check(args: argparse.Namespace) -> int:
    """The settings as the daemon would apply them, or the reason they are refused."""
    from dataclasses import asdict

    from appliance.mqtt.service import box_identity
    from appliance.mqtt.settings import load_credentials, load_settings

    settings = load_settings(Path(args.settings))
    credentials = load_credentials(Path(args.secrets))
    identity = box_identity(args.board)
    report = {"settings": asdict(settings), "port": settings.effective_port,
              "topic_prefix": settings.prefix(identity.hostname),
              "username": credentials.username if credentials else None,
              "node_id": identity.node_id}
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    if not settings.enabled:
        print(f"MQTT is off ({args.settings}: "
              f"{'enabled is false' if Path(args.settings).exists() else 'no file'})")
        return 0
    tls = ("on, CA " + (settings.ca_file or "of the system")) if settings.tls else "OFF"
    discovery = f"under {settings.discovery_prefix}" if settings.discovery else "off"
    print(f"broker {settings.host}:{settings.effective_port}, TLS {tls}, "
          f"user {report['username'] or '(none)'}")
    print(f"events: {report['topic_prefix']}/event/<kind>; Home Assistant discovery {discovery}")
    return 0


def set_credentials(args: argparse.Namespace) -> int:
    from appliance.cameras.credentials import Credentials
    from appliance.mqtt.settings import delete_credentials, save_credentials

    secrets = Path(args.secrets)
    if args.clear:
        delete_credentials(secrets)
        print("the broker's credentials are forgotten")
        return 0
    if not args.username:
        raise InvalidConfig("credentials: give --username (and the password on stdin), "
                            "or --clear")
    password = sys.stdin.readline().rstrip("\n")
    if not password:
        raise InvalidConfig("credentials: no password on stdin")
    save_credentials(secrets, Credentials(args.username, password))
    hand_to_directory_owner(secrets)
    print(f"the broker's credentials are saved (user {args.username})")
    return 0


def hand_to_directory_owner(secrets: Path) -> None:
    """Run as root (on the box, over SSH), the files are given to the directory's owner
    (vigil, who runs the daemon: the unit creates the directory for it)."""
    if os.geteuid() != 0:
        return
    owner = secrets.stat()
    for path in secrets.iterdir():
        os.chown(path, owner.st_uid, owner.st_gid)
