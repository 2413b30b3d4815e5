"""md RAID state: what each array is doing, read from sysfs, /proc/mdstat and mdadm.

The owner needs one word per array (healthy, degraded, rebuilding, ...) and, when it is
not healthy, which slot is missing and which disk failed. Three sources say parts of that:

* sysfs (`/sys/block/mdX/md/`) has one value per file (array_state, sync_action,
  degraded, sync_completed, dev-*/state and slot), so nothing has to be guessed from a
  layout; it is preferred whenever it can be read.
* /proc/mdstat has every array in one read and is the fallback. Its layout is easy to
  misread: the `[n]` after a member is md's descriptor number, not the slot; a `repair`
  shows as `resync`; `(S)` marks an idle spare only, not a disk being rebuilt.
* `mdadm --detail --export` has no state at all (hardware.md §3.3); it gives identity:
  the array UUID, its name and the slot (ROLE) of each member.

Every reader returns an `ArrayHealth` and never raises on bad input: text that cannot be
read gives state "unknown" with a detail saying what was wrong. `raid_alerts` turns two
readings into the alerts an owner must hear about.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from appliance.core.commands import output_of
from appliance.storage.alerts import Alert

log = logging.getLogger(__name__)

STATES = ("healthy", "degraded", "rebuilding", "resyncing", "checking", "reshaping",
          "resync_pending", "inactive", "failed", "unknown")

# State -> alert severity when an array enters it.
_SEVERITY = {
    "healthy": "info", "checking": "info",
    "rebuilding": "warning", "resyncing": "warning", "reshaping": "warning",
    "resync_pending": "warning", "unknown": "warning",
    "degraded": "critical", "failed": "critical", "inactive": "critical",
}

# Levels whose mdstat status line carries `[n/m] [U_]`; the others (raid0, linear) do not.
_PHRASES = {"failed": "has failed", "checking": "is being checked",
            "resync_pending": "has a resync pending", "unknown": "cannot be read"}

_REDUNDANT_LEVELS = ("raid1", "raid4", "raid5", "raid6", "raid10", "multipath")
# How many missing devices each level survives; raid10 depends on its layout (see below).
_TOLERATES = {"raid1": None, "raid4": 1, "raid5": 1, "raid6": 2, "raid0": 0, "linear": 0}

_MDSTAT_FLAGS = {"F": "faulty", "S": "spare", "W": "write_mostly", "J": "journal",
                 "R": "replacement"}
_MDSTAT_ACTIONS = {"recovery": "recover", "resync": "resync", "check": "check",
                   "repair": "repair", "reshape": "reshape"}
_ARRAY_STATES = ("clear", "inactive", "suspended", "readonly", "read-auto", "clean",
                 "active", "write-pending", "active-idle", "broken")
_SYNC_ACTIONS = ("idle", "frozen", "none", "resync", "recover", "check", "repair", "reshape")

Runner = Callable[[Sequence[str]], tuple[int, str]]
"""Runs argv and returns (exit code, stdout); -1 for a timeout, 127 when not installed."""


def run_command(argv: Sequence[str], timeout: float = 10.0) -> tuple[int, str]:
    """The real runner: (exit code, stdout); -1 on timeout, 127 when not installed."""
    return output_of(argv, timeout)


@dataclass(frozen=True)
class Member:
    """One component device of an array.

    flags use sysfs words: faulty, in_sync, spare (an idle hot spare with no slot),
    rebuilding (has a slot, not yet in sync), write_mostly, journal, replacement, blocked,
    write_error, want_replacement; any word the kernel adds later is kept as it is.
    """

    device: str                  # kernel name, e.g. "sda1"
    slot: int | None = None      # position in the array; None for spares, faulty or unknown
    number: int | None = None    # md's descriptor number, the [n] in mdstat (not the slot)
    flags: tuple[str, ...] = ()
    errors: int | None = None    # corrected read errors (sysfs dev-*/errors)

    @property
    def faulty(self) -> bool:
        return "faulty" in self.flags


@dataclass(frozen=True)
class ArrayHealth:
    name: str                    # kernel name: md0, md127, md_d0
    state: str                   # one of STATES
    detail: str = ""             # one sentence for the owner
    level: str = ""              # raid1, raid0, ..., "container" for external metadata
    configured: int | None = None   # devices the array is made of (n in [n/m])
    working: int | None = None      # devices in sync (m in [n/m])
    members: tuple[Member, ...] = ()
    missing_slots: tuple[int, ...] = ()
    sync_action: str = ""        # running or waiting: recover, resync, check, repair, reshape
    progress_percent: float | None = None
    eta_seconds: int | None = None
    speed_kib_s: int | None = None
    read_only: str = ""          # "", "read-only" or "auto-read-only"
    mismatch_count: int | None = None
    uuid: str = ""
    md_name: str = ""            # mdadm's MD_NAME, e.g. "vigil:data"
    source: str = ""             # which source decided the state: sysfs or mdstat
    notes: tuple[str, ...] = ()  # problems with a source that did not decide the state

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"array state must be one of {STATES}, not {self.state!r}")

    @property
    def faulty_members(self) -> tuple[str, ...]:
        return tuple(m.device for m in self.members if m.faulty)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["members"] = [dict(m, flags=list(m["flags"])) for m in data["members"]]
        data["missing_slots"] = list(self.missing_slots)
        data["notes"] = list(self.notes)
        return data


# ----------------------------------------------------------------------------- facts
class _Bad(ValueError):
    """A source said something we cannot read; its message becomes the array's detail."""


