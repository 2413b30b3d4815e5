"""A camera's weekly recording schedule: which recording mode applies at a given instant.

Ranges are written in the camera's local wall-clock time (a zoneinfo time zone), per
weekday, with dated holidays that have their own day or follow another weekday. Time not
covered by a range takes the schedule's `default` mode ("off" unless said otherwise).

Daylight saving time, decided here and documented in docs/design/recording-modes.md:
* spring forward (Europe/Berlin: 02:00 -> 03:00): wall times that do not exist are not
  recorded by their range; a 02:00-03:00 range does nothing that day, a 01:30-02:30
  range ends at the jump (it lasted 30 real minutes);
* fall back (03:00 -> 02:00): the repeated hour is inside a range twice; a 02:00-03:00
  range lasts two real hours that night. Wall time alone decides, so nothing is lost.

`next_change` gives the exact instant the mode changes, so the recorder wakes then
instead of polling the schedule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from appliance.core.errors import InvalidConfig

MODES = ("continuous", "events", "continuous_events", "off")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = {"monday": "mon", "tuesday": "tue", "wednesday": "wed", "thursday": "thu",
             "friday": "fri", "saturday": "sat", "sunday": "sun"}
MAX_RANGES = 12          # per day
MAX_HOLIDAYS = 400
HORIZON_DAYS = 400       # next_change looks this far ahead (a holiday next year)
_TIME = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])\Z")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")


@dataclass(frozen=True)
class Range:
    start_min: int   # minutes after local midnight
    end_min: int     # exclusive; 1440 is "24:00"
    mode: str


@dataclass(frozen=True)
class Schedule:
    tz: ZoneInfo
    week: dict[str, tuple[Range, ...]]                  # weekday key -> ranges (sorted)
    holidays: dict[date, tuple[Range, ...] | str] = field(default_factory=dict)  # or weekday key
    default: str = "off"

    # --- questions ------------------------------------------------------------------------
    def modes(self) -> set[str]:
        """Every mode this schedule can be in."""
        ranges = [r for day in self.week.values() for r in day] + \
            [r for day in self.holidays.values() if not isinstance(day, str) for r in day]
        return {self.default} | {r.mode for r in ranges}

    def day_ranges(self, day: date) -> tuple[Range, ...]:
        special = self.holidays.get(day)
        if isinstance(special, str):
            return self.week.get(special, ())
        if special is not None:
            return special
        return self.week.get(WEEKDAYS[day.weekday()], ())

    def mode_at(self, instant: datetime) -> str:
        """The mode in force at `instant` (an aware datetime, any zone)."""
        local = _aware(instant).astimezone(self.tz)
        seconds = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        for rng in self.day_ranges(local.date()):
            if rng.start_min * 60 <= seconds < rng.end_min * 60:
                return rng.mode
        return self.default

    def next_change(self, instant: datetime) -> datetime | None:
        """The first instant after `instant` at which the mode differs from now (UTC), or
        None when nothing changes within HORIZON_DAYS."""
        now = _aware(instant).astimezone(timezone.utc)
        current = self.mode_at(now)
        first_day = now.astimezone(self.tz).date()
        for offset in range(HORIZON_DAYS + 1):
            day = first_day + timedelta(days=offset)
            for candidate in self._candidates(day):
                if candidate > now and self.mode_at(candidate) != current:
                    return candidate
        return None

    def _candidates(self, day: date) -> list[datetime]:
        """Instants of `day` at which the mode may change: midnight, each range's edges
        (both readings of a repeated wall time) and the day's DST change, in order. Wall
        times that do not exist produce instants after the jump: the jump itself is in the
        list, so the first real change is still found first."""
        minutes = {0} | {m for rng in self.day_ranges(day) for m in (rng.start_min, rng.end_min)}
        out: set[datetime] = set()
        for minute in minutes:
            if minute >= 1440:
                continue  # 24:00 is the next day's midnight
            wall = datetime.combine(day, time(minute // 60, minute % 60))
            for fold in (0, 1):
                out.add(wall.replace(tzinfo=self.tz, fold=fold).astimezone(timezone.utc))
        change = _dst_change(self.tz, day)
        if change is not None:
            out.add(change)
        return sorted(out)

    def to_json(self) -> dict[str, Any]:
        def ranges(items: tuple[Range, ...]) -> list[list[str]]:
            return [[_fmt(r.start_min), _fmt(r.end_min), r.mode] for r in items]

        return {"timezone": self.tz.key, "default": self.default,
                "week": {day: ranges(self.week.get(day, ())) for day in WEEKDAYS},
                "holidays": {d.isoformat(): (v if isinstance(v, str) else ranges(v))
                             for d, v in sorted(self.holidays.items())}}


def constant(mode: str, tz: str = "UTC") -> Schedule:
    """A schedule that is always `mode`."""
    return parse_schedule({"timezone": tz, "default": mode})


# --- parsing and validation ----------------------------------------------------------------
def parse_schedule(data: Any) -> Schedule:
    """A Schedule from its JSON form, or InvalidConfig with words an owner understands:
    {"timezone": "Europe/Berlin", "default": "off",
     "week": {"mon": [["08:00", "18:00", "continuous"], ...], ...},
     "holidays": {"2026-12-25": "sunday", "2026-12-31": [["00:00", "24:00", "events"]]}}"""
    if not isinstance(data, Mapping):
        raise InvalidConfig("schedule: give an object with timezone, week and holidays")
    unknown = sorted(str(k)[:40] for k in data if k not in ("timezone", "default", "week",
                                                           "holidays"))
    if unknown:
        raise InvalidConfig(f"schedule: unknown key(s) {', '.join(unknown)}; known: "
                            "timezone, default, week, holidays")
    tz = _zone(data.get("timezone", "UTC"))
    default = _mode(data.get("default", "off"), "schedule default")
    week_data = data.get("week", {})
    if not isinstance(week_data, Mapping):
        raise InvalidConfig("schedule week: give an object of weekday -> list of ranges")
    week: dict[str, tuple[Range, ...]] = {day: () for day in WEEKDAYS}
    seen: set[str] = set()
    for key, ranges in week_data.items():
        day = _weekday(key)
        if day in seen:
            raise InvalidConfig(f"schedule week: {day} is given twice")
        seen.add(day)
        week[day] = _ranges(ranges, day)
    holidays_data = data.get("holidays", {})
    if not isinstance(holidays_data, Mapping):
        raise InvalidConfig("schedule holidays: give an object of date -> ranges or a weekday")
    if len(holidays_data) > MAX_HOLIDAYS:
        raise InvalidConfig(f"schedule holidays: at most {MAX_HOLIDAYS} dates")
    holidays: dict[date, tuple[Range, ...] | str] = {}
    for key, value in holidays_data.items():
        day = _date(key)
        if isinstance(value, str):
            holidays[day] = _weekday(value, f"holiday {key}")
        else:
            holidays[day] = _ranges(value, f"holiday {key}")
    return Schedule(tz, week, holidays, default)


def _zone(name: Any) -> ZoneInfo:
    if not isinstance(name, str) or not name or len(name) > 64 or ".." in name \
            or name.startswith("/"):
        raise InvalidConfig(f"schedule timezone: expected a name like Europe/Berlin, got "
                            f"{str(name)[:40]!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidConfig(f"schedule timezone: unknown time zone {name[:40]!r} "
                            "(use a name like Europe/Berlin)") from None


def _mode(value: Any, where: str) -> str:
    if value not in MODES:
        raise InvalidConfig(f"{where}: unknown recording mode {str(value)[:40]!r}; known: "
                            f"{', '.join(MODES)}")
    return value


def _weekday(value: Any, where: str = "schedule week") -> str:
    key = value.lower() if isinstance(value, str) else value
    key = DAY_NAMES.get(key, key)
    if key not in WEEKDAYS:
        raise InvalidConfig(f"{where}: {str(value)[:40]!r} is not a weekday (mon..sun)")
    return key


def _date(value: Any) -> date:
    try:
        if not isinstance(value, str) or not _DATE.match(value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidConfig(f"schedule holidays: {str(value)[:40]!r} is not a date like "
                            "2026-12-25") from None


def _minute(value: Any, where: str, end: bool) -> int:
    if end and value == "24:00":
        return 1440
    match = _TIME.match(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidConfig(f"{where}: {str(value)[:40]!r} is not a time like 08:30 (00:00 to "
                            f"{'24:00' if end else '23:59'})")
    return int(match.group(1)) * 60 + int(match.group(2))


def _ranges(value: Any, where: str) -> tuple[Range, ...]:
    if not isinstance(value, list):
        raise InvalidConfig(f"{where}: give a list of [start, end, mode] ranges")
    if len(value) > MAX_RANGES:
        raise InvalidConfig(f"{where}: at most {MAX_RANGES} ranges per day")
    out = []
    for item in value:
        if not isinstance(item, (list, tuple)) or len(item) != 3:
            raise InvalidConfig(f"{where}: each range is [start, end, mode], e.g. "
                                "[\"08:00\", \"18:00\", \"continuous\"]")
        start = _minute(item[0], where, end=False)
        end = _minute(item[1], where, end=True)
        if end <= start:
            raise InvalidConfig(f"{where}: the range {item[0]}-{item[1]} ends before it starts "
                                "(split a range over midnight into two days, end with 24:00)")
        out.append(Range(start, end, _mode(item[2], where)))
    out.sort(key=lambda r: r.start_min)
    for before, after in zip(out, out[1:]):
        if after.start_min < before.end_min:
            raise InvalidConfig(f"{where}: the ranges {_fmt(before.start_min)}-"
                                f"{_fmt(before.end_min)} and {_fmt(after.start_min)}-"
                                f"{_fmt(after.end_min)} overlap")
    return tuple(out)


def _fmt(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _aware(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        raise ValueError("an aware datetime is needed (UTC or a zone)")
    return instant


def _dst_change(tz: ZoneInfo, day: date) -> datetime | None:
    """The UTC instant during local `day` at which the offset changes, if any (to the second)."""
    start = datetime.combine(day, time(0), tzinfo=tz).astimezone(timezone.utc)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(timezone.utc)
    if start.astimezone(tz).utcoffset() == end.astimezone(tz).utcoffset():
        return None
    low, high = start, end   # offset(low) == offset(start) != offset(high)
    before = start.astimezone(tz).utcoffset()
    while high - low > timedelta(seconds=1):
        mid = low + (high - low) / 2
        mid = mid.replace(microsecond=0)
        if mid <= low:
            break
        if mid.astimezone(tz).utcoffset() == before:
            low = mid
        else:
            high = mid
    return high


def utc_from_us(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1e6, timezone.utc)
