"""The built image booted under qemu-system-aarch64 (the virt machine, no KVM), watched
through its serial console.

The image's kernel and initramfs are read out of its own boot partition (mtools, no loop
mount), the disk is a qcow2 overlay on the image (the image file is never written; the
overlay keeps /persist across reboots of one machine), and the network is QEMU's user
mode with `restrict=on`: the guest reaches nothing but what is forwarded, so no packet
leaves this machine. Forwarded: the box's HTTP and HTTPS ports to 127.0.0.1 here, and a
camera address inside the guest's LAN (CAMERA_ADDRESS:port) to a loopback RTSP server
here, one socat per connection.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from hw.camsim.server import free_port

CAMERA_ADDRESS = "10.0.2.100"   # in the guest's 10.0.2.0/24 (QEMU user-mode network)
REPORT = re.compile(rb"VIGIL-REPORT-BEGIN\r?\n(.*?)VIGIL-REPORT-END", re.S)


class BootFailed(AssertionError):
    pass


@dataclass
class Report:
    """One diagnostics block the image prints on its console (vigil.console_report)."""
    uptime: float = 0.0
    system: str = ""
    units: dict[str, str] = field(default_factory=dict)
    mounts: dict[str, tuple[str, str, set[str]]] = field(default_factory=dict)
    listening: list[tuple[str, str]] = field(default_factory=list)
    passwords: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    mdstat: list[str] = field(default_factory=list)
    watchdog: str = ""

    @classmethod
    def parse(cls, block: str) -> "Report":
        report = cls()
        for line in block.splitlines():
            kind, _, rest = line.strip().partition(" ")
            parts = rest.split()
            if kind == "uptime" and parts:
                report.uptime = float(parts[0])
            elif kind == "system":
                report.system = rest.strip()
            elif kind == "unit" and len(parts) == 2:
                report.units[parts[0]] = parts[1]
            elif kind == "mount" and len(parts) == 4:
                report.mounts[parts[0]] = (parts[1], parts[2], set(parts[3].split(",")))
            elif kind == "listen" and len(parts) == 2:
                report.listening.append((parts[0], parts[1]))
            elif kind == "password" and parts:
                report.passwords.append(parts[0])
            elif kind == "mdstat":
                report.mdstat.append(rest.strip())
            elif kind == "failed" and parts:
                report.failed.append(parts[0])
            elif kind == "watchdog":
                report.watchdog = rest.strip()
        return report


def extract_boot_files(image: Path, offset: int, into: Path) -> tuple[Path, Path]:
    """vmlinuz and initrd.img from the image's FAT boot partition at byte `offset`."""
    into.mkdir(parents=True, exist_ok=True)
    files = []
    for name in ("vmlinuz", "initrd.img"):
        subprocess.run(["mcopy", "-n", "-o", "-i", f"{image}@@{offset}", f"::/{name}", str(into / name)],
                       check=True, timeout=60, env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"})
        files.append(into / name)
    return files[0], files[1]


def guest_command_line(pi_cmdline: str) -> str:
    """The image's cmdline.txt for QEMU: the PL011 console, not the Pi's; the report on."""
    words = [w for w in pi_cmdline.split() if not w.startswith("console=") and w != "quiet"]
    return " ".join(["console=ttyAMA0", *words, "vigil.console_report"])


class QemuMachine:
    def __init__(self, work: Path, image: Path, kernel: Path, initrd: Path, cmdline: str,
                 data_disks: list[Path], camera_port: int, memory_mib: int = 2048) -> None:
        self.work = work
        self.https_port, self.http_port = free_port(), free_port()
        self.console_log = work / "console.log"
        self.overlay = work / "disk.qcow2"
        if not self.overlay.exists():
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                            str(image), str(self.overlay)], check=True, timeout=60)
        net = (f"user,id=n0,restrict=on,"
               f"hostfwd=tcp:127.0.0.1:{self.https_port}-:443,"
               f"hostfwd=tcp:127.0.0.1:{self.http_port}-:80,"
               f"guestfwd=tcp:{CAMERA_ADDRESS}:8554-cmd:{shutil.which('socat')} - "
               f"TCP:127.0.0.1:{camera_port}")
        self.argv = ["qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72", "-smp", "2",
                     "-m", str(memory_mib), "-nographic", "-no-reboot",
                     "-kernel", str(kernel), "-initrd", str(initrd), "-append", cmdline,
                     "-drive", f"file={self.overlay},format=qcow2,if=virtio",
                     "-netdev", net, "-device", "virtio-net-pci,netdev=n0,romfile=",
                     "-device", "i6300esb", "-rtc", "base=utc"]
        for disk in data_disks:
            self.argv += ["-drive", f"file={disk},format=raw,if=virtio"]
        self._buffer = bytearray()
        self._lock = threading.Condition()
        self._eof = False
        self.process: subprocess.Popen | None = None
        self.started = 0.0

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def start(self) -> "QemuMachine":
        self.started = time.monotonic()
        self.process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT)
        threading.Thread(target=self._read_console, daemon=True).start()
        return self

    def _read_console(self) -> None:
        assert self.process and self.process.stdout
        with open(self.console_log, "ab") as log:
            while chunk := self.process.stdout.read1(65536):
                log.write(chunk)
                log.flush()
                with self._lock:
                    self._buffer += chunk
                    self._lock.notify_all()
        with self._lock:
            self._eof = True
            self._lock.notify_all()

    def console(self) -> str:
        with self._lock:
            return self._buffer.decode("utf-8", "replace")

    def wait_for_console(self, pattern: bytes, timeout: float, since: int = 0) -> re.Match:
        """Wait for `pattern` in the console output (partial lines too: prompts end without
        a newline); BootFailed with the console's tail when it does not come in time."""
        regex = re.compile(pattern, re.S)
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = regex.search(self._buffer, since)
                if found:
                    return found
                if self._eof:
                    raise BootFailed(f"QEMU exited ({self.process.poll()}) before "
                                     f"{pattern!r}:\n{self._tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BootFailed(f"no {pattern!r} on the console within {timeout:g} s:\n{self._tail()}")
                self._lock.wait(min(left, 1.0))

    def _tail(self, size: int = 6000) -> str:
        return self._buffer[-size:].decode("utf-8", "replace")

    def report(self, timeout: float, since: int = 0) -> tuple[Report, int]:
        """The next complete diagnostics report after console position `since`."""
        found = self.wait_for_console(REPORT.pattern, timeout, since)
        return Report.parse(found.group(1).decode("utf-8", "replace")), found.end()

    def wait_for_report(self, check, timeout: float, what: str) -> Report:
        """Reports until one satisfies `check`; BootFailed naming `what` and the last one."""
        deadline, since, last = time.monotonic() + timeout, 0, None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BootFailed(f"timed out waiting for {what}; last report: {last}\n{self._tail()}")
            try:
                report, since = self.report(left, since)
            except BootFailed:
                raise BootFailed(f"timed out waiting for {what}; last report: {last}\n{self._tail()}") from None
            last = report
            if check(report):
                return report

    def stop(self, timeout: float = 30.0) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
