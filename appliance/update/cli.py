"""`nvr update ...`: install a bundle, show the slots, and the pieces the image runs.

    nvr update status [--json]          slots, versions, the last result
    nvr update apply BUNDLE [--no-reboot]
    nvr update boot                     vigil-update.service: health gate / commit / rollback
    nvr update rauc-config              vigil-rauc-config.service: /run/vigil/rauc/system.conf
    nvr update pre-install|post-install RAUC's system handlers (environment from RAUC)
    nvr update usb DEVICE               vigil-update-usb@.service: a bundle on a USB stick
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from appliance.core.errors import FailedPrecondition, VigilError

log = logging.getLogger(__name__)

STATE_DIR = Path("/persist/update")
RAUC_CONFIG = Path("/run/vigil/rauc/system.conf")
BOOT_SELECT = Path("/boot/select")


def boot_backend(board: str | None = None) -> str:
    """The board profile's `[update] boot`: uboot, pi-tryboot, or none."""
    from appliance.licensing.cli import default_board
    from hw.board import load_profile

    profile = load_profile(board or default_board())
    return str(profile.get("update", {}).get("boot", "none"))


def reboot_for_trial(backend: str) -> None:
    """Reboot into the newly installed slot: on the Pi with the one-shot tryboot flag."""
    from appliance.core.commands import run_command

    argv = ["systemctl", "reboot"]
    if backend == "pi-tryboot":
        from appliance.update.tryboot import reboot_arguments

        argv += reboot_arguments(BOOT_SELECT)
    log.info("rebooting: %s", " ".join(argv))
    run_command(argv, timeout=60)


def boot_time_us() -> int:
    with open("/proc/stat", encoding="ascii") as stat:
        for line in stat:
            if line.startswith("btime "):
                return int(line.split()[1]) * 1_000_000
    return 0


def system_service(args: argparse.Namespace):
    from appliance.update.gate import SystemProbes
    from appliance.update.rauc import Rauc
    from appliance.update.service import UpdateService
    from appliance.update.store import UpdateStore

    backend = getattr(args, "backend", None) or boot_backend()
    if backend == "none":
        raise FailedPrecondition("this board has no A/B slots (development mode): updates need "
                                 "the appliance image")
    return UpdateService(Rauc(), UpdateStore(Path(args.state)), SystemProbes(Path(args.data)),
                         reboot=lambda: reboot_for_trial(backend), boot_time_us=boot_time_us,
                         gate_limit=getattr(args, "limit", 900.0))


def print_progress(percent: int, message: str) -> None:
    print(f"{percent:3d}% {message}", flush=True)


def cmd_status(args: argparse.Namespace) -> int:
    status = system_service(args).status()
    if args.json:
        print(json.dumps(status, indent=1))
        return 0
    running = status["running"]
    print(f"running: {running['version']} (build {running['build']}, {running['commit'][:12]}) "
          f"from slot {running['slot'] or '?'}")
    for slot in status["slots"]:
        print(f"  slot {slot['bootname']}: {slot['state']:<8} {slot['boot_status']:<5} "
              f"{slot['version'] or '(as flashed)'} {slot['installed']}")
    if status["engine_error"]:
        print(f"  update engine: {status['engine_error']}")
    if status["pending"]:
        print(f"on trial: {status['pending']['to_version']} in slot {status['pending']['to_slot']}")
    if status["last_result"]:
        print(f"last result: {status['last_result']['message']}")
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    result = system_service(args).apply(Path(args.bundle), print_progress, reboot=not args.no_reboot)
    print(f"installed {result['version']}; " + ("rebooting into it for its trial" if result["rebooting"]
          else "it starts at the next reboot, on trial"))
    return 0


