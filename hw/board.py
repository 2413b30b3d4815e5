"""Board profiles: hw/boards/<name>.toml describes a board's hardware (or its simulation)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

BOARDS = Path(__file__).resolve().parent / "boards"


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
