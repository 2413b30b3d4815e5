"""SMART health of each disk from `smartctl --json`, a verdict, and alerts on trends.

A recorder writes around the clock, so a disk that is starting to fail must be noticed
while the mirror can still be rebuilt. smartctl knows every drive family, USB bridge and
NVMe quirk; we run it and read its JSON rather than talking to disks ourselves.

How it is run: `smartctl --json=c -a -n standby [-d TYPE] /dev/X`. `-a` (identity,
health, attributes, error and self-test logs) is all the verdict needs; `-x` adds
extended logs (SCT temperature history, device statistics, SATA phy counters) that cost
more commands per disk and fail on many USB bridges, setting exit bit 2 for reasons that
say nothing about the disk. `-n standby` keeps smartctl from spinning up a sleeping disk.

The exit status is a bitmask (hardware.md §4.1), not success/failure: bit 3 (FAILING) or
bit 7 (self-test errors) come with perfectly valid JSON. It is decoded, never used as a
reason to drop the output.

USB bridges: when smartctl cannot tell the device type ("Unknown USB bridge", "Unable to
detect device type") or reads no SMART data, the reader retries with `-d sat`, then
`-d sat,12`, and remembers the type that worked for that device. A disk that still gives
nothing is "unavailable" with smartctl's own words: not an error, and never "healthy".

Verdict (hardware.md §4.2): FAILING status, an NVMe critical warning, a failed self-test
or an attribute below its threshold now is critical; any of Backblaze's five counters
(5, 187, 188, 197, 198) above zero, or scrutiny's extra ones (10, 184, 196), NVMe media
errors, or UDMA CRC errors (a cable or bridge fault, said so) is a warning. Temperature is
reported beside the verdict, not in it: a hot cabinet needs airflow, not a new disk.

Trends: `SmartHistory` keeps the last counter values per disk serial in a small JSON file
(written atomically, and only when something that alerts changed, to spare the flash), and
`smart_alerts` raises an alert when a counter rises, the verdict changes or the temperature
crosses a limit. A healthy disk whose numbers do not move never alerts.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from appliance.core.commands import output_of
from appliance.core.files import atomic_write
from appliance.storage.alerts import Alert

log = logging.getLogger(__name__)

OVERALLS = ("passed", "failing", "unavailable", "standby", "unknown")
VERDICTS = ("healthy", "warning", "critical", "unavailable", "unknown")
TEMPERATURE_LEVELS = ("", "normal", "warning", "critical")

EXIT_BITS = (
    "command_line",        # b0: bad command line (7.3: also "Unable to detect device type")
    "open_failed",         # b1: open failed, no IDENTIFY, or asleep (with -n standby)
    "command_failed",      # b2: a SMART or other ATA command failed, or a checksum error
    "smart_failing",       # b3: SMART status says FAILING
    "prefail_threshold",   # b4: a prefail attribute is at or below its threshold now
    "past_threshold",      # b5: an attribute was at or below its threshold in the past
    "error_log",           # b6: the device error log has errors
    "self_test_log",       # b7: the self-test log has errors
)
_EXIT_WORDS = {
    "command_line": "smartctl could not use its command line or detect the device type",
    "open_failed": "the device could not be opened or did not identify itself",
    "command_failed": "a SMART command to the device failed",
}

FALLBACK_TYPES = ("sat", "sat,12")
RUN_TIMEOUT_S = 60.0

# ATA attribute id -> counter name. Raw values of these count events.
ATA_COUNTERS = {
    5: "reallocated_sectors", 10: "spin_retries", 184: "end_to_end_errors",
    187: "reported_uncorrectable", 188: "command_timeouts", 193: "load_cycles",
    196: "reallocation_events", 197: "pending_sectors", 198: "offline_uncorrectable",
    199: "udma_crc_errors",
}
# Counters that mean trouble above zero, in report order, with their (singular, plural).
TROUBLE_COUNTERS = {
    "reallocated_sectors": ("reallocated sector", "reallocated sectors"),
    "pending_sectors": ("pending sector", "pending sectors"),
    "offline_uncorrectable": ("offline uncorrectable sector", "offline uncorrectable sectors"),
    "reported_uncorrectable": ("reported uncorrectable error", "reported uncorrectable errors"),
    "command_timeouts": ("command timeout", "command timeouts"),
    "spin_retries": ("spin-up retry", "spin-up retries"),
    "end_to_end_errors": ("end-to-end error", "end-to-end errors"),
    "reallocation_events": ("reallocation event", "reallocation events"),
    "media_errors": ("NVMe media error", "NVMe media errors"),
    "grown_defects": ("grown defect", "grown defects"),
    "udma_crc_errors": ("UDMA CRC error", "UDMA CRC errors"),
}
_CABLE_HINT = ": check the SATA cable or USB bridge (a link fault, not the disk)"

NVME_CRITICAL_WARNING_BITS = (
    "available spare below threshold",
    "temperature outside its limits",
    "reliability degraded by media or internal errors",
    "media placed in read-only mode",
    "volatile memory backup failed",
    "persistent memory region unreliable",
)


@dataclass(frozen=True)
class TemperatureLimits:
    warning_c: int
    critical_c: int


HDD_LIMITS = TemperatureLimits(55, 60)     # most 3.5" drives are rated to 60 C
SSD_LIMITS = TemperatureLimits(70, 80)     # NVMe and SATA SSDs throttle around 70-80 C
HYSTERESIS_C = 3                           # a level falls back only 3 C below its limit

Runner = Callable[[Sequence[str]], tuple[int, str]]
"""Runs argv and returns (exit code, stdout); -1 for a timeout, 127 when not installed."""


def run_command(argv: Sequence[str], timeout: float = RUN_TIMEOUT_S) -> tuple[int, str]:
    """The real runner: (exit code, stdout); -1 on timeout, 127 when not installed."""
    return output_of(argv, timeout)


def smartctl_argv(device: str, device_type: str = "") -> list[str]:
    argv = ["smartctl", "--json=c", "-a", "-n", "standby"]
    if device_type:
        argv += ["-d", device_type]
    return argv + [device]


def decode_exit_status(code: int | None) -> tuple[str, ...]:
    if code is None or not 0 <= code <= 255:
        return ()
    return tuple(name for bit, name in enumerate(EXIT_BITS) if code & (1 << bit))


# ----------------------------------------------------------------------------- data
@dataclass(frozen=True)
class SelfTest:
    kind: str                    # smartctl's words: "Short offline", "Extended offline", ...
    status: str                  # "Completed without error", "Completed: read failure", ...
    passed: bool | None          # None while running, or when aborted or interrupted
    lifetime_hours: int | None = None
    failing_lba: int | None = None


@dataclass(frozen=True)
class NvmeHealth:
    critical_warning: int
    critical_warnings: tuple[str, ...]
    available_spare: int | None = None
    available_spare_threshold: int | None = None
    percentage_used: int | None = None


@dataclass(frozen=True)
class DiskSmart:
    device: str
    overall: str                 # one of OVERALLS
    verdict: str = "unknown"     # one of VERDICTS
    reasons: tuple[str, ...] = ()
    message: str = ""            # smartctl's words when it read no SMART data
    device_type: str = ""        # the -d that was used ("" = smartctl's own detection)
    protocol: str = ""           # ATA, NVMe, SCSI
    model: str = ""
    serial: str = ""
    firmware: str = ""
    capacity_bytes: int | None = None
    rotation_rate: int | None = None   # rpm; 0 = solid state
    power_mode: str = ""         # STANDBY, SLEEP, IDLE... when smartctl did not wake the disk
    temperature_c: int | None = None
    temperature_level: str = ""  # normal, warning, critical; "" without a temperature
    power_on_hours: int | None = None
    power_cycles: int | None = None
    counters: dict[str, int] = field(default_factory=dict)
    nvme: NvmeHealth | None = None
    self_test: SelfTest | None = None   # newest self-test that counts (see _ata_self_test)
    threshold_failures: tuple[str, ...] = ()   # attributes below threshold now
    threshold_past: tuple[str, ...] = ()       # attributes below threshold in the past
    exit_status: int | None = None
    exit_flags: tuple[str, ...] = ()
    attempts: tuple[str, ...] = ()      # one line per smartctl run behind this reading

    def __post_init__(self) -> None:
        if self.overall not in OVERALLS or self.verdict not in VERDICTS:
            raise ValueError(f"bad overall/verdict {self.overall!r}/{self.verdict!r}")

    @property
    def solid_state(self) -> bool:
        return self.protocol == "NVMe" or self.rotation_rate == 0

    def to_json(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


# ----------------------------------------------------------------------------- JSON access
def _get(doc: Any, *path: str | int) -> Any:
    for key in path:
        if isinstance(key, str) and isinstance(doc, dict):
            doc = doc.get(key)
        elif isinstance(key, int) and isinstance(doc, list) and -len(doc) <= key < len(doc):
            doc = doc[key]
        else:
            return None
    return doc


def _int(doc: Any, *path: str | int) -> int | None:
    value = _get(doc, *path)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(doc: Any, *path: str | int) -> str:
    value = _get(doc, *path)
    return value if isinstance(value, str) else ""


def _bool(doc: Any, *path: str | int) -> bool | None:
    value = _get(doc, *path)
    return value if isinstance(value, bool) else None


def _first(*values: int | None) -> int | None:
    return next((v for v in values if v is not None), None)


def _list(doc: Any, *path: str | int) -> list[Any]:
    value = _get(doc, *path)
    return value if isinstance(value, list) else []


# ----------------------------------------------------------------------------- parsing
def _raw_count(attribute: Any) -> int | None:
    """An attribute's raw counter. Some drives pack three 16-bit counters into the 48-bit
    raw value (Seagate's 188 reads 4295032833 = "1 1 1"); then smartctl's raw string has
    them apart and the first one is used."""
    value = _int(attribute, "raw", "value")
    if value is None or value < 1 << 32:
        return value
    first = re.match(r"\s*(\d+)", _str(attribute, "raw", "string"))
    return int(first[1]) if first else value & 0xFFFF


def _ata_attributes(doc: Any) -> tuple[dict[str, int], tuple[str, ...], tuple[str, ...]]:
    counters: dict[str, int] = {}
    now, past = [], []
    for attribute in _list(doc, "ata_smart_attributes", "table"):
        ident, name = _int(attribute, "id"), _str(attribute, "name") or "attribute"
        if ident in ATA_COUNTERS:
            count = _raw_count(attribute)
            if count is not None:
                counters[ATA_COUNTERS[ident]] = count
        when = _str(attribute, "when_failed")
        if when in ("now", "past"):
            (now if when == "now" else past).append(f"{ident} {name}")
    return counters, tuple(now), tuple(past)


def _nvme(doc: Any) -> tuple[NvmeHealth | None, dict[str, int]]:
    health = _get(doc, "nvme_smart_health_information_log")
    if not isinstance(health, dict):
        return None, {}
    warning = _int(health, "critical_warning") or 0
    counters = {name: value for name, value in (
        ("media_errors", _int(health, "media_errors")),
        ("error_log_entries", _int(health, "num_err_log_entries")),
        ("unsafe_shutdowns", _int(health, "unsafe_shutdowns"))) if value is not None}
    bits = tuple(text for bit, text in enumerate(NVME_CRITICAL_WARNING_BITS)
                 if warning & (1 << bit))
    return NvmeHealth(warning, bits, _int(health, "available_spare"),
                      _int(health, "available_spare_threshold"),
                      _int(health, "percentage_used")), counters


def _self_test_entry(entry: Any) -> SelfTest | None:
    if not isinstance(entry, dict):
        return None
    if "self_test_result" in entry:  # NVMe (smartctl 7.4 and later)
        result = _int(entry, "self_test_result", "value")
        passed = True if result == 0 else False if result in (5, 6, 7) else None
        return SelfTest(_str(entry, "self_test_code", "string"),
                        _str(entry, "self_test_result", "string"), passed,
                        _int(entry, "power_on_hours"))
    value = _int(entry, "status", "value")
    code = None if value is None else value >> 4   # high nibble; low nibble is % remaining
    if code is None:
        passed = _bool(entry, "status", "passed")
    else:  # 0 ok; 1 aborted, 2 interrupted, 15 running: no verdict; 3-8 are failures
        passed = True if code == 0 else False if 3 <= code <= 8 else None
    return SelfTest(_str(entry, "type", "string"), _str(entry, "status", "string"), passed,
                    _int(entry, "lifetime_hours"), _int(entry, "lba"))


def _self_test(doc: Any) -> SelfTest | None:
    """The newest self-test that counts. As for smartctl's exit bit 7, a failure stays
    until a newer extended test passes; a passing short test does not cover it, since a
    short test reads only a sample of the surface."""
    table = (_list(doc, "ata_smart_self_test_log", "standard", "table")
             or _list(doc, "nvme_self_test_log", "table"))
    tests = [t for t in (_self_test_entry(e) for e in table) if t is not None]
    for test in tests:  # newest first
        if test.passed is False:
            return test
        if test.passed and test.kind.lower().startswith(("extended", "long")):
            break
    return tests[0] if tests else None


def _messages(doc: dict[str, Any]) -> tuple[str, ...]:
    entries = _list(doc, "smartctl", "messages") or _list(doc, "messages")
    return tuple(_str(e, "string") for e in entries if _str(e, "string"))


def _unreadable_message(doc: Any, messages: Sequence[str], flags: Sequence[str],
                        code: int | None) -> str:
    if messages:
        return "; ".join(messages)
    if _bool(doc, "smart_support", "available") is False:
        return "the device has no SMART capability"
    words = [_EXIT_WORDS[f] for f in flags if f in _EXIT_WORDS]
    return f"{'; '.join(words) or 'smartctl returned no SMART data'} (exit {code})"


_RUN_FAILURES = {-1: "smartctl timed out", 126: "smartctl could not be run",
                 127: "smartctl is not installed"}


def _no_output(device: str, device_type: str, code: int | None, stdout: str) -> DiskSmart:
    if not stdout.strip():
        message = _RUN_FAILURES.get(code or 0, f"smartctl printed nothing (exit {code})")
    else:
        message = (f"smartctl output is not smartctl JSON, perhaps cut short "
                   f"({len(stdout)} bytes, exit {code})")
    return _assessed(DiskSmart(device=device, overall="unknown", message=message,
                              device_type=device_type, exit_status=code,
                              exit_flags=decode_exit_status(code)))


def parse_smartctl(exit_code: int | None, stdout: str, device: str = "",
                   device_type: str = "") -> DiskSmart:
    """One DiskSmart from smartctl's exit code and JSON. Never raises: output that is not
    smartctl JSON (cut short, empty, garbage) gives overall "unknown" with a message."""
    try:
        doc = json.loads(stdout)
    except (ValueError, RecursionError):
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get("smartctl"), dict):
        return _no_output(device, device_type, exit_code, stdout)
    code = exit_code if exit_code is not None else _int(doc, "smartctl", "exit_status")
    flags = decode_exit_status(code)
    messages = _messages(doc)
    counters, now, past = _ata_attributes(doc)
    nvme, nvme_counters = _nvme(doc)
    counters.update(nvme_counters)
    grown_defects = _int(doc, "scsi_grown_defect_list")
    if grown_defects is not None:
        counters["grown_defects"] = grown_defects
    power = next(filter(None, (re.search(r"Device is in (\w+)", m) for m in messages)), None)
    passed = _bool(doc, "smart_status", "passed")
    has_data = bool(counters) or nvme is not None or passed is not None
    if passed is not None or "smart_failing" in flags:
        overall = "passed" if passed else "failing"
    elif power:
        overall = "standby"
    else:
        overall = "unknown" if has_data else "unavailable"
    message = ""
    if overall in ("unavailable", "standby"):
        message = _unreadable_message(doc, messages, flags, code)
    elif overall == "unknown":
        message = "SMART overall status not reported"
    disk = DiskSmart(
        device=_str(doc, "device", "name") or device, overall=overall, message=message,
        device_type=device_type, protocol=_str(doc, "device", "protocol"),
        model=(_str(doc, "model_name") or _str(doc, "scsi_model_name")
               or " ".join(filter(None, (_str(doc, "scsi_vendor"), _str(doc, "scsi_product"))))),
        serial=_str(doc, "serial_number"),
        firmware=_str(doc, "firmware_version") or _str(doc, "scsi_revision"),
        capacity_bytes=_int(doc, "user_capacity", "bytes"),
        rotation_rate=_int(doc, "rotation_rate"), power_mode=power[1] if power else "",
        temperature_c=_first(_int(doc, "temperature", "current"),
                             _int(doc, "nvme_smart_health_information_log", "temperature")),
        power_on_hours=_int(doc, "power_on_time", "hours"),
        power_cycles=_int(doc, "power_cycle_count"), counters=counters, nvme=nvme,
        self_test=_self_test(doc), threshold_failures=now, threshold_past=past,
        exit_status=code, exit_flags=flags)
    return _assessed(disk)


# ----------------------------------------------------------------------------- verdict
def _count_phrase(name: str, count: int) -> str:
    singular, plural = TROUBLE_COUNTERS[name]
    text = f"{count} {singular if count == 1 else plural}"
    return text + _CABLE_HINT if name == "udma_crc_errors" else text


def _problems(disk: DiskSmart) -> tuple[list[str], list[str]]:
    """(critical reasons, warning reasons) found in a reading."""
    critical, warning = [], []
    if disk.overall == "failing":
        critical.append("SMART overall-health self-assessment failed")
    critical += [f"attribute {a} is below its failure threshold" for a in disk.threshold_failures]
    warning += [f"attribute {a} was below its failure threshold in the past"
                for a in disk.threshold_past]
    if disk.nvme is not None:
        critical += [f"NVMe critical warning: {text}" for text in disk.nvme.critical_warnings]
        if (disk.nvme.percentage_used or 0) >= 100:
            warning.append(f"rated endurance used up ({disk.nvme.percentage_used} % used)")
    test = disk.self_test
    if test is not None and test.passed is False:
        where = f" at LBA {test.failing_lba}" if test.failing_lba is not None else ""
        critical.append(f"{test.kind.lower() or 'last'} self-test failed: {test.status}{where}")
    for name in TROUBLE_COUNTERS:
        if disk.counters.get(name, 0) > 0:
            warning.append(_count_phrase(name, disk.counters[name]))
    return critical, warning


def assess(disk: DiskSmart) -> tuple[str, tuple[str, ...]]:
    """(verdict, reasons) for a reading (hardware.md §4.2)."""
    if disk.overall == "unavailable":
        return "unavailable", (disk.message or "SMART data unavailable",)
    if disk.overall == "standby":
        return "unknown", (f"disk in {disk.power_mode or 'standby'}; "
                           "SMART not read so as not to wake it",)
    critical, warning = _problems(disk)
    if critical:
        return "critical", tuple(critical + warning)
    if warning:
        return "warning", tuple(warning)
    if disk.overall == "unknown":
        return "unknown", (disk.message,)
    return "healthy", ()


def temperature_level(temperature: int | None, solid_state: bool, previous: str = "") -> str:
    """normal, warning or critical; a level is left only HYSTERESIS_C below its limit, so
    a disk sitting at a limit does not alert on every poll. Keeps `previous` without a
    temperature."""
    if temperature is None:
        return previous
    limits = SSD_LIMITS if solid_state else HDD_LIMITS
    if temperature >= limits.critical_c:
        return "critical"
    if previous == "critical" and temperature > limits.critical_c - HYSTERESIS_C:
        return "critical"
    if temperature >= limits.warning_c:
        return "warning"
    if previous in ("warning", "critical") and temperature > limits.warning_c - HYSTERESIS_C:
        return "warning"
    return "normal"


def _assessed(disk: DiskSmart) -> DiskSmart:
    verdict, reasons = assess(disk)
    return replace(disk, verdict=verdict, reasons=reasons,
                   temperature_level=temperature_level(disk.temperature_c, disk.solid_state))


# ----------------------------------------------------------------------------- reader
def _attempt_line(device_type: str, disk: DiskSmart) -> str:
    said = disk.message if disk.overall in ("unavailable", "unknown", "standby") else disk.overall
    return f"{device_type or 'auto'}: exit {disk.exit_status}" + (f", {said}" if said else "")


def _type_works(disk: DiskSmart) -> bool:
    """Did this -d type reach the disk? SLEEP does not count: smartctl also says SLEEP when
    the power-mode command fails, which is what a wrong type looks like."""
    if disk.overall in ("passed", "failing") or disk.serial:
        return True
    return disk.overall == "standby" and disk.power_mode != "SLEEP"


class SmartReader:
    """Reads one disk, trying USB bridge types when smartctl cannot reach it directly."""

    def __init__(self, run: Runner | None = None,
                 fallback_types: Sequence[str] = FALLBACK_TYPES) -> None:
        self._run = run or run_command
        self._fallback_types = tuple(fallback_types)
        self._types: dict[str, str] = {}   # device -> the -d type that worked

    def _attempt(self, device: str, device_type: str) -> DiskSmart:
        code, out = self._run(smartctl_argv(device, device_type))
        return parse_smartctl(code, out, device, device_type)

    def forget(self, device: str) -> None:
        """Drops the remembered type, e.g. when udev reports the device removed."""
        self._types.pop(device, None)

    def read(self, device: str, device_type: str | None = None) -> DiskSmart:
        """device_type given: exactly that. Otherwise the type that worked last time, or
        smartctl's own detection, then the fallback types."""
        if device_type is not None:
            disk = self._attempt(device, device_type)
            return replace(disk, attempts=(_attempt_line(device_type, disk),))
        known = self._types.get(device)
        if known is not None:
            disk = self._attempt(device, known)
            if _type_works(disk):
                return replace(disk, attempts=(_attempt_line(known, disk),))
            self.forget(device)
        first = self._attempt(device, "")
        attempts = [_attempt_line("", first)]
        if first.overall != "unavailable" or first.protocol == "NVMe":
            return replace(first, attempts=tuple(attempts))
        for fallback in self._fallback_types:
            disk = self._attempt(device, fallback)
            attempts.append(_attempt_line(fallback, disk))
            if _type_works(disk):
                self._types[device] = fallback
                log.info("smart: disk=%s reads with -d %s", device, fallback)
                return replace(disk, attempts=tuple(attempts))
        tried = " and ".join(f"-d {t}" for t in self._fallback_types)
        message = f"{first.message}; also tried {tried}" if tried else first.message
        return _assessed(replace(first, message=message, attempts=tuple(attempts)))


# ----------------------------------------------------------------------------- trends
@dataclass(frozen=True)
class SmartSnapshot:
    """What alerts compare against: the last known verdict, temperature level, counters."""

    key: str
    device: str = ""
    model: str = ""
    verdict: str = "unknown"
    temperature_level: str = ""
    counters: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


def disk_key(disk: DiskSmart) -> str:
    """Disks are followed by serial number (device names move between boots)."""
    return disk.serial or f"device:{disk.device}"


def snapshot_of(current: DiskSmart, previous: SmartSnapshot | None) -> SmartSnapshot:
    """The snapshot after `current`: a standby or unreadable poll keeps what was known.
    Only the counters that alert are kept; load cycles or power-on hours move on every
    poll and would rewrite the file each time."""
    counters = dict(previous.counters) if previous else {}
    counters.update((k, v) for k, v in current.counters.items() if k in TROUBLE_COUNTERS)
    verdict = current.verdict
    if verdict == "unknown" and previous is not None:
        verdict = previous.verdict
    level = temperature_level(current.temperature_c, current.solid_state,
                              previous.temperature_level if previous else "")
    return SmartSnapshot(disk_key(current), current.device, current.model, verdict, level,
                         counters)


def _label(disk: DiskSmart) -> str:
    names = " ".join(part for part in (disk.model, disk.serial) if part)
    return f"{disk.device} ({names})" if names else disk.device


_VERDICT_RANK = {"healthy": 0, "unavailable": 1, "warning": 2, "critical": 3}
_LEVEL_RANK = {"": 0, "normal": 0, "warning": 1, "critical": 2}


def _verdict_alert(previous: SmartSnapshot | None, current: DiskSmart, source: str,
                   key: str) -> Alert | None:
    old = previous.verdict if previous else None
    new = current.verdict
    if new == "unknown" or new == old:
        return None
    label = _label(current)
    if new == "healthy":
        if old in (None, "unknown"):
            return None
        return Alert("info", source, f"{label}: SMART healthy again", f"{key}:verdict")
    if new == "unavailable":
        severity = "info" if old in (None, "unknown") else "warning"
        return Alert(severity, source, f"{label}: SMART unavailable: {current.message}",
                     f"{key}:verdict")
    worse = _VERDICT_RANK[new] > _VERDICT_RANK.get(old or "", 0)
    severity = new if worse else "info"
    return Alert(severity, source, f"{label}: {new}: {'; '.join(current.reasons)}",
                 f"{key}:verdict")


def _temperature_alert(previous: SmartSnapshot | None, current: DiskSmart, source: str,
                       key: str) -> Alert | None:
    old = previous.temperature_level if previous else ""
    new = temperature_level(current.temperature_c, current.solid_state, old)
    if _LEVEL_RANK[new] == _LEVEL_RANK[old]:
        return None
    if _LEVEL_RANK[new] < _LEVEL_RANK[old] and new != "normal":
        return None  # cooling from critical to warning: the next word is "back to normal"
    limits = SSD_LIMITS if current.solid_state else HDD_LIMITS
    label = _label(current)
    if new == "normal":
        return Alert("info", source, f"{label}: temperature back to {current.temperature_c} C",
                     f"{key}:temperature")
    limit = limits.critical_c if new == "critical" else limits.warning_c
    return Alert(new, source, f"{label}: temperature {current.temperature_c} C reached the "
                 f"{new} limit of {limit} C; improve airflow", f"{key}:temperature")


def smart_alerts(previous: SmartSnapshot | None, current: DiskSmart) -> list[Alert]:
    """Alerts for what changed since `previous` (None: first sight of this disk).

    A verdict change alerts once (its message lists the reasons, e.g. "8 reallocated
    sectors"); a counter that rises while the verdict stays the same alerts on its own
    (pending 2 -> 5). A standby or unreadable poll changes nothing. Counters never alert on
    first sight: there is no baseline, and the verdict already says if they are above zero.
    """
    key = f"smart:{disk_key(current)}"
    source = f"smart:{current.serial or current.device}"
    alerts = [a for a in (_verdict_alert(previous, current, source, key),
                          _temperature_alert(previous, current, source, key)) if a is not None]
    verdict_changed = any(a.key.endswith(":verdict") for a in alerts)
    if previous is None or verdict_changed:
        return alerts
    for name in TROUBLE_COUNTERS:
        old, new = previous.counters.get(name), current.counters.get(name)
        if old is not None and new is not None and new > old:
            singular, plural = TROUBLE_COUNTERS[name]
            hint = _CABLE_HINT if name == "udma_crc_errors" else ""
            alerts.append(Alert("warning", source,
                                f"{_label(current)}: {plural} rose from {old} to {new}{hint}",
                                f"{key}:{name}"))
    return alerts


def _snapshot_from_json(key: str, data: Any) -> SmartSnapshot | None:
    if not isinstance(data, dict):
        return None
    counters = data.get("counters")
    if not isinstance(counters, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in counters.values()):
        return None
    verdict, level = data.get("verdict"), data.get("temperature_level")
    if verdict not in VERDICTS or level not in TEMPERATURE_LEVELS:
        return None
    return SmartSnapshot(key, str(data.get("device", "")), str(data.get("model", "")),
                         verdict, level, dict(counters))


def write_atomically(path: Path, data: bytes) -> None:
    """After a power cut the file is either the old or the new version, never a torn one."""
    atomic_write(path, data)


class SmartHistory:
    """The last snapshot per disk, kept in a small JSON file at `path`.

    A missing or damaged file starts an empty history (it only holds trend baselines; the
    cost of losing it is one poll without counter-rise alerts). `save()` writes only when
    a snapshot changed; temperature is stored as a level, so a disk warming by a degree
    does not rewrite the file on flash.
    """

    VERSION = 1

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._snapshots = self._load()
        self._dirty = False

    def _load(self) -> dict[str, SmartSnapshot]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as err:
            log.warning("smart: history=%s unreadable (%s); starting a new one", self.path, err)
            return {}
        disks = data.get("disks") if isinstance(data, dict) else None
        if not isinstance(disks, dict) or data.get("version") != self.VERSION:
            log.warning("smart: history=%s has an unknown layout; starting a new one", self.path)
            return {}
        loaded = {key: _snapshot_from_json(key, entry) for key, entry in disks.items()}
        return {key: snap for key, snap in loaded.items() if snap is not None}

    def get(self, key: str) -> SmartSnapshot | None:
        return self._snapshots.get(key)

    def snapshots(self) -> dict[str, SmartSnapshot]:
        return dict(self._snapshots)

    def observe(self, disk: DiskSmart) -> list[Alert]:
        """Alerts for this reading against the last one; then remembers it."""
        previous = self._snapshots.get(disk_key(disk))
        alerts = smart_alerts(previous, disk)
        snapshot = snapshot_of(disk, previous)
        if snapshot != previous:
            self._snapshots[snapshot.key] = snapshot
            self._dirty = True
        return alerts

    def observe_all(self, disks: Iterable[DiskSmart]) -> list[Alert]:
        return [alert for disk in disks for alert in self.observe(disk)]

    def save(self) -> bool:
        """Writes the file if anything changed; returns whether it wrote."""
        if not self._dirty:
            return False
        data = {"version": self.VERSION,
                "disks": {key: {k: v for k, v in snap.to_json().items() if k != "key"}
                          for key, snap in sorted(self._snapshots.items())}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path, json.dumps(data, indent=1, sort_keys=True).encode())
        self._dirty = False
        return True