@dataclass
class _Facts:
    """What one source says about one array, before a state is derived from it."""

    name: str
    source: str
    active: bool = True
    broken: bool = False
    read_only: str = ""
    level: str = ""
    configured: int | None = None
    working: int | None = None
    slot_map: str = ""           # mdstat's [U_] pattern, "" when not known
    members: list[Member] = field(default_factory=list)
    action: str = ""             # recover, resync, check, repair, reshape; "" when idle
    waiting: str = ""            # "delayed" (another array first) or "pending" (read-only)
    percent: float | None = None
    eta_seconds: int | None = None
    speed_kib_s: int | None = None
    mismatch_count: int | None = None
    uuid: str = ""
    detail_extra: str = ""
    problem: str = ""            # set when the source could not be read


def _missing_slots(f: _Facts) -> tuple[int, ...]:
    if f.slot_map:
        return tuple(i for i, c in enumerate(f.slot_map) if c == "_")
    if not f.configured or f.level not in _REDUNDANT_LEVELS:
        return ()
    filled = {m.slot for m in f.members if "in_sync" in m.flags and not m.faulty}
    if not any(m.slot is not None for m in f.members):
        return ()  # no slot information (mdstat without [U_]); nothing to say
    return tuple(s for s in range(f.configured) if s not in filled)


def _lost_data(f: _Facts, missing: int) -> bool:
    if f.broken or f.working == 0:
        return True
    tolerated = _TOLERATES.get(f.level)
    return tolerated is not None and missing > tolerated


def _redundancy_left(f: _Facts, missing: int) -> str:
    if f.level == "raid10":  # the failed disk's mirror partner now holds the only copy
        return "part of the data has no redundancy left"
    tolerated = _TOLERATES.get(f.level)
    if tolerated is None:  # mirrors: every working copy but one is spare redundancy
        spare_copies = (f.working or 0) - 1
    else:
        spare_copies = tolerated - missing
    return "no redundancy left" if spare_copies <= 0 else "redundancy reduced"


def _names(members: list[Member], flag: str) -> str:
    return ", ".join(m.device for m in members if flag in m.flags)


def _progress(f: _Facts) -> str:
    if f.waiting == "delayed":
        return "delayed until another array on the same disks finishes"
    if f.percent is None:
        return "in progress"
    text = f"{f.percent:.1f} % done"
    if f.eta_seconds is not None:
        text += f", about {max(1, round(f.eta_seconds / 60))} min left"
    return text


