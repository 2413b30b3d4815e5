"""The OS side of the system settings, behind one small interface with two implementations.

* `HostSystem` (vigil-hwd on the box, as root): writes the rendered files under its root
  (default "/") and runs systemd's tools through appliance.core.commands, with argument
  lists only (never a shell), each with a time limit.
* `SandboxSystem` (development mode, tests): writes the same files under a directory of
  its own (such as var/system) and runs nothing; it records each command it would have
  run, in memory and in <root>/commands.log (one JSON list per line).

Files under /run are in RAM: they are replaced atomically (readers never see half a
file) but not fsynced. Symlinks are replaced atomically too (a new link, then rename).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path, PurePosixPath
from typing import Protocol, Sequence

from appliance.core.commands import CommandResult, Runner, run_command
from appliance.core.errors import InvalidConfig
from appliance.core.files import atomic_write
from appliance.system.render import Rendered

COMMAND_TIMEOUT = 10.0  # below the control socket's 15 s, so the caller hears why


class SystemOS(Protocol):
    root: Path

    def install(self, rendered: Rendered) -> None:
        """Write (or remove) the rendered files and symlinks under `root`."""

    def run(self, argv: Sequence[str]) -> CommandResult:
        """Run one command (argument list); never raises for a failing command."""

    def uptime(self) -> float:
        """Seconds since the box booted."""


def under(root: Path, relative: str) -> Path:
    rel = PurePosixPath(relative)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise InvalidConfig(f"{relative!r} is not a path below the root")
    return Path(root) / rel


def install_files(root: Path, rendered: Rendered) -> None:
    for relative, data in rendered.files.items():
        path = under(root, relative)
        if data is None:
            path.unlink(missing_ok=True)
            continue
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        atomic_write(path, data, mode=0o644, durable=False)
    for relative, target in rendered.links.items():
        path = under(root, relative)
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.unlink(missing_ok=True)
        os.symlink(target, tmp)
        os.replace(tmp, path)


def read_uptime() -> float:
    try:
        return float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0


class HostSystem:
    """The real box: files under `root` (default "/"), commands through `runner`."""

    def __init__(self, root: Path = Path("/"), runner: Runner = run_command,
                 timeout: float = COMMAND_TIMEOUT) -> None:
        self.root = Path(root)
        self._runner = runner
        self._timeout = timeout

    def install(self, rendered: Rendered) -> None:
        install_files(self.root, rendered)

    def run(self, argv: Sequence[str]) -> CommandResult:
        return self._runner(list(argv), timeout=self._timeout)

    def uptime(self) -> float:
        return read_uptime()


class SandboxSystem:
    """Development: the same files under `root`, no command run, each one recorded."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.commands: list[list[str]] = []
        self._lock = threading.Lock()

    def install(self, rendered: Rendered) -> None:
        install_files(self.root, rendered)

    def run(self, argv: Sequence[str]) -> CommandResult:
        with self._lock:
            self.commands.append(list(argv))
            with open(self.root / "commands.log", "a", encoding="utf-8") as log:
                log.write(json.dumps(list(argv)) + "\n")
        return CommandResult(0, "", "")

    def uptime(self) -> float:
        return read_uptime()
