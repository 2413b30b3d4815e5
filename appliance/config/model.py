"""A tiny declarative settings model: fields with defaults, bounds and descriptions.

Unknown keys are rejected at load, values are checked against their bounds, and the
owner-facing reference (README) can be generated from the same declarations.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, TypeVar

from appliance.core.errors import InvalidConfig

T = TypeVar("T")



def as_finite(value: object) -> float | None:
    """`value` as a finite float, or None: booleans, non-numbers, NaN, infinities and
    integers beyond a float's range (JSON allows 10**400) are not numbers a setting
    can take."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None

def setting(default: Any, description: str, *, low: float | None = None,
            high: float | None = None, choices: tuple[str, ...] | None = None) -> Any:
    """Declare a settings field with its bounds and one-line description."""
    return dataclasses.field(default=default, metadata={
        "description": description, "low": low, "high": high, "choices": choices})


def check_field(field: dataclasses.Field, value: Any, section: str) -> Any:
    """Coerce and validate one value; raise InvalidConfig with a clear message."""
    name = f"{section}.{field.name}"
    meta = field.metadata
    kind = type(field.default)
    if kind is bool:
        if not isinstance(value, bool):
            raise InvalidConfig(f"{name}: expected true or false, got {value!r}")
        return value
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidConfig(f"{name}: expected a number, got {value!r}")
        if isinstance(value, int) and as_finite(value) is None:  # 10**400 in JSON
            raise InvalidConfig(f"{name}: {str(value)[:40]} is beyond any allowed value")
        if kind is int and (not math.isfinite(value) or value != int(value)):  # int(inf) raises
            raise InvalidConfig(f"{name}: expected a whole number, got {value!r}")
        value = kind(value)
        if value != value:  # NaN
            raise InvalidConfig(f"{name}: not a number")
        if meta.get("low") is not None and value < meta["low"]:
            raise InvalidConfig(f"{name}: {value} is below the minimum {meta['low']}")
        if meta.get("high") is not None and value > meta["high"]:
            raise InvalidConfig(f"{name}: {value} is above the maximum {meta['high']}")
        return value
    if kind is str:
        if not isinstance(value, str):
            raise InvalidConfig(f"{name}: expected text, got {value!r}")
        if meta.get("choices") and value not in meta["choices"]:
            raise InvalidConfig(f"{name}: {value!r} is not one of {', '.join(meta['choices'])}")
        return value
    raise InvalidConfig(f"{name}: unsupported setting type {kind.__name__}")  # pragma: no cover


def load_section(cls: type[T], values: Mapping[str, Any], section: str) -> T:
    """Build a settings dataclass from a mapping, rejecting unknown keys."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise InvalidConfig(f"{section}: unknown setting(s) {', '.join(unknown)}; "
                            f"known: {', '.join(sorted(fields))}")
    checked = {key: check_field(fields[key], value, section) for key, value in values.items()}
    instance = cls(**checked)
    validate = getattr(instance, "validate", None)
    if validate:
        validate()
    return instance


def describe(cls: type) -> list[tuple[str, Any, str]]:
    """(name, default, description with bounds) for the settings reference."""
    rows = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        bounds = []
        if meta.get("low") is not None or meta.get("high") is not None:
            bounds.append(f"{meta.get('low')}..{meta.get('high')}")
        if meta.get("choices"):
            bounds.append("one of: " + ", ".join(meta["choices"]))
        text = meta.get("description", "")
        rows.append((f.name, f.default, text + (f" ({'; '.join(bounds)})" if bounds else "")))
    return rows
