"""Runs `nvr record` as a real process and follows its JSON event stream."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


class RecorderProcess:
    def __init__(self, data_dir: Path, cameras: dict[str, str], *settings: str,
                 env: dict[str, str] | None = None, data_volume: bool = False) -> None:
        """`data_volume`: the data directory is an initialised data disk; otherwise the
        recorder is told to accept a plain directory (--allow-boot-media)."""
        argv = [sys.executable, "-m", "appliance.cli", "--log-level", "INFO", "record",
                "--data", str(data_dir), "--events", "--status", "never", *settings]
        if not data_volume:
            argv += ["--allow-boot-media", "true"]
        for name, url in cameras.items():
            argv += ["--camera", f"{name}={url}"]
        self.log_path = Path(data_dir).with_name(Path(data_dir).name + ".log")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self.events: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=self._log,
                                     env={**os.environ, **(env or {})})
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            event = json.loads(line)
            event["_mono"] = time.monotonic()
            with self._cond:
                self.events.append(event)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float,
                 count: int = 1, what: str = "event") -> list[dict[str, Any]]:
        """Wait until `count` events match; raise with the recorder's log tail on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [e for e in self.events if predicate(e)]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"timed out waiting for {count} x {what}; "
                                         f"log tail:\n{self.log_tail()}")
                self._cond.wait(min(remaining, 0.5))

    def matching(self, **fields: Any) -> list[dict[str, Any]]:
        with self._cond:
            return [e for e in self.events if all(e.get(k) == v for k, v in fields.items())]

    def wait_state(self, camera: str, state: str, timeout: float) -> dict[str, Any]:
        return self.wait_for(lambda e: e["event"] == "state" and e["camera"] == camera
                             and e["state"] == state, timeout, what=f"{camera} {state}")[0]

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR1)   # every thread's stack into the log
            try:
                wait_until(lambda: "most recent call first" in self.log_tail(400), 5,
                           "the recorder's thread dump")
            finally:
                self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"the recorder did not stop within {timeout:g} s of "
                                 f"SIGTERM; log tail:\n{self.log_tail(120)}") from None
        finally:
            self._reader.join(5)
            self._log.close()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self._reader.join(5)
        self._log.close()

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def __enter__(self) -> "RecorderProcess":
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.kill()
