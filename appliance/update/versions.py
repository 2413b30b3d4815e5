"""Release versions and their order: what "older" means for anti-rollback.

A release is its version (three numbers, "0.1.0") and its build (the commit's time,
SOURCE_DATE_EPOCH, written into the bundle manifest and /usr/lib/vigil/build.json). Two
builds of one version order by build: a rebuilt 0.1.0 is newer than the first one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from appliance.core.errors import InvalidConfig

VERSION = re.compile(r"(\d{1,6})\.(\d{1,6})\.(\d{1,6})", re.ASCII)   # whole string: fullmatch
MAX_BUILD = 2 ** 40            # a Unix time far beyond any real build


@dataclass(frozen=True, order=True)
class Release:
    numbers: tuple[int, int, int]
    build: int = 0

    @classmethod
    def parse(cls, version: object, build: object = 0) -> "Release":
        """From a manifest's or build.json's fields; InvalidConfig names what is wrong."""
        match = VERSION.fullmatch(version) if isinstance(version, str) else None
        if not match:
            raise InvalidConfig(f"version {str(version)[:40]!r} is not three numbers like 1.2.3")
        text = str(build).strip() if build not in (None, "") else "0"
        if not (text.isascii() and text.isdigit()) or int(text) > MAX_BUILD:
            raise InvalidConfig(f"build {text[:40]!r} is not a build number (the commit time)")
        return cls((int(match[1]), int(match[2]), int(match[3])), int(text))

    @property
    def version(self) -> str:
        return ".".join(map(str, self.numbers))

    def to_json(self) -> dict[str, object]:
        return {"version": self.version, "build": self.build}

    def __str__(self) -> str:
        return f"{self.version} (build {self.build})"
