"""Time zone names the box accepts: exactly the zones of its own zoneinfo database.

A zone name ends up as the target of the /etc/localtime symlink, so it is checked twice:
by shape first (letters, digits, '_', '+', '-' in at most three '/'-separated parts: no
'..', no absolute path, no control characters), then by membership in the list built
from the zoneinfo directory (files that start with the TZif magic). The `posix/` and
`right/` copies and the legacy aliases that are not zones (`posixrules`, `localtime`,
`Factory`) are left out.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

from appliance.core.errors import InvalidConfig

SYSTEM_ZONEINFO = Path("/usr/share/zoneinfo")
ZONE_NAME = re.compile(r"[A-Za-z0-9_+-]{1,30}(?:/[A-Za-z0-9_+-]{1,30}){0,2}")
SKIP_DIRS = frozenset({"posix", "right"})
SKIP_NAMES = frozenset({"posixrules", "localtime", "Factory"})
MAGIC = b"TZif"

_cache: dict[Path, frozenset[str]] = {}
_lock = threading.Lock()


def available_zones(directory: Path = SYSTEM_ZONEINFO) -> frozenset[str]:
    """Every zone name in the zoneinfo database at `directory` (read once, then cached)."""
    directory = Path(directory)
    with _lock:
        cached = _cache.get(directory)
    if cached is not None:
        return cached
    names = set()
    for top, dirs, files in os.walk(directory):
        rel_top = os.path.relpath(top, directory)
        if rel_top == ".":
            dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        for name in files:
            rel = name if rel_top == "." else f"{rel_top}/{name}"
            if name in SKIP_NAMES or not ZONE_NAME.fullmatch(rel):
                continue
            try:
                with open(os.path.join(top, name), "rb") as tzfile:
                    if tzfile.read(4) != MAGIC:
                        continue
            except OSError:
                continue
            names.add(rel)
    zones = frozenset(names)
    with _lock:
        _cache[directory] = zones
    return zones


def check_zone(name: object, directory: Path = SYSTEM_ZONEINFO) -> str:
    """`name` if it is a zone of this box's database; InvalidConfig with the reason if not."""
    if not isinstance(name, str):
        raise InvalidConfig(f"time zone: expected a zone name such as Europe/Berlin, got "
                            f"{type(name).__name__}")
    if not ZONE_NAME.fullmatch(name):
        raise InvalidConfig(f"time zone {name[:60]!r} is not a zone name (such as Europe/Berlin "
                            "or UTC)")
    if name not in available_zones(directory):
        raise InvalidConfig(f"time zone {name!r} is not in the box's time zone database")
    return name
