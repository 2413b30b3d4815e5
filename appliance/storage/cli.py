"""`nvr health`, `nvr protect`, `nvr deletions`, `nvr retention`: storage from the shell."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path

from appliance.core.control import ControlServer
from appliance.core.errors import FailedPrecondition, InvalidConfig

DEFAULT_MOUNTPOINT = "/srv/vigil"
DEFAULT_VOLUMES = "/persist/config/data-volumes.json"
DEFAULT_STATE = "/persist/state/storage"
DEFAULT_SMART_HISTORY = "/persist/state/storage/smart-history.json"


def register(sub: argparse._SubParsersAction) -> None:
    health = sub.add_parser("health", help="storage health: data disk, retention forecast, "
                            "disks, RAID, SMART")
    health.add_argument("--data", required=True, help="data directory (recordings and index)")
    health.add_argument("--config", help="the recorder's TOML file (for retention limits)")
    health.add_argument("--no-devices", action="store_true",
                        help="skip disks, RAID and SMART (only the data directory)")
    health.add_argument("--state", default=DEFAULT_STATE,
                        help="vigil-hwd's state directory (data disk hotplug states)")
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

    disks = sub.add_parser("disks", help="list disks; initialise a data disk or a RAID1 pair")
    disks.add_argument("action", nargs="?", choices=["list", "initialise"], default="list")
    disks.add_argument("--disk", action="append", default=[], metavar="DEVICE|SERIAL|WWN",
                       help="initialise: the disk (twice with --raid1)")
    disks.add_argument("--raid1", action="store_true", help="initialise: mirror two disks")
    disks.add_argument("--confirm", metavar="TOKEN",
                       help="initialise: the token printed by the same command without it")
    disks.add_argument("--mountpoint", default=DEFAULT_MOUNTPOINT)
    disks.add_argument("--volumes", default=DEFAULT_VOLUMES,
                       help="where the box remembers its data volume (persist partition)")
    disks.add_argument("--include-virtual", action="store_true",
                       help="also list loop and virtual disks (tests, VMs)")
    disks.add_argument("--min-size-gib", type=float, default=8.0,
                       help="initialise: refuse smaller disks")
    disks.add_argument("--json", action="store_true")
    disks.set_defaults(func=cmd_disks)

    hwd = sub.add_parser("hwd", help="the hardware daemon: disks, hotplug, RAID and SMART "
                         "(vigil-hwd)")
    hwd.add_argument("--state", default=DEFAULT_STATE, help="snapshot and alert log directory")
    hwd.add_argument("--volumes", default=DEFAULT_VOLUMES)
    hwd.add_argument("--smart-history", default=DEFAULT_SMART_HISTORY)
    hwd.add_argument("--smart-every", type=float, default=1800.0, help="seconds between SMART reads")
    hwd.add_argument("--board", default=None,
                     help="board profile for the PoE controllers (default: /etc/vigil/board)")
    hwd.add_argument("--config", help="the appliance TOML file ([poe] settings)")
    hwd.add_argument("--data", default="/srv/vigil/data",
                     help="the recorder's data directory (camera states for stall recovery)")
    hwd.add_argument("--registry", default="/persist/config/cameras.json",
                     help="the camera registry (which camera is on which PoE port)")
    hwd.add_argument("--stall-seconds", type=float, default=120.0,
                     help="power-cycle a camera's PoE port after this long without video")
    hwd.add_argument("--secrets", default="/persist/secrets/cameras",
                     help="the cameras' credentials (PoE auto-adoption stores new ones)")
    hwd.add_argument("--licence", default="/persist/licence/licence.txt",
                     help="the installed licence (auto-adoption respects the channel count)")
    hwd.add_argument("--control", default="/run/vigil/hwd.sock",
                     help="the control socket vigil-web and nvr send commands to")
    hwd.add_argument("--control-group", default=None,
                     help="the group that may use the control socket (the web server's)")
    hwd.add_argument("--tls-dir", default="/persist/tls",
                     help="the web server's certificate (a factory reset erases its key)")
    hwd.add_argument("--system-root", default="/",
                     help="where system settings are rendered (/run/systemd/...): the root")
    hwd.add_argument("--system-mounts", action="store_true",
                     help="mount and read mounts in PID 1's mount namespace (the box: "
                     "vigil-hwd runs sandboxed, its own mounts would stay private)")
    hwd.set_defaults(func=cmd_hwd)

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
    from appliance.storage.health import storage_report
    from appliance.storage.retention.overrides import retention_in_force

    # The TOML and the owner's changes beside it (retention.json), as the recorder applies them.
    retention = retention_in_force(Path(args.config) if args.config else None)
    report = storage_report(Path(args.data), retention.settings, retention.cameras,
                            devices=not args.no_devices, state_dir=Path(args.state))
    if args.json:
        print(json.dumps(report, indent=1, sort_keys=True))
        return 0
    from appliance.storage.health import render
    print(render(report))
    return 0


def cmd_disks(args: argparse.Namespace) -> int:
    from appliance.storage.disks import list_disks

    disks = list_disks(include_virtual=args.include_virtual)
    if args.action == "initialise":
        return _initialise(args, disks)
    if args.json:
        print(json.dumps({"disks": [d.to_json() for d in disks]}, indent=1))
        return 0
    for d in disks:
        flags = [f for f, on in (("boot media", d.is_boot_media), ("in use", d.mountpoints),
                                 ("RAID member", d.md_holders)) if on]
        print(f"{d.device_node:<14} {d.label:<40} {d.size_bytes / 1e9:9.1f} GB  {d.bus:<6} "
              f"{', '.join(flags)}")
    return 0


def pick_disks(disks, wanted: list[str]):
    chosen = []
    for text in wanted:
        found = [d for d in disks if text in (d.device_node, d.serial, d.wwn, d.identity)]
        if not found:
            raise InvalidConfig(f"--disk {text}: no such disk (see `nvr disks`)")
        chosen.append(found[0])
    return chosen


def _initialise(args: argparse.Namespace, disks) -> int:
    from appliance.storage.initialise import (complete_initialise, plan_initialise,
                                              run_initialise)

    if not args.disk:
        raise InvalidConfig("initialise: name the disk with --disk (see `nvr disks`)")
    plan = plan_initialise(pick_disks(disks, args.disk), args.raid1, mountpoint=args.mountpoint,
                           min_size_bytes=int(args.min_size_gib * 1024 ** 3))
    if args.confirm is None:
        print(json.dumps(plan.to_json(), indent=1) if args.json else
              plan.describe() + f"\nRun the same command with --confirm {plan.token} to go ahead.")
        return 0

    def progress(index: int, count: int, name: str, percent: float) -> None:
        if not args.json:
            print(f"[{index}/{count}] {name} {percent:.0f} %", flush=True)

    result = run_initialise(plan, args.confirm, progress)
    complete_initialise(result, Path(args.volumes))
    print(json.dumps(result.to_json()) if args.json else
          f"data disk ready: {result.device} (filesystem {result.fs_uuid}) at {result.mountpoint}")
    return 0


def cmd_hwd(args: argparse.Namespace) -> int:
    import signal
    import threading

    from appliance.core.commands import run_command
    from appliance.core.sdnotify import SystemdNotifier
    from appliance.storage.disks import DataVolume, use_mount_table
    from appliance.storage.monitor import StorageMonitor
    from appliance.storage.mount_namespace import PID1_MOUNT_TABLE, system_mounts_runner
    from appliance.storage.volume import load_volumes

    runner = run_command
    if args.system_mounts:
        runner = system_mounts_runner(run_command)
        use_mount_table(PID1_MOUNT_TABLE)
    volumes = [DataVolume(v["uuid"], v["mountpoint"]) for v in load_volumes(Path(args.volumes))]
    monitor = StorageMonitor(Path(args.state), Path(args.smart_history), volumes,
                             smart_every=args.smart_every, runner=runner)
    poe = start_poe(args, monitor.alerts.add)
    def initialised(result) -> None:
        # A disk initialised from now on is watched at once, not after the next start.
        monitor.add_volume(DataVolume(result.fs_uuid, result.mountpoint))

    control = ControlServer(Path(args.control), hwd_handlers(args, poe, runner, initialised),
                            group=args.control_group).start()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    notifier = SystemdNotifier()
    notifier.ready()
    try:
        monitor.run(stop)
    except OSError as exc:
        raise FailedPrecondition(f"the storage monitor cannot run: {exc}") from None
    finally:
        notifier.stopping()
        control.close()
        if poe is not None:
            if poe.adoption is not None:
                poe.adoption.close()
            poe.close()
    return 0


def hwd_handlers(args: argparse.Namespace, poe, runner, on_initialised=None) -> dict:
    """The commands vigil-hwd answers on its control socket (DESIGN.md, Processes)."""
    from appliance.fleet_control import control_handlers as fleet_handlers
    from appliance.storage.control import control_handlers as storage_handlers

    handlers = storage_handlers(Path(args.volumes), Path(args.state), runner=runner,
                                on_initialised=on_initialised)
    handlers.update(system_handlers(args))
    handlers.update(update_handlers(args))
    handlers.update(fleet_handlers(Path(args.volumes).parent, Path(args.secrets).parent))
    if poe is not None:
        from appliance.poe.control import control_handlers as poe_handlers
        from appliance.poe.port_choices import PortChoices, choices_path

        handlers.update(poe_handlers(poe.manager, PortChoices(choices_path(
            Path(args.volumes).parent))))
    return handlers


def update_handlers(args: argparse.Namespace) -> dict:
    """Field updates (appliance/update): install an uploaded bundle, show the slots."""
    from appliance.update.cli import STATE_DIR, system_service
    from appliance.update.control import control_handlers

    def service():
        return system_service(argparse.Namespace(state=str(STATE_DIR), data=args.data,
                                                 backend=None))

    return control_handlers(service, Path(args.data) / "update-upload")


def system_handlers(args: argparse.Namespace) -> dict:
    """Host name, time, network, backup/restore and factory reset (appliance/system)."""
    from hw.board import load_profile

    from appliance.licensing.cli import default_board
    from appliance.system.backends import HostSystem
    from appliance.system.control import control_handlers
    from appliance.system.paths import SystemPaths

    profile = load_profile(args.board or default_board())
    lan = profile.get("pse", {}).get("uplink_interface", "eth0")
    return control_handlers(HostSystem(Path(args.system_root)), SystemPaths(
        config_dir=Path(args.volumes).parent, camera_secrets=Path(args.secrets),
        adoption_secrets=Path(args.secrets).parent / "adoption",
        mqtt_secrets=Path(args.secrets).parent / "mqtt", data_dir=Path(args.data),
        tls_dir=Path(args.tls_dir), lan_interface=lan))


def start_poe(args: argparse.Namespace, alert_sink):
    """The PoE manager's thread, when the board has PoE controllers."""
    from hw.board import load_profile

    from appliance.config.recorder import load_config_file

    from appliance.licensing.cli import default_board
    from appliance.poe.runtime import PoeService, build_manager, recorder_stall_check

    from appliance.cameras.credentials import CredentialStore
    from appliance.cameras.registry import CameraRegistry
    from appliance.config.cameras import build_camera_settings
    from appliance.licensing.cli import open_store
    from appliance.poe.adoption import AdoptionService, build_adopter, split_adoption_settings
    from appliance.poe.port_choices import choices_path

    profile = load_profile(args.board or default_board())
    if "pse" not in profile:
        return None
    config = load_config_file(Path(args.config)) if args.config else None
    poe_values, adoption = split_adoption_settings(config.poe if config else {})
    manager, _ = build_manager(profile, poe_values, alert_sink=alert_sink,
                               choices=choices_path(Path(args.volumes).parent))
    registry = CameraRegistry(Path(args.registry), CredentialStore(Path(args.secrets)),
                              build_camera_settings(config.camera_settings if config else {}),
                              channel_limit=open_store(args).channel_limit)

    def camera_ports() -> dict:
        return {c.id: c.poe_port for c in registry.cameras() if c.poe_port}

    check = recorder_stall_check(manager, Path(args.data), camera_ports, args.stall_seconds)
    service = PoeService(manager, Path(args.state), after_poll=check)
    service.adoption = None
    if adoption.enabled:
        service.adoption = AdoptionService(
            build_adopter(manager, registry, adoption, alert_sink=alert_sink), Path(args.state))
        service.adoption.start()  # before the first poll: what is already there is baseline
    service.start()
    return service
