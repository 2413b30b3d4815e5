"""vigil-hwd mounts the data disk for the whole system from inside its own sandbox.

systemd's sandboxing options (ProtectSystem=, ReadWritePaths=, PrivateTmp=, ...) give a
service a private mount namespace, and its mounts do not propagate back to the system
(systemd.exec(5): such a service "may not install mount points in the main mount
namespace"). So on the box vigil-hwd runs its mount commands in PID 1's mount namespace
(nsenter, allowed by `RestrictNamespaces=mnt` in its unit) and reads PID 1's mount table,
the one the recorder and the web server see. The rest of its commands (mkfs, e2fsck,
mdadm, smartctl) act on devices and run as they are. In development and tests nothing
changes: `nvr hwd` without --system-mounts uses its own namespace.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from appliance.core.commands import CommandResult, Runner

PID1_NAMESPACE = Path("/proc/1/ns/mnt")
PID1_MOUNT_TABLE = Path("/proc/1/mountinfo")
MOUNT_COMMANDS = frozenset({"mount", "umount", "findmnt"})


def system_mounts_runner(runner: Runner, namespace: Path = PID1_NAMESPACE) -> Runner:
    """`runner`, with mount, umount and findmnt run in the system's mount namespace."""

    def run(argv: Sequence[str], **kwargs) -> CommandResult:
        if argv and argv[0] in MOUNT_COMMANDS:
            argv = ["nsenter", f"--mount={namespace}", "--", *argv]
        return runner(list(argv), **kwargs)

    return run