def _state(f: _Facts, missing: tuple[int, ...]) -> tuple[str, str]:
    """(state, detail) for an array from what its sources say."""
    if f.problem:
        return "unknown", f.problem
    if f.level == "container":
        return "inactive", "external metadata container; its member arrays carry the state"
    members = ", ".join(m.device for m in f.members) or "no members"
    if not f.active:
        return "inactive", f"assembled from {members} but not running"
    level = f.level or "array"
    slots = ", ".join(str(s) for s in missing)
    if _lost_data(f, len(missing)):
        return "failed", (f"{level} has lost more devices than it can survive "
                          f"(missing slot {slots})")
    if f.action == "recover":
        target = f"slot {slots}" if missing else "a replacement"
        return "rebuilding", f"rebuilding {target}: {_progress(f)}"
    if missing:
        return "degraded", (f"{level} running on {f.working} of {f.configured} devices, "
                            f"slot {slots} missing; {_redundancy_left(f, len(missing))}")
    if f.action == "reshape":
        return "reshaping", f"reshape {_progress(f)}"
    if f.action in ("check", "repair"):
        return "checking", f"{f.action} {_progress(f)}"
    if f.action == "resync":
        return "resyncing", f"resync {_progress(f)}"
    if f.waiting == "pending":
        return "resync_pending", ("resync pending: the array is read-only and starts "
                                  "syncing on its first write")
    if f.level in ("raid0", "linear"):
        count = len(f.members)
        return "healthy", f"{level} across {count} device{'s' * (count != 1)} (no redundancy)"
    return "healthy", f"{level}, {f.working} of {f.configured} devices in sync"


def _health(f: _Facts, notes: Sequence[str] = ()) -> ArrayHealth:
    missing = () if f.problem else _missing_slots(f)
    if f.working is None and f.configured is not None and f.level in _REDUNDANT_LEVELS \
            and not f.problem and any(m.slot is not None for m in f.members):
        f = replace(f, working=f.configured - len(missing))
    state, detail = _state(f, missing)
    if state != "unknown":
        faulty, spares = _names(f.members, "faulty"), _names(f.members, "spare")
        extras = [f.detail_extra] if f.detail_extra else []
        extras += [f"faulty: {faulty}"] if faulty else []
        extras += [f"spare: {spares}"] if spares else []
        extras += [f.read_only] if f.read_only and state != "resync_pending" else []
        if extras:
            detail += "; " + "; ".join(extras)
    return ArrayHealth(
        name=f.name, state=state, detail=detail, level=f.level, configured=f.configured,
        working=f.working, members=tuple(f.members), missing_slots=missing,
        sync_action=f.action, progress_percent=f.percent, eta_seconds=f.eta_seconds,
        speed_kib_s=f.speed_kib_s, read_only=f.read_only, mismatch_count=f.mismatch_count,
        uuid=f.uuid, source=f.source, notes=tuple(notes))


def _unknown(name: str, source: str, problem: str) -> _Facts:
    return _Facts(name=name, source=source, problem=problem)


# ----------------------------------------------------------------------------- /proc/mdstat
_HEADER = re.compile(r"^(?P<name>md\w*)\s*:\s*(?P<rest>.*)$")
_MEMBER = re.compile(r"^(?P<dev>[^\s\[\]()]+)\[(?P<num>\d+)\](?P<flags>(?:\([A-Z]\))*)$")
_COUNTS = re.compile(r"\[(\d+)/(\d+)\]\s+\[([U_]*)\]")
_PERCENT = re.compile(r"=\s*(\d+(?:\.\d+)?)%")
_DONE = re.compile(r"\((\d+)/(\d+)\)")
_FINISH = re.compile(r"finish=(\d+(?:\.\d+)?)min")
_SPEED = re.compile(r"speed=(\d+)K/sec")
_ACTION = re.compile(r"\b(recovery|resync|check|repair|reshape)\b")


