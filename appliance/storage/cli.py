"""`nvr health`, `nvr protect`, `nvr deletions`, `nvr retention`: storage from the shell."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from appliance.core.errors import InvalidConfig


def register(sub: argparse._SubParsersAction) -> None:
    health = sub.add_parser("health", help="storage health: data disk, retention forecast, "
                            "disks, RAID, SMART")
    health.add_argument("--data", required=True, help="data directory (recordings and index)")
    health.add_argument("--config", help="the recorder's TOML file (for retention limits)")
    health.add_argument("--no-devices", action="store_true",
                        help="skip disks, RAID and SMART (only the data directory)")
    health.add_argument("--json", action="store_true")
    health.set_defaults(func=cmd_health)

    protect = sub.add_parser("protect", help="mark footage as evidence: never deleted by "
                             "retention")
    protect.add_argument("--data", required=True)
    protect.add_argument("--camera", help="one camera (default: every camera)")
    protect.add_argument("--from", dest="start", help="start, ISO 8601 (local time unless it "
                         "has an offset), e.g. 2026-11-23T14:05:00")
    protect.add_argument("--to", dest="end", help="end, ISO 8601")
    protect.add_argument("--reason", default="", help="why (kept with the protection)")
    protect.add_argument("--list", action="store_true", help="list protections")
    protect.add_argument("--remove", type=int, metavar="ID", help="remove a protection")
    protect.add_argument("--json", action="store_true")
    protect.set_defaults(func=cmd_protect)

    deletions = sub.add_parser("deletions", help="the retention audit log: what was deleted, "
                               "when, by which rule")
    deletions.add_argument("--data", required=True)
    deletions.add_argument("--camera")
    deletions.add_argument("--limit", type=int, default=1000)
    deletions.add_argument("--json", action="store_true")
    deletions.set_defaults(func=cmd_deletions)

    retention = sub.add_parser("retention", help="retention controls")
    retention.add_argument("action", choices=["approve"],
                           help="approve: let the next large pass (stopped by the guard) run")
    retention.add_argument("--data", required=True)
    retention.set_defaults(func=cmd_retention)


def parse_time(text: str | None, what: str) -> int:
    if not text:
        raise InvalidConfig(f"{what}: a time is required (ISO 8601, e.g. 2026-11-23T14:05:00)")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidConfig(f"{what}: {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # the box's local time, as the owner reads it
    return int(moment.timestamp() * 1_000_000)


def _index(data: str):
    from appliance.recorder.index import RecordingIndex
    return RecordingIndex(Path(data))


def cmd_protect(args: argparse.Namespace) -> int:
    from appliance.cli import iso

    index = _index(args.data)
    try:
        if args.remove is not None:
            if not index.unprotect(args.remove):
                raise InvalidConfig(f"no protection with id {args.remove}")
            print(f"protection {args.remove} removed")
            return 0
        if args.list:
            rows = [{**p.__dict__, "start": iso(p.start_us), "end": iso(p.end_us)}
                    for p in index.protections()]
            if args.json:
                print(json.dumps({"protections": rows}, indent=1))
            for row in [] if args.json else rows:
                print(f"{row['id']:>5}  {row['camera'] or '(all)':<16} {row['start']} .. "
                      f"{row['end']}  {row['reason']}")
            return 0
        start, end = parse_time(args.start, "--from"), parse_time(args.end, "--to")
        if end <= start:
            raise InvalidConfig("--to must be after --from")
        now = int(datetime.now().timestamp() * 1_000_000)
        pid = index.protect(args.camera, start, end, args.reason, now)
        print(json.dumps({"id": pid}) if args.json else f"protection {pid} added")
        return 0
    finally:
        index.close()


def cmd_deletions(args: argparse.Namespace) -> int:
    from appliance.cli import iso

    index = _index(args.data)
    try:
        rows = [{**d.__dict__, "time": iso(d.time_us), "start": iso(d.start_us),
                 "end": iso(d.end_us)} for d in index.deletions(args.camera, args.limit)]
    finally:
        index.close()
    if args.json:
        print(json.dumps({"deletions": rows}, indent=1))
        return 0
    for row in rows:
        print(f"{row['time']}  {row['rule']:<17} {row['state']:<7} {row['bytes']:>11} B  "
              f"{row['path']}  ({row['detail']})")
    return 0


def cmd_retention(args: argparse.Namespace) -> int:
    from appliance.storage.retention.worker import APPROVAL_KEY

    index = _index(args.data)
    try:
        index.set_meta(APPROVAL_KEY, "1")
    finally:
        index.close()
    print("approved: the next retention pass runs even if it deletes more than the limit")
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    from appliance.config.recorder import load_config_file
    from appliance.config.storage import build_storage_settings
    from appliance.storage.health import storage_report

    storage_values: dict[str, Any] = {}
    cameras = []
    if args.config:
        loaded = load_config_file(Path(args.config))
        storage_values, cameras = loaded.storage, loaded.cameras
    settings = build_storage_settings(storage_values)
    report = storage_report(Path(args.data), settings,
                            {cam.name: cam.retention for cam in cameras},
                            devices=not args.no_devices)
    if args.json:
        print(json.dumps(report, indent=1, sort_keys=True))
        return 0
    from appliance.storage.health import render
    print(render(report))
    return 0
