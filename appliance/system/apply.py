"""Making the OS follow the settings: render the files, then tell systemd what changed.

At boot (`nvr system apply`, ordered before systemd-networkd and systemd-timesyncd and
before D-Bus runs) the files are written before those daemons start, so they read them on
their own: only the host name is set (`hostname -- NAME`: sethostname(2)) and, with NTP
off, timesyncd is masked for this boot (systemctl reaches PID 1 without D-Bus). At a
change, only the affected daemons are touched:

* host name: `hostnamectl --transient hostname NAME` (systemd-hostnamed over D-Bus; the
  static name /etc/hostname is a link to run/vigil/hostname, which is written first);
* time zone: nothing to run, the /etc/localtime link now points elsewhere;
* NTP: `systemctl mask --runtime --now systemd-timesyncd.service` when off (a runtime
  mask lives in /run: `timedatectl set-ntp` would write /etc, which is read-only), or
  `unmask --runtime` and `restart` when on or when the servers changed;
* network: `networkctl reload` (networkd reconfigures the links whose file changed).

A failing command does not undo the saved settings (they are right; the box applies
them at the next boot at the latest): it is reported back with the tool's own words.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone

from appliance.core.errors import InvalidConfig
from appliance.system.backends import SystemOS
from appliance.system.render import render
from appliance.system.settings import SystemSettings

log = logging.getLogger(__name__)

TIMESYNCD = "systemd-timesyncd.service"
EARLIEST = datetime(2024, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2100, 1, 1, tzinfo=timezone.utc)


@dataclass
class ApplyReport:
    ran: list[list[str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"ran": self.ran, "problems": self.problems}


def commands_for(new: SystemSettings, old: SystemSettings | None, boot: bool) -> list[list[str]]:
    fresh = boot or old is None
    argv: list[list[str]] = []
    if boot:
        # Before D-Bus is up: sethostname(2) through Debian's essential `hostname` tool
        # (the boot unit is not in vigil-hwd's ProtectHostname= sandbox).
        argv.append(["hostname", "--", new.hostname])
    elif fresh or new.hostname != old.hostname:
        argv.append(["hostnamectl", "--transient", "hostname", new.hostname])
    time_changed = fresh or (new.time.ntp, new.time.ntp_servers) != (old.time.ntp,
                                                                     old.time.ntp_servers)
    if not new.time.ntp and time_changed:
        argv.append(["systemctl", "mask", "--runtime", "--now", TIMESYNCD])
    elif new.time.ntp and time_changed and not boot:
        argv.append(["systemctl", "unmask", "--runtime", TIMESYNCD])
        argv.append(["systemctl", "restart", TIMESYNCD])
    network_changed = fresh or new.network != old.network or \
        new.time.ntp_servers != old.time.ntp_servers  # UseNTP= is in the .network file
    if network_changed and not boot:
        argv.append(["networkctl", "reload"])
    return argv


def run_all(system: SystemOS, commands: list[list[str]], report: ApplyReport) -> ApplyReport:
    for argv in commands:
        result = system.run(argv)
        report.ran.append(argv)
        if result.returncode != 0:
            problem = f"`{' '.join(argv[:3])}` failed: {result.tail() or result.returncode}"
            log.warning("system apply: %s", problem)
            report.problems.append(problem)
    return report


def apply_settings(system: SystemOS, settings: SystemSettings, interface: str, *,
                   previous: SystemSettings | None = None, boot: bool = False) -> ApplyReport:
    system.install(render(settings, interface))
    return run_all(system, commands_for(settings, previous, boot), ApplyReport())


def parse_manual_time(value: object, zone: str) -> datetime:
    """ISO 8601 with an offset, or without one in the box's time zone (what a
    datetime-local field sends); between 2024 and 2100."""
    from zoneinfo import ZoneInfo

    if not isinstance(value, str) or len(value) > 40:
        raise InvalidConfig("time: give the date and time as 2026-11-23T14:05 (ISO 8601)")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z")
                                      else value)
    except ValueError:
        raise InvalidConfig(f"time {value!r}: not a date and time such as "
                            "2026-11-23T14:05") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(zone))
    when = when.astimezone(timezone.utc)
    if not EARLIEST <= when < LATEST:
        raise InvalidConfig(f"time {value!r}: must be between {EARLIEST.year} and "
                            f"{LATEST.year - 1}")
    return when


def set_time_command(when: datetime) -> list[str]:
    return ["timedatectl", "set-time", when.astimezone(timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S UTC")]
