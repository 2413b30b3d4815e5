"""`nvr`: the appliance's command line. Every listing has a `--json` form for scripts."""

from __future__ import annotations

import argparse
import faulthandler
import json
import signal
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from appliance import __version__
from appliance.config.model import describe
from appliance.config.recorder import (RecorderSettings, build_settings, check_unique,
                                       load_config_file, parse_camera_arg)
from appliance.config.storage import StorageSettings, build_storage_settings
from appliance.core.errors import VigilError
from appliance.core.logs import setup_logging
from appliance.cameras.manage_cli import DEFAULT_SECRETS, open_registry
from appliance.cameras.cli import register as register_onvif_commands
from appliance.cameras.manage_cli import register as register_camera_commands
from appliance.licensing.cli import add_licence_args
from appliance.licensing.cli import register as register_licence_commands
from appliance.mqtt.cli import register as register_mqtt_commands
from appliance.restream.cli import register as register_restream_commands
from appliance.update.cli import register_update_commands
from appliance.playback.export_cli import register as register_export_commands
from appliance.storage.cli import register as register_storage_commands
from appliance.system.cli import register as register_system_commands
from appliance.web.cli import register as register_web_commands


def iso(us: int | None) -> str | None:
    if us is None:
        return None
    return datetime.fromtimestamp(us / 1e6, timezone.utc).isoformat(timespec="milliseconds")


SETTINGS_SECTIONS = {"recorder": RecorderSettings, "storage": StorageSettings}


def parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """One --flag per setting of each section, generated from the settings models."""
    for section, cls in SETTINGS_SECTIONS.items():
        group = parser.add_argument_group(f"{section} settings (override the config file)")
        for name, default, text in describe(cls):
            kind = type(default)
            convert = parse_bool if kind is bool else kind if kind in (int, float) else str
            group.add_argument(f"--{name.replace('_', '-')}", dest=f"set_{section}__{name}",
                               default=None, type=convert, help=f"{text} [default {default}]")


def collect_settings(args: argparse.Namespace) -> tuple[RecorderSettings, StorageSettings]:
    sections: dict[str, dict[str, Any]] = {"recorder": {}, "storage": {}}
    cameras = []
    if args.config:
        loaded = load_config_file(Path(args.config))
        sections = {"recorder": loaded.recorder, "storage": loaded.storage}
        cameras = loaded.cameras
    for key, value in vars(args).items():
        if key.startswith("set_") and value is not None:
            section, name = key[4:].split("__")
            sections[section][name] = value
    cameras += [parse_camera_arg(text) for text in args.camera or []]
    cameras += registry_cameras(args)
    check_unique(cameras)
    args.cameras = cameras
    return build_settings(sections["recorder"]), build_storage_settings(sections["storage"])


def registry_cameras(args: argparse.Namespace) -> list:
    """The registry's cameras for the recorder (none without --registry)."""
    if not getattr(args, "registry", None):
        return []
    return open_registry(args).recorder_configs()


def camera_events(args: argparse.Namespace) -> Callable:
    """The cameras' own events (ONVIF PullPoint, or pushed by basic notification) for the recorder: one subscriber per
    registered ONVIF camera, writing into the recorder's index (appliance/events)."""
    from appliance.cameras.manage import (address_policy, load_camera_settings,
                                          open_camera_registry)
    from appliance.events.receiver import receiver_for
    from appliance.events.service import EventService

    config = Path(args.config) if args.config else None

    def build(index):
        settings = load_camera_settings(config)
        policy = address_policy(settings, this_host=True)
        return EventService(index, lambda: open_camera_registry(
            Path(args.registry), Path(args.secrets), config), policy,
            receiver=receiver_for(settings))
    return build


def run_until_signalled(start: Callable[[], None], tick: Callable[[], bool | None],
                        stop: Callable[[], Any], interval: float = 1.0) -> None:
    """Start, tick about once a second until SIGINT/SIGTERM (or until tick returns
    False), then stop cleanly."""
    stopping = threading.Event()

    def on_signal(signum, frame):  # noqa: ARG001 - signal handler signature
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        start()
        while not stopping.wait(interval):
            if tick() is False:
                break
    finally:
        stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def recording_settings_file(args: argparse.Namespace) -> Path | None:
    """The owner's recording modes: --recording-settings, else recording.json beside
    --config, else none (every camera records continuously)."""
    from appliance.recorder.recording_settings import recording_settings_path

    if getattr(args, "recording_settings", None):
        return Path(args.recording_settings)
    return recording_settings_path(Path(args.config)) if args.config else None


