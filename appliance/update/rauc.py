"""The `rauc` command line: the update engine, never re-implemented here.

RAUC checks a bundle's signature against the image's keyring, its compatible, writes the
inactive slot pair (root and boot), and switches the boot selection; its service runs as
root (rauc.service, D-Bus). This wraps the four things Vigil asks of it: what the slots
are (`status`), what a bundle is (`info`, which verifies the signature), `install` with
progress, and marking a slot good, bad or active.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from appliance.core.commands import Runner, run_command
from appliance.core.errors import FailedPrecondition, InvalidConfig, Unavailable

log = logging.getLogger(__name__)

PROGRESS = re.compile(r"^\s*(\d{1,3})%\s+(.*?)\s*$")
# GLib's log prefix on RAUC's lines: "rauc-Message: 07:58:46.565: Reading bundle: ..."
LOG_PREFIX = re.compile(r"^(rauc-)?(Message|Critical|Warning|WARNING|ERROR|error):\s*"
                        r"(\d\d:\d\d:\d\d\.\d+:\s*)?")
Progress = Callable[[int, str], None]


@dataclass(frozen=True)
class BundleInfo:
    compatible: str
    version: str
    build: str
    description: str
    images: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Slot:
    name: str          # rootfs.0
    bootname: str      # A
    state: str         # booted, active, inactive
    boot_status: str   # good, bad
    version: str       # of the bundle last installed into it ("" if never)
    build: str
    installed: str     # when


def _message(result) -> str:
    """RAUC's own words, without its log prefixes: the part an owner can act on. Its
    progress notes ("rauc-Message: ... Reading bundle") are left out when it also said
    what went wrong, which it prints without a prefix."""
    lines = [line.strip() for line in (result.stderr or result.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if not line.startswith("rauc-Message:")]
    lines = errors or [LOG_PREFIX.sub("", line) for line in lines]
    return " / ".join(lines[-3:]) or f"rauc exited with {result.returncode}"


class Rauc:
    def __init__(self, runner: Runner = run_command, executable: str = "rauc",
                 conf: Path | None = None) -> None:
        self.run = runner
        self.exe = executable
        self.conf = [f"--conf={conf}"] if conf else []   # default: /etc/rauc/system.conf

    def info(self, bundle: Path) -> BundleInfo:
        """The bundle's manifest, after RAUC verified its signature against the keyring.
        InvalidConfig with RAUC's reason when it does not verify or is not a bundle."""
        result = self.run([self.exe, *self.conf, "info", "--output-format=json", str(bundle)], timeout=300)
        if result.returncode != 0:
            raise InvalidConfig(f"not a valid update bundle: {_message(result)}")
        try:
            data = json.loads(result.stdout[result.stdout.index("{"):])
        except ValueError:
            raise InvalidConfig("not a valid update bundle: RAUC gave no manifest") from None
        images = [next(iter(i)) if isinstance(i, dict) else str(i) for i in data.get("images", [])]
        return BundleInfo(str(data.get("compatible", "")), str(data.get("version", "")),
                          str(data.get("build", "") or ""), str(data.get("description") or ""), images)

    def status(self) -> dict[str, Any]:
        result = self.run([self.exe, *self.conf, "status", "--detailed", "--output-format=json"], timeout=60)
        if result.returncode != 0:
            raise Unavailable(f"the update engine does not answer: {_message(result)}")
        try:
            return json.loads(result.stdout)
        except ValueError:
            raise Unavailable("the update engine's status is not JSON") from None

    def slots(self, status: dict[str, Any] | None = None) -> list[Slot]:
        status = self.status() if status is None else status
        found = []
        for entry in status.get("slots", []):
            for name, slot in entry.items():
                if slot.get("class") != "rootfs":
                    continue
                bundle = (slot.get("slot_status") or {}).get("bundle") or {}
                installed = (slot.get("slot_status") or {}).get("installed") or {}
                found.append(Slot(name, str(slot.get("bootname", "")), str(slot.get("state", "")),
                                  str(slot.get("boot_status", "")), str(bundle.get("version") or ""),
                                  str(bundle.get("build") or ""), str(installed.get("timestamp") or "")))
        return found

    def install(self, bundle: Path, progress: Progress | None = None, timeout: float = 3600) -> None:
        """Install into the inactive slot pair; FailedPrecondition with RAUC's reason."""
        argv = [self.exe, *self.conf, "install", str(bundle)]
        log.info("rauc install %s", bundle)
        try:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, text=True, errors="replace",
                                    env={"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        except OSError as exc:
            raise Unavailable(f"cannot run rauc: {exc.strerror}") from None
        tail: list[str] = []
        # Reading blocks until rauc closes its output, so the time limit must be able to
        # stop it while it is being read: a watchdog kills a hung install.
        expired = threading.Event()
        watchdog = threading.Timer(timeout, lambda: (expired.set(), proc.kill()))
        watchdog.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                tail = (tail + [line.rstrip()])[-5:]
                found = PROGRESS.match(line)
                if found and progress:
                    progress(min(int(found[1]), 100), found[2])
            code = proc.wait()
        finally:
            watchdog.cancel()
        if expired.is_set() and code < 0:
            raise FailedPrecondition(f"the install did not finish within {timeout:g} s")
        if code != 0:
            words = [LOG_PREFIX.sub("", t.strip()) for t in tail if t.strip() and not PROGRESS.match(t)]
            raise FailedPrecondition(f"the install failed: {' / '.join(words[-2:]) or code}")

    def mark(self, state: str, slot: str = "booted") -> None:
        """`rauc status mark-good|mark-bad|mark-active booted|other`."""
        if state not in ("good", "bad", "active") or slot not in ("booted", "other"):
            raise ValueError(f"mark {state} {slot}")
        result = self.run([self.exe, *self.conf, "status", f"mark-{state}", slot], timeout=60)
        if result.returncode != 0:
            raise Unavailable(f"cannot mark the {slot} slot {state}: {_message(result)}")
