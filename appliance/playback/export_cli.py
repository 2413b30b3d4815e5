"""`nvr export`, `nvr verify-export`, `nvr device-key`: tamper-evident export from the shell."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from appliance.core.device_key import DEFAULT_PATH

EXIT_PROBLEMS = 1
EXIT_CANCELLED = 130


def register(sub: argparse._SubParsersAction) -> None:
    exp = sub.add_parser("export", help="export recorded footage to MP4 files with a manifest "
                         "signed by this box (Ctrl-C cancels)")
    exp.add_argument("--data", required=True, help="data directory (recordings and index)")
    exp.add_argument("--camera", action="append", required=True, metavar="NAME",
                     help="a camera to export (repeatable)")
    exp.add_argument("--from", dest="start", required=True,
                     help="start, ISO 8601 (local time unless it has an offset)")
    exp.add_argument("--to", dest="end", required=True, help="end, ISO 8601")
    exp.add_argument("--out", required=True,
                     help="the export directory to create (must not exist, or be empty)")
    exp.add_argument("--key", default=str(DEFAULT_PATH),
                     help="the device key (generated there at first use)")
    exp.add_argument("--serial", help="the board serial for the manifest (default: read "
                     "from the board)")
    exp.add_argument("--json", action="store_true", help="print the result as JSON")
    exp.set_defaults(func=cmd_export)

    ver = sub.add_parser("verify-export", help="check an export offline: signature, file "
                         "hashes, the source segments' hash chain, missing and extra files")
    ver.add_argument("directory", help="the export directory")
    ver.add_argument("--fingerprint", help="also require this device key fingerprint (as "
                     "the box shows it)")
    ver.add_argument("--json", action="store_true")
    ver.set_defaults(func=cmd_verify)

    key = sub.add_parser("device-key", help="show this box's device key fingerprint (what "
                         "verify-export prints), generating the key at first use")
    key.add_argument("--key", default=str(DEFAULT_PATH))
    key.add_argument("--json", action="store_true")
    key.set_defaults(func=cmd_device_key)


def _serial(given: str | None) -> str:
    if given:
        return given
    from hw.board import load_profile
    from hw.identity import NoBoardSerial, board_serial

    from appliance.licensing.cli import default_board

    try:
        return board_serial(load_profile(default_board()))
    except (NoBoardSerial, OSError, ValueError):
        return "unknown"


def cmd_export(args: argparse.Namespace) -> int:
    from appliance.core.device_key import load_or_create
    from appliance.playback.export import ExportJob, ExportState
    from appliance.recorder.index import RecordingIndex
    from appliance.storage.cli import parse_time

    start, end = parse_time(args.start, "--from"), parse_time(args.end, "--to")
    key = load_or_create(Path(args.key))
    index = RecordingIndex(Path(args.data))
    try:
        job = ExportJob(index, Path(args.data), args.camera, start, end, Path(args.out),
                        key=key, serial=_serial(args.serial))
        _run(job, show=not args.json)
    finally:
        index.close()
    if args.json:
        print(json.dumps({**job.describe(), "fingerprint": key.fingerprint,
                          "files": [str(p) for p in job.files]}, indent=1))
    if job.state == ExportState.CANCELLED:
        print("export cancelled; nothing was left behind", file=sys.stderr)
        return EXIT_CANCELLED
    if job.state != ExportState.DONE:
        print(f"nvr export: failed: {job.error}", file=sys.stderr)
        return EXIT_PROBLEMS
    if not args.json:
        for path in job.files:
            print(path)
        print(f"export {job.export_id} done in {job.out_dir}; signed by device key "
              f"{key.fingerprint}")
        print("the exported range stays protected from retention until removed with "
              "`nvr protect --remove ID` (IDs: " +
              ", ".join(str(i) for i in job.protection_ids.values()) + ")")
    return 0


def _run(job, show: bool) -> None:
    """Start the job and wait, showing progress; SIGINT/SIGTERM cancel it."""
    def on_signal(signum, frame):  # noqa: ARG001 - signal handler signature
        job.cancel()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    tty = sys.stderr.isatty()
    shown = -1
    try:
        job.start()
        while not job.wait(0.5):
            percent = int(job.progress * 100)
            if show and (tty or percent // 10 != shown // 10) and percent != shown:
                end = "\r" if tty else "\n"
                print(f"exporting: {percent:3d}%", end=end, file=sys.stderr, flush=True)
                shown = percent
        if show and tty:
            print(file=sys.stderr)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def cmd_verify(args: argparse.Namespace) -> int:
    from appliance.playback.manifest import verify_export

    report = verify_export(Path(args.directory), args.fingerprint)
    if args.json:
        print(json.dumps(report.to_json(), indent=1))
        return 0 if report.ok else EXIT_PROBLEMS
    print(f"export {report.export_id or '?'} from box {report.serial or '?'}, "
          f"created {report.created or '?'}")
    print(f"device key fingerprint: {report.fingerprint or '?'}  (compare it with the one "
          "the box shows: `nvr device-key`)")
    print(f"signature: {report.signature}; {report.files_checked} file(s) and "
          f"{report.segments_checked} source segment(s) checked")
    for note in report.notes:
        print(f"note: {note}")
    for problem in report.problems:
        print(f"FAIL: {problem}")
    print("OK: the export is intact" if report.ok else
          f"NOT OK: {len(report.problems)} problem(s)")
    return 0 if report.ok else EXIT_PROBLEMS


def cmd_device_key(args: argparse.Namespace) -> int:
    from appliance.core.device_key import load_or_create

    key = load_or_create(Path(args.key))
    if args.json:
        print(json.dumps({"fingerprint": key.fingerprint, "public_key": key.public_b64,
                          "path": str(key.path)}, indent=1))
        return 0
    print(f"device key fingerprint: {key.fingerprint}")
    print(f"public key (base64, raw Ed25519): {key.public_b64}")
    return 0
