"""The weekly recording schedule: midnight, 24:00, DST in Europe/Berlin, holidays,
next_change exactness and validation."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from appliance.core.errors import InvalidConfig
from appliance.recorder.schedule import constant, parse_schedule

UTC = timezone.utc


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def berlin(week=None, holidays=None, default="off"):
    return parse_schedule({"timezone": "Europe/Berlin", "default": default,
                           "week": week or {}, "holidays": holidays or {}})


EVERY_DAY = {day: [["08:00", "18:00", "continuous"], ["22:00", "24:00", "events"]]
             for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def test_ranges_and_default():
    s = berlin(EVERY_DAY)
    # 2026-06-10 is a Wednesday; Berlin is UTC+2 in summer
    assert s.mode_at(utc(2026, 6, 10, 5, 59, 59)) == "off"          # 07:59:59 local
    assert s.mode_at(utc(2026, 6, 10, 6, 0)) == "continuous"        # 08:00 local
    assert s.mode_at(utc(2026, 6, 10, 15, 59, 59)) == "continuous"
    assert s.mode_at(utc(2026, 6, 10, 16, 0)) == "off"              # 18:00: end is exclusive
    assert s.mode_at(utc(2026, 6, 10, 20, 0)) == "events"           # 22:00


def test_midnight_and_24_00():
    # Friday ends 24:00 in events, Saturday starts in continuous at 00:00
    s = berlin({"fri": [["20:00", "24:00", "events"]], "sat": [["00:00", "06:00", "continuous"]]})
    fri_2359 = utc(2026, 6, 12, 21, 59, 59)   # Friday 23:59:59 local
    assert s.mode_at(fri_2359) == "events"
    assert s.mode_at(utc(2026, 6, 12, 22, 0)) == "continuous"   # Saturday 00:00 local
    assert s.next_change(fri_2359) == utc(2026, 6, 12, 22, 0)
    assert s.next_change(utc(2026, 6, 12, 22, 0)) == utc(2026, 6, 13, 4, 0)  # Sat 06:00
    # 24:00 to 00:00 of the same mode: no change at midnight
    same = berlin({"fri": [["20:00", "24:00", "events"]], "sat": [["00:00", "01:00", "events"]]})
    assert same.next_change(fri_2359) == utc(2026, 6, 12, 23, 0)  # Saturday 01:00 local


def test_next_change_is_exact_and_skips_same_mode_edges():
    s = berlin({"wed": [["08:00", "12:00", "continuous"], ["12:00", "18:00", "continuous"]]})
    start = utc(2026, 6, 10, 7, 0)   # Wednesday 09:00 local
    assert s.next_change(start) == utc(2026, 6, 10, 16, 0)   # 18:00, not 12:00
    # from the exact change instant, the next one is the following week
    assert s.next_change(utc(2026, 6, 10, 16, 0)) == utc(2026, 6, 17, 6, 0)
    assert constant("continuous").next_change(start) is None


def test_spring_forward_hour_that_does_not_exist():
    # 2026-03-29, Sunday: Berlin jumps from 02:00 CET (01:00 UTC) to 03:00 CEST
    s = berlin({"sun": [["02:00", "03:00", "events"], ["03:00", "04:00", "continuous"]]},
               default="off")
    assert s.mode_at(utc(2026, 3, 29, 0, 59, 59)) == "off"        # 01:59:59 CET
    assert s.mode_at(utc(2026, 3, 29, 1, 0)) == "continuous"      # 03:00 CEST
    assert s.next_change(utc(2026, 3, 29, 0, 30)) == utc(2026, 3, 29, 1, 0)
    # a range that straddles the jump ends at the jump
    straddle = berlin({"sun": [["01:30", "02:30", "events"]]})
    assert straddle.mode_at(utc(2026, 3, 29, 0, 45)) == "events"  # 01:45 CET
    assert straddle.next_change(utc(2026, 3, 29, 0, 45)) == utc(2026, 3, 29, 1, 0)


def test_fall_back_repeated_hour_is_inside_twice():
    # 2026-10-25, Sunday: 03:00 CEST (01:00 UTC) becomes 02:00 CET again
    s = berlin({"sun": [["02:00", "03:00", "events"]]})
    assert s.mode_at(utc(2026, 10, 24, 23, 59)) == "off"          # 01:59 CEST
    assert s.mode_at(utc(2026, 10, 25, 0, 0)) == "events"         # 02:00 CEST (first)
    assert s.mode_at(utc(2026, 10, 25, 1, 30)) == "events"        # 02:30 CET (second)
    assert s.next_change(utc(2026, 10, 24, 23, 30)) == utc(2026, 10, 25, 0, 0)
    assert s.next_change(utc(2026, 10, 25, 0, 0)) == utc(2026, 10, 25, 2, 0)  # two real hours
    # a day range across the change lasts 25 real hours-worth of wall time correctly
    day = berlin({"sun": [["00:00", "24:00", "continuous"]]})
    begin = utc(2026, 10, 24, 22, 0)   # Sunday 00:00 CEST
    assert day.next_change(begin) == utc(2026, 10, 25, 23, 0)   # Monday 00:00 CET
    assert day.next_change(begin) - begin == timedelta(hours=25)


def test_holiday_own_day_and_like_sunday():
    week = {"thu": [["00:00", "24:00", "continuous"]], "sun": [["10:00", "12:00", "events"]]}
    s = berlin(week, holidays={"2026-12-24": [["00:00", "24:00", "events"]],
                               "2026-12-31": "sunday"})
    assert s.mode_at(utc(2026, 12, 17, 12, 0)) == "continuous"    # an ordinary Thursday
    assert s.mode_at(utc(2026, 12, 24, 12, 0)) == "events"        # Christmas Eve (Thursday)
    assert s.mode_at(utc(2026, 12, 31, 8, 0)) == "off"            # like Sunday, 09:00 local
    assert s.mode_at(utc(2026, 12, 31, 9, 30)) == "events"        # 10:30 local
    # Wednesday is off and the holiday Thursday starts off too: the first change is the
    # holiday's 10:00 (09:00 UTC), not the ordinary Thursday's midnight
    assert s.next_change(utc(2026, 12, 30, 12, 0)) == utc(2026, 12, 31, 9, 0)
    assert s.next_change(utc(2026, 12, 16, 12, 0)) == utc(2026, 12, 16, 23, 0)  # ordinary Thu
    assert s.to_json()["holidays"]["2026-12-31"] == "sun"
    assert s.modes() == {"off", "continuous", "events"}
    assert parse_schedule(s.to_json()) == s


@pytest.mark.parametrize("data, words", [
    ({"week": {"mon": [["08:00", "12:00", "continuous"], ["11:00", "13:00", "off"]]}}, "overlap"),
    ({"week": {"mon": [["18:00", "08:00", "continuous"]]}}, "ends before it starts"),
    ({"week": {"mon": [["8:00", "12:00", "continuous"]]}}, "not a time"),
    ({"week": {"mon": [["24:00", "24:00", "continuous"]]}}, "not a time"),
    ({"week": {"mon": [["08:00", "12:60", "continuous"]]}}, "not a time"),
    ({"week": {"mon": [["08:00", "12:00", "sometimes"]]}}, "unknown recording mode"),
    ({"week": {"funday": []}}, "not a weekday"),
    ({"week": {"mon": [["08:00", "09:00"]]}}, "each range is"),
    ({"week": {"mon": [[f"{h:02d}:00", f"{h:02d}:30", "off"] for h in range(13)]}},
     "at most 12"),
    ({"timezone": "Mars/Olympus"}, "unknown time zone"),
    ({"timezone": "../../etc/passwd"}, "expected a name"),
    ({"holidays": {"2026-02-30": "sunday"}}, "not a date"),
    ({"holidays": {"2026-12-25": "someday"}}, "not a weekday"),
    ({"default": "maybe"}, "unknown recording mode"),
    ({"colour": "red"}, "unknown key"),
])
def test_validation_errors(data, words):
    with pytest.raises(InvalidConfig, match=words):
        parse_schedule(data)


def test_naive_datetime_refused():
    with pytest.raises(ValueError):
        constant("off").mode_at(datetime(2026, 1, 1))
