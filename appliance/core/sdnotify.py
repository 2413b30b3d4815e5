"""systemd notification (sd_notify) without a C binding: READY, WATCHDOG, STATUS, STOPPING.

Does nothing when not started by systemd (no NOTIFY_SOCKET), so the same code runs in
the foreground, under `make run` and under the `vigil-recorder` unit.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


class SystemdNotifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = env.get("NOTIFY_SOCKET") or None
        usec = env.get("WATCHDOG_USEC")
        self.watchdog_interval: float | None = int(usec) / 1e6 if usec and usec.isdigit() else None
        self._failing = False
        if self._address and self._address.startswith("@"):
            self._address = "\0" + self._address[1:]

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, **fields: str) -> None:
        if not self._address:
            return
        message = "\n".join(f"{key.upper()}={value}" for key, value in fields.items())
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                # Never block the main loop on a busy notify socket; a lost ping is retried.
                sock.sendto(message.encode(), socket.MSG_DONTWAIT, self._address)
            self._failing = False
        except OSError as exc:
            if not self._failing:  # say it once, not once per ping
                log.warning("sd_notify failed: %s", exc)
            self._failing = True

    def ready(self) -> None:
        self.notify(ready="1")

    def watchdog(self) -> None:
        self.notify(watchdog="1")

    def status(self, text: str) -> None:
        self.notify(status=text)

    def stopping(self) -> None:
        self.notify(stopping="1")
