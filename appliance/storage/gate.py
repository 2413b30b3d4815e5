"""The write gate: storage tells the camera threads when they must not write.

Set by the retention worker (full_disk_action = "stop" at the low-water mark) and cleared
when space is back. Camera threads read `reason` at every keyframe (an attribute read, no
lock: a stale read only delays the stop by one GOP) and wait on `wait_open` instead of
reconnecting to their cameras while it is closed.
"""

from __future__ import annotations

import threading


class WriteGate:
    def __init__(self) -> None:
        self.reason = ""
        self.cause = ""
        self._open = threading.Event()
        self._open.set()

    def close(self, cause: str, reason: str) -> None:
        self.cause, self.reason = cause, reason
        self._open.clear()

    def open(self) -> None:
        self.cause, self.reason = "", ""
        self._open.set()

    @property
    def is_open(self) -> bool:
        return self._open.is_set()

    def wait_open(self, timeout: float) -> bool:
        return self._open.wait(timeout)
