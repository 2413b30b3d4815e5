"""The installed licence on the persist partition, and the channel count in force.

Install = verify first, then write atomically (temp file, fsync, rename, fsync the
directory): a bad upload is refused with the reason and the previous licence stays.
The licence is verified again whenever it is read, so an expired licence falls back to
the board's default channel count (with the reason shown) instead of failing silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from appliance.core.files import atomic_write
from appliance.licensing.licence import MAX_BYTES, Licence, LicenceError, verify


@dataclass(frozen=True)
class LicenceStatus:
    channels: int
    licence: Licence | None
    problem: str  # why the installed file does not count, or ""

    def to_json(self) -> dict[str, Any]:
        return {"channels": self.channels, "problem": self.problem,
                "licence": self.licence.to_json() if self.licence else None,
                "source": "licence" if self.licence else "board default"}


class LicenceStore:
    def __init__(self, path: Path, serial: str, keys: list[Ed25519PublicKey],
                 default_channels: int, today: Callable[[], date] = date.today) -> None:
        self.path = Path(path)
        self.serial = serial
        self.keys = keys
        self.default_channels = default_channels
        self.today = today

    def check(self, data: bytes) -> Licence:
        return verify(data, self.keys, self.serial, self.today())

    def install(self, data: bytes) -> Licence:
        licence = self.check(data)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, data)
        return licence

    def status(self) -> LicenceStatus:
        try:
            with open(self.path, "rb") as src:
                data = src.read(MAX_BYTES + 1)
        except FileNotFoundError:
            return LicenceStatus(self.default_channels, None, "")
        except OSError as exc:
            return LicenceStatus(self.default_channels, None, f"unreadable: {exc}")
        try:
            licence = self.check(data)
        except LicenceError as exc:
            return LicenceStatus(self.default_channels, None, str(exc))
        return LicenceStatus(licence.channels, licence, "")

    def channel_limit(self) -> int:
        return self.status().channels


def read_upload(path: Path) -> bytes:
    """At most MAX_BYTES + 1 bytes of an uploaded file: enough to refuse a 10 MB one."""
    with open(path, "rb") as src:
        return src.read(MAX_BYTES + 1)