def _mdstat_header(name: str, rest: str) -> _Facts:
    words = rest.split()
    if not words or words[0] not in ("active", "inactive"):
        raise _Bad(f"mdstat line for {name} does not start with active/inactive")
    f = _Facts(name=name, source="mdstat", active=words[0] == "active")
    words = words[1:]
    if words and words[0] in ("(read-only)", "(auto-read-only)"):
        f.read_only = words.pop(0)[1:-1]
    if words and "[" not in words[0]:
        f.level = words.pop(0)
    for word in words:
        match = _MEMBER.match(word)
        if not match:
            raise _Bad(f"mdstat member {word!r} of {name} is not name[number](flags)")
        flags = tuple(_MDSTAT_FLAGS.get(c, c.lower())
                      for c in re.findall(r"\(([A-Z])\)", match["flags"]))
        f.members.append(Member(match["dev"], number=int(match["num"]), flags=flags))
    return f


def _mdstat_status(f: _Facts, line: str) -> None:
    counts = _COUNTS.search(line)
    if counts:
        f.configured, f.working, f.slot_map = int(counts[1]), int(counts[2]), counts[3]
        if len(f.slot_map) != f.configured:
            raise _Bad(f"mdstat status of {f.name} has {len(f.slot_map)} slots for "
                       f"{f.configured} devices")
    elif f.active and f.level in _REDUNDANT_LEVELS:
        raise _Bad(f"mdstat status of {f.name} has no [n/m] [U_] device count")
    elif f.active and f.level in ("raid0", "linear") \
            and not re.search(r"\d+k (chunks|rounding)", line):
        raise _Bad(f"mdstat status of {f.name} is cut short")
    if "super external:" in line and "super external:/" not in line and not f.level:
        f.level = "container"
    if f.configured is None and f.active and f.level in ("raid0", "linear"):
        f.configured = f.working = len([m for m in f.members if not m.faulty])


def _mdstat_progress(f: _Facts, line: str) -> None:
    wait = re.search(r"\b(resync|recovery)=([A-Z]+)", line)
    if wait:
        f.waiting = wait[2].lower()
        if f.waiting == "delayed":
            f.action = "recover" if "_" in f.slot_map else "resync"
        return
    action = _ACTION.search(line)
    if not action:
        raise _Bad(f"mdstat progress line of {f.name} is cut short")
    f.action = _MDSTAT_ACTIONS[action[1]]
    percent, done = _PERCENT.search(line), _DONE.search(line)
    finish, speed = _FINISH.search(line), _SPEED.search(line)
    f.percent = float(percent[1]) if percent else None
    f.eta_seconds = round(float(finish[1]) * 60) if finish else None
    f.speed_kib_s = int(speed[1]) if speed else None
    if percent is None and done and int(done[2]) > 0:
        f.percent = round(100 * int(done[1]) / int(done[2]), 1)


def _mdstat_blocks(text: str) -> tuple[list[tuple[re.Match[str], list[str]]], bool]:
    """(header match, indented lines) per array, and whether any line looked like mdstat.
    Lines of only spaces (the kernel ends every array with one) are dropped."""
    blocks: list[tuple[re.Match[str], list[str]]] = []
    recognised = False
    lines: list[str] | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if line[0] in " \t":
            if lines is not None:
                lines.append(line.strip())
            continue
        lines = None
        header = _HEADER.match(line)
        if line.startswith(("Personalities :", "unused devices:")):
            recognised = True
        elif header:
            recognised = True
            lines = []
            blocks.append((header, lines))
    return blocks, recognised


def _mdstat_array(header: re.Match[str], lines: list[str]) -> _Facts:
    name = header["name"]
    try:
        f = _mdstat_header(name, header["rest"])
        if not lines or not re.match(r"\d+ blocks", lines[0]):
            raise _Bad(f"mdstat entry for {name} has no status line")
        _mdstat_status(f, lines[0])
        for text in lines[1:]:
            if text.startswith("[") or "=" in text:
                _mdstat_progress(f, text)
            elif not text.startswith("bitmap:"):
                raise _Bad(f"mdstat line {text[:40]!r} of {name} is not understood")
    except _Bad as bad:
        return _unknown(name, "mdstat", str(bad))
    return f


def _parse_mdstat(text: str) -> tuple[dict[str, _Facts], str]:
    """Facts per array, plus a problem when the text is not mdstat at all."""
    blocks, recognised = _mdstat_blocks(text)
    if text.strip() and not recognised:
        return {}, "/proc/mdstat does not look like mdstat (no Personalities line, no arrays)"
    return {header["name"]: _mdstat_array(header, lines) for header, lines in blocks}, ""