def cmd_boot(args: argparse.Namespace) -> int:
    service = system_service(args)
    try:
        result = service.on_boot()
    except VigilError:
        pending = service.store.pending()
        from appliance.update.service import booted_slot

        if pending and booted_slot() == pending.to_slot:
            # The gate itself broke on a trial boot: that is a failed trial too.
            pending.failure = pending.failure or "the health gate could not run on the new system"
            service.store.set_pending(pending)
            service.rauc.mark("bad")
            service.reboot()
        raise
    print(result.get("message") or f"{result['outcome']} boot of slot {result['slot']}")
    return 0


def _manifest_from_environment() -> Path:
    for name in ("RAUC_BUNDLE_MOUNT_POINT", "RAUC_UPDATE_SOURCE"):
        value = os.environ.get(name)
        if value and (Path(value) / "manifest.raucm").exists():
            return Path(value) / "manifest.raucm"
    raise FailedPrecondition("RAUC gave no bundle mount point (RAUC_BUNDLE_MOUNT_POINT)")


def cmd_pre_install(args: argparse.Namespace) -> int:
    system_service(args).pre_install(_manifest_from_environment())
    return 0


def cmd_post_install(args: argparse.Namespace) -> int:
    system_service(args).post_install(_manifest_from_environment())
    return 0


def cmd_rauc_config(args: argparse.Namespace) -> int:
    from appliance.update import rauc_config
    from appliance.update.service import running_release

    backend = args.backend or boot_backend()
    if backend == "none":
        print("this board has no A/B slots: no RAUC configuration", file=sys.stderr)
        return 0
    _, build = running_release(Path(args.build_json))
    rauc_config.write(Path(args.out), build.get("rauc_compatible", ""), backend)
    print(f"{args.out}: {backend} boot selection")
    return 0


def cmd_usb(args: argparse.Namespace) -> int:
    from appliance.core.commands import run_command
    from appliance.storage.mount_namespace import system_mounts_runner
    from appliance.update.usb import install_from_stick

    service = system_service(args)
    # The stick is mounted in the system's mount namespace, where rauc.service (which
    # reads the bundle) looks: this unit's sandbox has its own (found in QEMU: RAUC got
    # "No such file" for a bundle this process could read).
    return install_from_stick(Path(args.device), service, print_progress,
                              runner=system_mounts_runner(run_command))


def register_update_commands(sub) -> None:
    update = sub.add_parser("update", help="field firmware updates (RAUC A/B bundles)")
    update.add_argument("--state", default=str(STATE_DIR), help="update state on /persist")
    update.add_argument("--data", default="/srv/vigil/data", help="recordings and index")
    update.add_argument("--backend", choices=["uboot", "pi-tryboot", "none"],
                        help="boot selection (default: the board profile's)")
    usub = update.add_subparsers(dest="update_command", required=True)
    status = usub.add_parser("status", help="slots, versions, the last result")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)
    apply = usub.add_parser("apply", help="check and install a bundle, then reboot into it")
    apply.add_argument("bundle")
    apply.add_argument("--no-reboot", action="store_true", help="install only; the trial starts "
                       "at the next reboot")
    apply.set_defaults(func=cmd_apply)
    boot = usub.add_parser("boot", help="at boot: health gate, commit or roll back")
    boot.add_argument("--limit", type=float, default=900.0, help="seconds the new system has to "
                      "record again (default 900)")
    boot.set_defaults(func=cmd_boot)
    for name, func in (("pre-install", cmd_pre_install), ("post-install", cmd_post_install)):
        usub.add_parser(name, help=f"RAUC's {name} handler").set_defaults(func=func)
    config = usub.add_parser("rauc-config", help="write RAUC's system.conf for this board")
    config.add_argument("--out", default=str(RAUC_CONFIG))
    config.add_argument("--build-json", default="/usr/lib/vigil/build.json")
    config.set_defaults(func=cmd_rauc_config)
    usb = usub.add_parser("usb", help="install the bundle on a USB stick (udev starts this)")
    usb.add_argument("device", help="the stick's block device, e.g. /dev/sda1")
    usb.set_defaults(func=cmd_usb)

