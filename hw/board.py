"""Board profiles: hw/boards/<name>.toml describes a board's hardware (or its simulation)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

BOARDS = Path(__file__).resolve().parent / "boards"

# What the firmware's device tree says the machine is (its "compatible" list) -> profile.
# The image names its board "auto" (/etc/vigil/board): one image for every board it
# supports, each box finding its own profile at start.
COMPATIBLE_PROFILES = {
    "raspberrypi,4-model-b": "pi4-poe4",
    "raspberrypi,5-model-b": "pi5-poe8",
    "linux,dummy-virt": "qemu-virt",
}


class BoardProfileError(ValueError):
    """A board profile is missing or malformed."""


def load_profile(name: str) -> dict[str, Any]:
    if not name.replace("-", "").replace("_", "").isalnum():
        raise BoardProfileError(f"board name {name!r} is not a profile name")
    path = BOARDS / f"{name}.toml"
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = ", ".join(sorted(p.stem for p in BOARDS.glob("*.toml")))
        raise BoardProfileError(f"no board profile {name!r} (known: {known})") from None
    except tomllib.TOMLDecodeError as exc:
        raise BoardProfileError(f"{path}: {exc}") from None


def detect_profile_name(root: Path = Path("/")) -> str:
    """The profile for the machine this runs on, from /proc/device-tree/compatible."""
    path = Path(root) / "proc/device-tree/compatible"
    try:
        compatible = path.read_bytes().decode("ascii", "replace").split("\0")
    except OSError as exc:
        raise BoardProfileError(f"cannot tell which board this is: {path}: "
                                f"{exc.strerror}") from None
    for name in compatible:
        if name in COMPATIBLE_PROFILES:
            return COMPATIBLE_PROFILES[name]
    shown = ", ".join(n for n in compatible if n) or "nothing"
    raise BoardProfileError(f"no board profile for this machine (its device tree says "
                            f"{shown[:200]}); name one in /etc/vigil/board")