def parse_mdstat(text: str) -> dict[str, ArrayHealth]:
    """Every array in a /proc/mdstat text. Text that is not mdstat at all gives one entry
    named "mdstat" in state unknown, so a broken source is never mistaken for "no arrays"."""
    facts, problem = _parse_mdstat(text)
    if problem:
        return {"mdstat": _health(_unknown("mdstat", "mdstat", problem))}
    return {name: _health(f) for name, f in facts.items()}


# ----------------------------------------------------------------------------- sysfs
def _sysfs_text(directory: Path, name: str) -> str | None:
    try:
        return (directory / name).read_text(encoding="utf-8", errors="replace").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as err:
        raise _Bad(f"cannot read {directory.name}/{name}: {err.strerror}") from err


def _sysfs_int(directory: Path, name: str, allow_none: bool = False) -> int | None:
    text = _sysfs_text(directory, name)
    if text is None or (allow_none and text == "none"):
        return None
    match = re.match(r"^(\d+)(?: \(\d+\))?$", text)  # raid_disks reads "4 (3)" mid-reshape
    if not match:
        raise _Bad(f"sysfs {directory.name}/{name} is not a number: {text[:20]!r}")
    return int(match[1])


def _mdadm_uuid(text: str) -> str:
    """sysfs prints the array UUID as 8-4-4-4-12, mdadm (and mdadm.conf) as four groups of
    eight hex digits separated by colons; both are the same bytes. Returns mdadm's form."""
    digits = re.sub(r"[:-]", "", text.strip()).lower()
    if not re.fullmatch(r"[0-9a-f]{32}", digits):
        return ""
    return ":".join(digits[i:i + 8] for i in range(0, 32, 8))


def _sysfs_member(directory: Path) -> Member:
    state = _sysfs_text(directory, "state")
    if state is None:
        raise _Bad(f"sysfs {directory.name} has no state")
    if not re.fullmatch(r"[a-z_,]*", state):
        raise _Bad(f"sysfs {directory.name}/state is not a flag list: {state[:30]!r}")
    flags = [("write_mostly" if w == "writemostly" else w) for w in state.split(",") if w]
    slot = _sysfs_int(directory, "slot", allow_none=True)
    if "spare" in flags and slot is not None:   # sysfs says "spare" for a disk being rebuilt
        flags[flags.index("spare")] = "rebuilding"
    return Member(directory.name[len("dev-"):], slot=slot, flags=tuple(flags),
                  errors=_sysfs_int(directory, "errors"))


def _sysfs_progress(f: _Facts, md_dir: Path) -> None:
    action = _sysfs_text(md_dir, "sync_action")
    if action is None:
        return  # raid0 and linear have no sync attributes
    if action not in _SYNC_ACTIONS:
        raise _Bad(f"sysfs sync_action of {f.name} is {action[:20]!r}")
    completed = _sysfs_text(md_dir, "sync_completed") or "none"
    if action in ("idle", "frozen", "none"):
        resync_start = _sysfs_text(md_dir, "resync_start")
        if f.read_only and resync_start not in (None, "none"):
            f.waiting = "pending"
        if action == "frozen":
            f.detail_extra = "sync frozen by an administrator"
        return
    f.action = action
    if completed == "delayed":
        f.waiting = "delayed"
        return
    if completed == "none":
        return
    done = re.fullmatch(r"(\d+) / (\d+)", completed)
    if not done:
        raise _Bad(f"sysfs sync_completed of {f.name} is {completed[:30]!r}")
    position, total = int(done[1]), int(done[2])
    f.percent = round(100 * position / total, 1) if total else None
    f.speed_kib_s = _sysfs_int(md_dir, "sync_speed", allow_none=True)
    if f.speed_kib_s:
        f.eta_seconds = round((total - position) / 2 / f.speed_kib_s)


