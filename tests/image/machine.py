"""The built image booted under qemu-system-aarch64 (the virt machine, no KVM), watched
through its serial console.

The machine's firmware is U-Boot (Debian's u-boot-qemu), which runs the image's own A/B
boot script from p1 and loads the chosen slot's kernel, as a box does after a field
update. The console report is switched on by an extra-args.txt on p1 (the test's copy of
the image only). The disk is a qcow2 overlay on the image (the image file is never
written; the overlay keeps every partition across reboots of one machine, so updates and
rollbacks can be followed; a guest reboot stays in the same QEMU process), and the network is QEMU's user
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
from tests.waiting import wait_until

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
    slot: str = ""                       # the slot booted (rauc.slot=)
    release: str = ""                    # its version (build.json)
    update: tuple[str, str, str] = ("", "", "")   # last result: outcome, version, message
    pending: str = ""                    # an update on trial: "<version> <slot>"

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
            elif kind == "slot":
                report.slot = rest.strip()
            elif kind == "release" and parts:
                report.release = parts[0]
            elif kind == "update" and len(parts) >= 2:
                report.update = (parts[0], parts[1], " ".join(parts[2:]))
            elif kind == "pending":
                report.pending = rest.strip()
        return report


UBOOT = Path("/usr/lib/u-boot/qemu_arm64/u-boot.bin")
MTOOLS_ENV = {"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"}


def switch_on_console_report(image: Path, offset: int, work: Path) -> None:
    """extra-args.txt on p1 (the FAT boot selection at byte `offset`): the boot script adds
    its vigil_extra_args to the kernel command line."""
    extra = work / "extra-args.txt"
    extra.write_text("vigil_extra_args=vigil.console_report\n")
    subprocess.run(["mcopy", "-o", "-i", f"{image}@@{offset}", str(extra), "::/extra-args.txt"],
                   check=True, timeout=60, env=MTOOLS_ENV)


class QemuMachine:
    def __init__(self, work: Path, image: Path, data_disks: list[Path], camera_port: int,
                 memory_mib: int = 2048) -> None:
        self.work = work
        self.https_port, self.http_port, self.rtsp_port = free_port(), free_port(), free_port()
        self.console_log = work / "console.log"
        self.overlay = work / "disk.qcow2"
        if not self.overlay.exists():
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                            str(image), str(self.overlay)], check=True, timeout=60)
        net = (f"user,id=n0,restrict=on,"
               f"hostfwd=tcp:127.0.0.1:{self.https_port}-:443,"
               f"hostfwd=tcp:127.0.0.1:{self.http_port}-:80,"
               f"hostfwd=tcp:127.0.0.1:{self.rtsp_port}-:8554,"
               f"guestfwd=tcp:{CAMERA_ADDRESS}:8554-cmd:{shutil.which('socat')} - "
               f"TCP:127.0.0.1:{camera_port}")
        self.argv = ["qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72", "-smp", "2",
                     "-m", str(memory_mib), "-nographic", "-bios", str(UBOOT),
                     "-drive", f"file={self.overlay},format=qcow2,if=virtio",
                     "-netdev", net, "-device", "virtio-net-pci,netdev=n0,romfile=",
                     "-device", "i6300esb", "-rtc", "base=utc",
                     # a USB controller for hot-plugged sticks; QMP to plug them
                     "-device", "qemu-xhci,id=xhci",
                     "-qmp", f"unix:{work / 'qmp.sock'},server=on,wait=off"]
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
        self._reader = threading.Thread(target=self._read_console, daemon=True)
        self._reader.start()
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

    def diagnostics(self, journal_lines: int = 80) -> str:
        """What the box said about itself, for a failed test's report: the journal warnings
        its console reports carried (the newest `journal_lines`), its last complete report,
        and the console's tail."""
        with self._lock:
            text = self._buffer
        reports = REPORT.findall(text)
        journal = [line.strip() for block in reports for line in block.decode("utf-8", "replace")
                   .splitlines() if line.startswith("journal ")]
        last = reports[-1].decode("utf-8", "replace") if reports else "(no complete report)"
        return (f"journal warnings (newest {journal_lines}):\n" + "\n".join(journal[-journal_lines:])
                + f"\n\nlast report:\n{last}\nconsole tail:\n" + text[-3000:].decode("utf-8", "replace"))

    def report(self, timeout: float, since: int = 0) -> tuple[Report, int]:
        """The next complete diagnostics report after console position `since`."""
        found = self.wait_for_console(REPORT.pattern, timeout, since)
        return Report.parse(found.group(1).decode("utf-8", "replace")), found.end()

    def wait_for_report(self, check, timeout: float, what: str, since: int = 0) -> Report:
        """Reports until one satisfies `check`; BootFailed naming `what` and the last one."""
        deadline, last = time.monotonic() + timeout, None
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

    def qmp(self, *commands: dict) -> list[dict]:
        """Run QMP commands (the machine's control protocol) in one session; their answers."""
        import json
        import socket

        answers = []
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(30)
            sock.connect(str(self.work / "qmp.sock"))
            stream = sock.makefile("rwb")
            stream.readline()                                   # the greeting
            for command in ({"execute": "qmp_capabilities"}, *commands):
                stream.write(json.dumps(command).encode() + b"\n")
                stream.flush()
                while True:
                    answer = json.loads(stream.readline())
                    if "event" not in answer:
                        break
                if "error" in answer:
                    raise RuntimeError(f"QMP {command['execute']}: {answer['error']}")
                answers.append(answer)
        return answers[1:]

    def plug_usb_stick(self, image: Path, name: str = "stick") -> None:
        """Hot-plug a USB mass-storage stick backed by a raw image file (read-only)."""
        self.plug_usb_disk(image, name, read_only=True)

    def plug_usb_disk(self, image: Path, name: str, read_only: bool = False) -> None:
        """Hot-plug a USB mass-storage disk backed by a raw image file; plugging the same
        `name` again after `unplug_usb` reuses its backing node (the same disk)."""
        known = {node.get("node-name") for node in
                 self.qmp({"execute": "query-named-block-nodes"})[0]["return"]}
        commands = [] if name in known else [{"execute": "blockdev-add", "arguments": {
            "driver": "raw", "node-name": name, "read-only": read_only,
            "file": {"driver": "file", "filename": str(image), "read-only": read_only}}}]
        self.qmp(*commands, {"execute": "device_add", "arguments": {
            "driver": "usb-storage", "bus": "xhci.0", "drive": name, "id": f"{name}-device"}})

    def unplug_usb(self, name: str, timeout: float = 30.0) -> None:
        """Pull a USB device out (a surprise removal for the guest), and wait until QEMU
        has let go of it."""
        self.qmp({"execute": "device_del", "arguments": {"id": f"{name}-device"}})
        wait_until(lambda: not any(f"/{name}-device/" in dev.get("qdev", "") for dev in
                                   self.qmp({"execute": "query-block"})[0]["return"]),
                   timeout, f"QEMU to let go of {name}-device after device_del", step=0.2)

    def position(self) -> int:
        """Where the console output is now: wait for what comes after it."""
        with self._lock:
            return len(self._buffer)

    def power_cut(self) -> None:
        """SIGKILL QEMU: the guest loses everything not yet handed to its virtual disk."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
        self._reader.join(30)
        with self._lock:
            self._eof = False

    def power_on(self) -> "QemuMachine":
        """Start again from the same disks (the overlay keeps every partition)."""
        return self.start()

    def stop(self, timeout: float = 30.0) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
