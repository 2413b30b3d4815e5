"""`nvr run` as a child process: its console drained in a thread, its web address."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

from hw.camsim.server import free_port
from tests.integration.conftest import CACHE, ROOT
from tests.waiting import wait_until


class DevMode:
    def __init__(self, var: Path) -> None:
        var.mkdir(parents=True, exist_ok=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        if not (var / "cache").exists():
            (var / "cache").symlink_to(CACHE)  # clips are encoded once per checkout
        self.var = var
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "appliance.cli", "run", "--var", str(var), "--port",
             str(free_port()), "--web-port", str(free_port())],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        line = wait_until(lambda: next((ln for ln in self.lines if "web API: " in ln), None)
                          or self.proc.poll() is not None, 180, "nvr run's web address")
        if self.proc.poll() is not None:
            raise AssertionError("nvr run exited:\n" + self.output()[-3000:])
        self.base = line.split("web API: ")[1].strip().split("/api/v1")[0]

    def _drain(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def output(self) -> str:
        return "".join(self.lines)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # Ctrl-C
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(10)
        return self.proc.returncode