def _sysfs_facts(name: str, md_dir: Path) -> _Facts | None:
    """Facts from /sys/block/<name>/md, or None when the node exists but holds no array."""
    f = _Facts(name=name, source="sysfs")
    array_state = _sysfs_text(md_dir, "array_state")
    if array_state is None:
        raise _Bad(f"sysfs {name}/md has no array_state")
    if array_state not in _ARRAY_STATES:
        raise _Bad(f"sysfs array_state of {name} is {array_state[:20]!r}")
    f.members = sorted((_sysfs_member(d) for d in md_dir.glob("dev-*") if d.is_dir()),
                       key=lambda m: (m.slot is None, m.slot or 0, m.device))
    if array_state == "clear" and not f.members:
        return None
    f.active = array_state not in ("clear", "inactive")
    f.broken = array_state == "broken"
    f.read_only = {"readonly": "read-only", "read-auto": "auto-read-only"}.get(array_state, "")
    if array_state == "suspended":
        f.detail_extra = "I/O suspended"
    f.level = _sysfs_text(md_dir, "level") or ""
    metadata = _sysfs_text(md_dir, "metadata_version") or ""
    if metadata.startswith("external:") and "/" not in metadata and not f.level:
        f.level = "container"
    f.configured = _sysfs_int(md_dir, "raid_disks")
    degraded = _sysfs_int(md_dir, "degraded")
    if f.configured is not None and degraded is not None:
        f.working = f.configured - degraded
    elif f.configured is not None and f.active:
        f.working = sum(1 for m in f.members if "in_sync" in m.flags and m.slot is not None)
    f.mismatch_count = _sysfs_int(md_dir, "mismatch_cnt")
    f.uuid = _mdadm_uuid(_sysfs_text(md_dir, "uuid") or "")
    if f.active:
        _sysfs_progress(f, md_dir)
    return f


def read_sysfs_array(md_dir: Path) -> ArrayHealth | None:
    """The health of one array from its sysfs directory (/sys/block/md0/md); None when
    the md node exists but holds no array (array_state "clear" and no members)."""
    name = Path(md_dir).parent.name
    try:
        facts = _sysfs_facts(name, Path(md_dir))
    except _Bad as bad:
        facts = _unknown(name, "sysfs", str(bad))
    return None if facts is None else _health(facts)


# ----------------------------------------------------------------------------- mdadm --export
@dataclass(frozen=True)
class MdadmExport:
    """What `mdadm --detail --export` says: identity and member roles, no state."""

    level: str = ""
    devices: int | None = None
    metadata: str = ""
    uuid: str = ""
    devname: str = ""            # name under /dev/md/
    md_name: str = ""            # MD_NAME, "host:name" for metadata 1.x
    roles: tuple[tuple[str, int | None], ...] = ()  # (device, slot); None = "spare"
    problem: str = ""


_EXPORT_LINE = re.compile(r"^(MD_[A-Za-z0-9_]+)=(.*)$")
_EXPORT_DEVICE = re.compile(r"^MD_DEVICE_(.+)_(ROLE|DEV)$")


def parse_mdadm_export(text: str) -> MdadmExport:
    """Reads KEY=VALUE lines. Device keys are mangled (mdadm 4.2: MD_DEVICE_dev_sda1_ROLE,
    mdadm 4.1 dropped a letter: MD_DEVICE_ev_sda1_ROLE), so the device name comes from the
    matching _DEV value, falling back to the key. mdadm reports a faulty member that has
    left its slot as ROLE=spare: flags come from sysfs or mdstat, never from here."""
    values: dict[str, str] = {}
    devices: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        match = _EXPORT_LINE.match(line.strip())
        if not match:
            return MdadmExport(
                problem=f"mdadm --export line {line.strip()[:40]!r} is not KEY=VALUE")
        key, value = match[1], match[2]
        device = _EXPORT_DEVICE.match(key)
        if device:
            devices.setdefault(device[1], {})[device[2]] = value
        else:
            values[key] = value
    if not values and not devices:
        return MdadmExport(problem="mdadm --export printed nothing")
    count = values.get("MD_DEVICES", "")
    if count and not count.isdigit():
        return MdadmExport(problem=f"mdadm MD_DEVICES is {count[:20]!r}")
    roles = []
    for mangled, entry in devices.items():
        role = entry.get("ROLE", "")
        if role and not (role.isdigit() or role.isalpha()):
            return MdadmExport(problem=f"mdadm role of {mangled} is {role[:20]!r}")
        if entry.get("DEV"):
            name = entry["DEV"].rsplit("/", 1)[-1]
        else:
            name = re.sub(r"^d?ev_", "", mangled)
        roles.append((name, int(role) if role.isdigit() else None))
    return MdadmExport(level=values.get("MD_LEVEL", ""), devices=int(count) if count else None,
                       metadata=values.get("MD_METADATA", ""),
                       uuid=_mdadm_uuid(values.get("MD_UUID", "")),
                       devname=values.get("MD_DEVNAME", ""), md_name=values.get("MD_NAME", ""),
                       roles=tuple(sorted(roles)))