def cmd_record(args: argparse.Namespace) -> int:
    from appliance.recorder.service import Recorder
    from appliance.recorder.status import render

    settings, storage = collect_settings(args)
    if not args.cameras and not args.registry:
        raise VigilError("no cameras: give --camera NAME=rtsp://..., a --config file or a "
                         "--registry (cameras added later are picked up from it)")
    lock = threading.Lock()

    def emit(event: dict) -> None:
        with lock:
            sys.stdout.write(json.dumps(event) + "\n")
            sys.stdout.flush()

    from appliance.licensing.cli import open_store
    from appliance.storage.retention.overrides import overrides_path

    static = [cam for cam in args.cameras if cam not in registry_cameras(args)]

    def camera_source() -> list:
        cameras = static + registry_cameras(args)
        check_unique(cameras)
        return cameras

    recorder = Recorder(Path(args.data), args.cameras, settings,
                        emit=emit if args.events else None, storage=storage,
                        channel_limit=open_store(args).channel_limit,
                        camera_source=camera_source if args.registry else None,
                        retention_overrides=overrides_path(Path(args.config))
                        if args.config else None,
                        recording_settings=recording_settings_file(args),
                        events_factory=camera_events(args) if args.registry else None,
                        runtime_dir=Path(args.runtime_dir) if args.runtime_dir else None)
    show = not args.events and (args.status == "always" or
                                (args.status == "auto" and sys.stdout.isatty()))

    def tick() -> bool:
        views = recorder.tick()
        recording = sum(v.state == "recording" for v in views)
        recorder.notifier.status(f"waiting for the data disk: {recorder.waiting_for_volume}"
                                 if recorder.waiting_for_volume else
                                 f"{recording}/{len(views)} cameras recording")
        if show:
            clear = "\x1b[H\x1b[J" if sys.stdout.isatty() else ""
            print(clear + render(views), flush=True)
        return recorder.exit_code is None

    # SIGUSR1 prints every thread's stack to stderr (the journal): how a hang is diagnosed.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    run_until_signalled(recorder.start, tick, recorder.stop)
    return recorder.exit_code or 0


def cmd_segments(args: argparse.Namespace) -> int:
    from appliance.recorder.index import RecordingIndex

    index = RecordingIndex(Path(args.data), readonly=True)
    try:
        cameras = [args.camera] if args.camera else index.cameras()
        statuses = index.statuses()
        report = {}
        for cam in cameras:
            report[cam] = {
                "status": statuses.get(cam),
                "segments": [{**seg.__dict__, "start": iso(seg.start_us), "end": iso(seg.end_us)}
                             for seg in index.segments(cam)],
                "gaps": [{**gap.__dict__, "start": iso(gap.start_us), "end": iso(gap.end_us)}
                         for gap in index.gaps(cam)],
            }
    finally:
        index.close()
    if args.json:
        out = report[args.camera] | {"camera": args.camera} if args.camera else {"cameras": report}
        print(json.dumps(out, indent=1))
        return 0
    for cam, data in report.items():
        spans = sorted([(s["start_us"], "segment", s) for s in data["segments"]] +
                       [(g["start_us"], "gap", g) for g in data["gaps"]], key=lambda x: x[0])
        print(f"== {cam}: {len(data['segments'])} segments, {len(data['gaps'])} gaps")
        for _, kind, item in spans:
            if kind == "segment":
                print(f"  {item['start']} .. {item['end']}  {item['bytes']:>10} B  "
                      f"{item['status']:<9} {item['path']}")
            else:
                print(f"  {item['start']} .. {item['end'] or 'now':<29}  gap: {item['cause']} "
                      f"({item['detail']})")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from appliance.devmode import run_dev

    return run_dev(Path(args.var), cameras=args.cameras, port=args.port, web_port=args.web_port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nvr", description="Vigil NVR appliance")
    parser.add_argument("--version", action="version", version=f"nvr {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", required=True)

    rec = sub.add_parser("record", help="record cameras in the foreground")
    rec.add_argument("--data", required=True, help="data directory (recordings and index)")
    rec.add_argument("--camera", action="append", metavar="NAME=URL",
                     help="a camera to record (repeatable); rtsp:// or rtsps:// only")
    rec.add_argument("--config", help="TOML file with [recorder] and [storage] settings and "
                     "[[camera]] entries")
    rec.add_argument("--registry", help="also record the cameras of this camera registry "
                     "(cameras.json; credentials from --secrets)")
    rec.add_argument("--secrets", default=DEFAULT_SECRETS,
                     help="directory of the cameras' credentials (mode 0700)")
    add_licence_args(rec)
    rec.add_argument("--status", choices=["auto", "always", "never"], default="auto",
                     help="console status table (auto: when stdout is a terminal)")
    rec.add_argument("--events", action="store_true",
                     help="print one JSON object per event on stdout (state, durable, segment, gap)")
    rec.add_argument("--recording-settings", metavar="JSON",
                     help="the owner's recording modes per camera (default: recording.json "
                     "beside --config; none: every camera records continuously)")
    rec.add_argument("--runtime-dir", metavar="DIR",
                     help="a directory kept across the recorder's restarts but not on the data "
                     "disk (systemd's RuntimeDirectory): there it notes a data disk lost, so "
                     "the gap until the disk is back says so instead of 'power loss or crash'")
    add_settings_flags(rec)
    rec.set_defaults(func=cmd_record)

    seg = sub.add_parser("segments", help="list recorded segments and gaps")
    seg.add_argument("--data", required=True)
    seg.add_argument("--camera")
    seg.add_argument("--json", action="store_true")
    seg.set_defaults(func=cmd_segments)

    register_storage_commands(sub)
    register_system_commands(sub)
    register_camera_commands(sub)
    register_onvif_commands(sub)
    register_licence_commands(sub)
    register_export_commands(sub)
    register_web_commands(sub)
    register_mqtt_commands(sub)
    register_restream_commands(sub)
    register_update_commands(sub)

    run = sub.add_parser("run", help="development mode: simulated board and cameras, recorder")
    run.add_argument("--var", default="var", help="working directory (cache/, data/)")
    run.add_argument("--cameras", type=int, default=2, help="number of simulated cameras")
    run.add_argument("--port", type=int, default=8554, help="RTSP port of the simulated cameras")
    run.add_argument("--web-port", type=int, default=8080, help="port of the web API (loopback)")
    run.set_defaults(func=cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        return args.func(args)
    except VigilError as exc:
        print(f"nvr: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
