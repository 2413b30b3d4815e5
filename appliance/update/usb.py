"""A bundle on a USB stick: the install path for a box with no network to the owner.

udev starts vigil-update-usb@<device>.service for every file system on a USB disk. The
stick is mounted read-only (nosuid, nodev, noexec) under /run, and its top directory is
looked at for `*.raucb` files: none means it is not an update stick (nothing happens);
more than one is refused (which would the owner mean?); one is checked and installed
like an upload, then the box reboots into it with the stick unmounted. A stick left in
the slot never installs twice: the release already running is skipped, and so is one
this box has rolled back (the owner retries from the web page or `nvr update apply`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from appliance.core.commands import Runner, run_command
from appliance.core.errors import FailedPrecondition, InvalidConfig
from appliance.update.rauc import Progress

log = logging.getLogger(__name__)

MOUNT_ROOT = Path("/run/vigil/usb-update")


def bundles_on(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.raucb") if p.is_file() and not p.is_symlink())


def rolled_back_before(service, version: str) -> bool:
    return any(entry.get("outcome") == "rolled_back" and entry.get("version") == version
               for entry in service.store.history())


def install_from_directory(directory: Path, service, progress: Progress | None) -> str:
    """The stick's bundle checked and installed (no reboot); what happened, in words."""
    found = bundles_on(directory)
    if not found:
        return "no update bundle (*.raucb) on this USB stick"
    if len(found) > 1:
        raise InvalidConfig(f"the USB stick holds {len(found)} bundles "
                            f"({', '.join(p.name for p in found[:5])}): keep only the one to install")
    bundle = found[0]
    try:
        checked = service.check_bundle(bundle)
    except FailedPrecondition as exc:
        return f"{bundle.name} not installed: {exc}"
    if rolled_back_before(service, checked["version"]):
        return (f"{bundle.name} not installed: {checked['version']} was rolled back on this box "
                f"before; install it from the web page to try again")
    service.apply(bundle, progress, reboot=False)
    return f"installed {checked['version']} from {bundle.name}"


def install_from_stick(device: Path, service, progress: Progress | None,
                       runner: Runner = run_command, mount_root: Path = MOUNT_ROOT) -> int:
    if not str(device).startswith("/dev/") or "/" in device.name or ".." in device.parts:
        raise InvalidConfig(f"{device} is not a block device path")
    target = mount_root / device.name
    target.mkdir(parents=True, exist_ok=True)
    mounted = runner(["mount", "-o", "ro,nosuid,nodev,noexec", str(device), str(target)], timeout=60)
    if mounted.returncode != 0:
        log.info("USB stick %s not mountable: %s", device, mounted.tail())
        return 0
    installed = False
    try:
        message = install_from_directory(target, service, progress)
        installed = message.startswith("installed ")
        log.info("%s", message)
        print(message)
    finally:
        runner(["umount", str(target)], timeout=60)
    if installed:
        service.reboot()
    return 0