# ----------------------------------------------------------------------------- combining
def _merge_members(primary: list[Member], other: list[Member],
                   roles: dict[str, int | None]) -> list[Member]:
    numbers = {m.device: m.number for m in other}
    merged = []
    for m in primary:
        number = m.number if m.number is not None else numbers.get(m.device)
        slot = m.slot
        if slot is None and not m.faulty and "spare" not in m.flags:
            slot = roles.get(m.device)
        merged.append(replace(m, number=number, slot=slot))
    return merged


def _combine(name: str, sysfs: _Facts | None, mdstat: _Facts | None,
            export: MdadmExport | None = None, notes: Sequence[str] = ()) -> ArrayHealth:
    """One ArrayHealth from the three sources: state from sysfs when it could be read,
    else from mdstat; identity from mdadm. A bad mdadm export never changes the state
    (it has none); it is recorded in notes."""
    notes = list(notes)
    readable = [f for f in (sysfs, mdstat) if f is not None and not f.problem]
    primary = readable[0] if readable else (sysfs or mdstat or _unknown(name, "", "no source"))
    for f in (sysfs, mdstat):
        if f is not None and f.problem and f is not primary:
            notes.append(f.problem)
    other = mdstat if primary is sysfs else sysfs
    primary = replace(primary, members=list(primary.members))  # a copy we may fill in
    if other is not None and not other.problem:
        if primary.eta_seconds is None and other.action == primary.action:
            primary.eta_seconds = other.eta_seconds
        if primary.speed_kib_s is None and other.action == primary.action:
            primary.speed_kib_s = other.speed_kib_s
    roles: dict[str, int | None] = {}
    md_name = ""
    if export is not None:
        if export.problem:
            notes.append(export.problem)
        else:
            roles = dict(export.roles)
            md_name = export.md_name
            primary.uuid = primary.uuid or export.uuid
            if not primary.problem:
                primary.level = primary.level or export.level
    primary.members = _merge_members(primary.members,
                                     other.members if other is not None else [], roles)
    return replace(_health(primary, notes), md_name=md_name)


def _natural(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


class RaidMonitor:
    """Reads every md array on the system.

    With no md driver loaded there is no /proc/mdstat and no md node in sysfs: that reads
    as no arrays, not as an error. mdadm runs through `run` (argv -> (code, stdout)).
    """

    def __init__(self, proc_root: str | Path = "/proc", sys_root: str | Path = "/sys",
                 run: Runner | None = None, use_mdadm: bool = True) -> None:
        self._mdstat = Path(proc_root) / "mdstat"
        self._block = Path(sys_root) / "block"
        self._run = run or run_command
        self._use_mdadm = use_mdadm

    def _read_mdstat(self) -> tuple[dict[str, _Facts], str]:
        try:
            text = self._mdstat.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return {}, ""
        except OSError as err:
            return {}, f"cannot read {self._mdstat}: {err.strerror}"
        return _parse_mdstat(text)

    def _read_sysfs(self) -> dict[str, _Facts]:
        found: dict[str, _Facts] = {}
        try:
            md_dirs = sorted(d for d in self._block.glob("*/md") if d.is_dir())
        except OSError:
            return found
        for md_dir in md_dirs:
            name = md_dir.parent.name
            try:
                facts = _sysfs_facts(name, md_dir)
            except _Bad as bad:
                facts = _unknown(name, "sysfs", str(bad))
            if facts is not None:
                found[name] = facts
        return found

    def _read_export(self, name: str) -> MdadmExport | None:
        if not self._use_mdadm:
            return None
        code, out = self._run(["mdadm", "--detail", "--export", f"/dev/{name}"])
        if code == 127:
            return None  # mdadm not installed: identity is optional
        if code != 0:
            reason = "timed out" if code == -1 else f"exited {code}"
            return MdadmExport(problem=f"mdadm --detail --export /dev/{name} {reason}")
        return parse_mdadm_export(out)

    def read(self) -> dict[str, ArrayHealth]:
        mdstat, mdstat_problem = self._read_mdstat()
        sysfs = self._read_sysfs()
        names = sorted(set(mdstat) | set(sysfs), key=_natural)
        if not names and mdstat_problem:
            return {"mdstat": _health(_unknown("mdstat", "mdstat", mdstat_problem))}
        notes = [mdstat_problem] if mdstat_problem else []
        arrays = {}
        for name in names:
            arrays[name] = _combine(name, sysfs.get(name), mdstat.get(name),
                                   self._read_export(name), notes)
        return arrays


# ----------------------------------------------------------------------------- alerts
def _member_alerts(name: str, before: ArrayHealth, after: ArrayHealth) -> list[Alert]:
    source = f"raid:{name}"
    old = {m.device: m for m in before.members}
    new = {m.device: m for m in after.members}
    alerts = []
    for device, member in sorted(new.items()):
        was = old.get(device)
        if member.faulty and (was is None or not was.faulty):
            alerts.append(Alert("critical", source,
                                f"{name}: member {device} failed; replace the disk",
                                f"{source}:member:{device}:faulty"))
        elif was is None:
            role = "spare" if "spare" in member.flags else "member"
            alerts.append(Alert("info", source, f"{name}: {device} added as {role}",
                                f"{source}:member:{device}:added"))
    for device, member in sorted(old.items()):
        if device not in new:
            severity = "info" if member.faulty else "warning"
            alerts.append(Alert(severity, source, f"{name}: {device} removed from the array",
                                f"{source}:member:{device}:removed"))
    return alerts


def _state_alert(name: str, before: ArrayHealth | None, after: ArrayHealth) -> Alert:
    source = f"raid:{name}"
    severity = _SEVERITY[after.state]
    if after.state == "healthy" and before is not None and before.state == "checking" \
            and after.mismatch_count:
        severity = "warning"
        message = f"{name}: check finished with {after.mismatch_count} mismatched sectors"
    elif after.state == "healthy" and before is not None:
        message = f"{name} is healthy again ({after.detail})"
    else:
        phrase = _PHRASES.get(after.state, f"is {after.state}")
        message = f"{name} {phrase}: {after.detail}"
    return Alert(severity, source, message, f"{source}:state:{after.state}")


def raid_alerts(before: dict[str, ArrayHealth], after: dict[str, ArrayHealth]) -> list[Alert]:
    """Alerts for what changed between two readings: every state change, a member that
    failed, joined or left, an array that appeared or disappeared. Progress alone never
    alerts. Containers (external metadata) are skipped: their member arrays carry state."""
    alerts: list[Alert] = []
    unreadable = "mdstat" in after and after["mdstat"].state == "unknown"
    for name in sorted(set(before) | set(after), key=_natural):
        old, new = before.get(name), after.get(name)
        if (old or new).level == "container":  # type: ignore[union-attr]
            continue
        if new is None:
            if not unreadable and name != "mdstat":
                alerts.append(Alert("critical", f"raid:{name}",
                                    f"{name} disappeared (disk removed or array stopped)",
                                    f"raid:{name}:disappeared"))
            continue
        if old is None or old.state != new.state:
            alerts.append(_state_alert(name, old, new))
        if old is not None:
            alerts.extend(_member_alerts(name, old, new))
    return alerts
