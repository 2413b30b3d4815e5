"""RAUC's custom boot-selection back end on the Raspberry Pi: the firmware's own A/B switch.

The Pi 4 and 5 firmware reads `autoboot.txt` on partition 1 (vigil-boot, mounted at
/boot/select) before anything else:

    [all]
    tryboot_a_b=1
    boot_partition=2
    [tryboot]
    boot_partition=3

A normal boot uses the `[all]` partition: the *committed* slot. `reboot "0 tryboot"` sets a
one-shot flag, so the next boot, and only that one, uses the `[tryboot]` partition; a
crash, a watchdog reset, a power cut or a plain reboot afterwards returns to `[all]`. Linux
learns how it was booted from /proc/device-tree/chosen/bootloader/{tryboot,partition}
(4-byte big-endian numbers). Slot A boots partition 2, slot B partition 3.

RAUC asks this back end (system.conf `bootloader=custom`, `[handlers]
bootloader-custom-backend`) five things, one process each: `get-primary`, `set-primary X`,
`get-state X`, `set-state X good|bad` and `get-current`. The firmware has no boot counter
and no per-slot state, so what RAUC needs beyond autoboot.txt (a trial waiting for the
next reboot, the slots marked bad) lives in `vigil-tryboot.json` beside it.

- An install writes slot X, then RAUC calls `set-primary X`: `[tryboot]` names X and a
  trial of X is pending. Nothing changes on a plain reboot; the caller that reboots asks
  `reboot_arguments()` and gets `["0 tryboot"]`, so the next boot tries X once.
- In the trial boot, the health check's `set-state X good` commits X (`[all]` = X,
  `[tryboot]` = the other slot). Its `set-state X bad`, or any reboot before it, leaves
  `[all]` alone: the box comes back on the committed slot.
- A trial survives a power cut or a crash during it (nothing was called): the next
  deliberate reboot tries again. Only `set-state X bad` or `set-primary` of the committed
  slot cancels it.

Writes are crash-safe on FAT (appliance.core.files.atomic_write: temporary file, fsync,
rename over, fsync the directory), autoboot.txt first, then the state file: a power cut
between the two leaves a pending trial of the slot just committed, which counts as none.
A file this module cannot read or parse is an error, never replaced: autoboot.txt is
rewritten whole, and a setting it does not understand would be lost.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from appliance.core.errors import (DataLoss, FailedPrecondition, InvalidConfig, Unavailable,
                                   VigilError)
from appliance.core.files import atomic_write

log = logging.getLogger(__name__)

DEFAULT_SELECT_DIR = Path("/boot/select")
DEFAULT_DEVICE_TREE = Path("/proc/device-tree")
SELECT_DIR_ENV = "VIGIL_BOOT_SELECT"
DEVICE_TREE_ENV = "VIGIL_DEVICE_TREE"
AUTOBOOT_NAME = "autoboot.txt"
STATE_NAME = "vigil-tryboot.json"
AUTOBOOT_MAX_BYTES = 512  # the firmware's limit for autoboot.txt
TRYBOOT_REBOOT = "0 tryboot"  # partition 0: the one autoboot.txt names; tryboot: once
SLOT_PARTITIONS = {"A": 2, "B": 3}
PARTITION_SLOTS = {partition: slot for slot, partition in SLOT_PARTITIONS.items()}
# What autoboot.txt may hold, by section; everything is required.
AUTOBOOT_KEYS = {"all": ("tryboot_a_b", "boot_partition"), "tryboot": ("boot_partition",)}


def check_slot(bootname: str) -> str:
    """RAUC passes the bootnames of system.conf; anything else is a configuration mistake."""
    if bootname not in SLOT_PARTITIONS:
        raise InvalidConfig(f"unknown slot {bootname!r}: this board's slots are A and B")
    return bootname


def other_slot(slot: str) -> str:
    return "B" if slot == "A" else "A"


def slot_of_partition(partition: int, source: str) -> str:
    if partition not in PARTITION_SLOTS:
        raise DataLoss(f"{source}: partition {partition} is neither slot A (2) nor B (3)")
    return PARTITION_SLOTS[partition]


@dataclass(frozen=True)
class Autoboot:
    """autoboot.txt: the slot a normal boot uses, and the one a tryboot uses."""

    committed: str
    tryboot: str

    def render(self) -> bytes:
        """Exactly the firmware documentation's format (about 70 bytes of its 512)."""
        return (f"[all]\ntryboot_a_b=1\nboot_partition={SLOT_PARTITIONS[self.committed]}\n"
                f"[tryboot]\nboot_partition={SLOT_PARTITIONS[self.tryboot]}\n").encode("ascii")


def parse_autoboot_sections(text: str, source: str) -> dict[str, dict[str, str]]:
    """The sections and keys, refusing anything else: the file is rewritten whole, so an
    unknown line would silently disappear."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    allowed: tuple[str, ...] = ()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            name = line[1:-1]
            if name not in AUTOBOOT_KEYS or name in sections:
                raise DataLoss(f"{source}: line {number}: unexpected section {line}")
            current, allowed = sections.setdefault(name, {}), AUTOBOOT_KEYS[name]
            continue
        key, equals, value = line.partition("=")
        if current is None or not equals or key not in allowed or key in current:
            raise DataLoss(f"{source}: line {number}: unexpected {line!r}")
        current[key] = value
    for name, keys in AUTOBOOT_KEYS.items():
        for key in keys:
            if key not in sections.get(name, {}):
                raise DataLoss(f"{source}: no {key} in [{name}]")
    return sections


def parse_partition(value: str, source: str) -> str:
    if not value.isdigit():
        raise DataLoss(f"{source}: boot_partition={value!r} is not a partition number")
    return slot_of_partition(int(value), source)


def parse_autoboot(text: str, source: str) -> Autoboot:
    sections = parse_autoboot_sections(text, source)
    if sections["all"]["tryboot_a_b"] != "1":
        raise DataLoss(f"{source}: tryboot_a_b must be 1 (A/B switch by partition)")
    return Autoboot(committed=parse_partition(sections["all"]["boot_partition"], source),
                    tryboot=parse_partition(sections["tryboot"]["boot_partition"], source))


def read_autoboot(select_dir: Path) -> Autoboot:
    path = select_dir / AUTOBOOT_NAME
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise Unavailable(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > AUTOBOOT_MAX_BYTES:
        raise DataLoss(f"{path}: {len(data)} bytes, the firmware reads at most "
                       f"{AUTOBOOT_MAX_BYTES}")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise DataLoss(f"{path}: not plain ASCII text") from None
    return parse_autoboot(text, str(path))


@dataclass(frozen=True)
class TrialState:
    """What the firmware does not keep: a trial waiting for the next reboot, and the slots
    RAUC marked bad (an install marks its target bad before writing it)."""

    pending: str | None = None
    bad: frozenset[str] = frozenset()

    def marked_bad(self, slot: str) -> TrialState:
        return replace(self, bad=self.bad | {slot})

    def marked_good(self, slot: str) -> TrialState:
        return replace(self, bad=self.bad - {slot})

    def render(self) -> bytes:
        body = {"pending": self.pending, "bad": sorted(self.bad)}
        return (json.dumps(body, sort_keys=True) + "\n").encode("ascii")


def parse_state(text: str, source: str) -> TrialState:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise DataLoss(f"{source}: not JSON ({exc})") from None
    if not isinstance(data, dict) or set(data) != {"pending", "bad"}:
        raise DataLoss(f"{source}: expected an object with exactly 'pending' and 'bad'")
    pending, bad = data["pending"], data["bad"]
    if pending is not None and not (isinstance(pending, str) and pending in SLOT_PARTITIONS):
        raise DataLoss(f"{source}: pending trial {pending!r} is not A, B or null")
    if not isinstance(bad, list) or not all(isinstance(s, str) and s in SLOT_PARTITIONS
                                            for s in bad):
        raise DataLoss(f"{source}: bad slots {bad!r} is not a list of A and B")
    return TrialState(pending=pending, bad=frozenset(bad))


def read_state(select_dir: Path) -> TrialState:
    """A fresh image has no state file: no trial pending, no slot marked bad."""
    path = select_dir / STATE_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return TrialState()
    except UnicodeDecodeError:
        raise DataLoss(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise Unavailable(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_state(text, str(path))


@dataclass(frozen=True)
class Selection:
    autoboot: Autoboot
    state: TrialState


def load_selection(select_dir: Path) -> Selection:
    """Both files, with a pending trial of the committed slot (left by a power cut between
    the two writes of a commit) counted as none."""
    autoboot = read_autoboot(select_dir)
    state = read_state(select_dir)
    if state.pending == autoboot.committed:
        state = replace(state, pending=None)
    return Selection(autoboot, state)


def save_selection(select_dir: Path, before: Selection, after: Selection) -> None:
    """Only what changed, autoboot.txt first (see the module docstring): fewer writes to a
    FAT partition the firmware needs, fewer moments a power cut can matter."""
    if after.autoboot != before.autoboot:
        atomic_write(select_dir / AUTOBOOT_NAME, after.autoboot.render())
        log.info("autoboot.txt committed=%s tryboot=%s", after.autoboot.committed,
                 after.autoboot.tryboot)
    if after.state != before.state:
        atomic_write(select_dir / STATE_NAME, after.state.render())
        log.info("tryboot state pending=%s bad=%s", after.state.pending or "none",
                 ",".join(sorted(after.state.bad)) or "none")


def reboot_arguments(select_dir: Path = DEFAULT_SELECT_DIR) -> list[str]:
    """The argument the next reboot must pass (`reboot "0 tryboot"`) for a pending trial to
    start; nothing for a plain reboot, which returns to the committed slot."""
    return [TRYBOOT_REBOOT] if load_selection(Path(select_dir)).state.pending else []


def read_u32(path: Path) -> int:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise Unavailable(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) != 4:
        raise DataLoss(f"{path}: {len(data)} bytes, expected a 4-byte big-endian number")
    return int.from_bytes(data, "big")


@dataclass(frozen=True)
class BootInfo:
    """How the firmware booted this time, from the device tree it hands to Linux."""

    tryboot: bool
    partition: int


def read_boot_info(device_tree: Path) -> BootInfo:
    bootloader = device_tree / "chosen" / "bootloader"
    return BootInfo(tryboot=read_u32(bootloader / "tryboot") == 1,
                    partition=read_u32(bootloader / "partition"))


class TrybootBackend:
    """The five questions RAUC asks, over one boot-selection directory and device tree."""

    def __init__(self, select_dir: Path = DEFAULT_SELECT_DIR,
                 device_tree: Path = DEFAULT_DEVICE_TREE) -> None:
        self.select_dir = Path(select_dir)
        self.device_tree = Path(device_tree)

    def get_primary(self) -> str:
        """The slot the next deliberate reboot starts: a pending trial, else the committed."""
        selection = load_selection(self.select_dir)
        return selection.state.pending or selection.autoboot.committed

    def set_primary(self, slot: str) -> None:
        """RAUC calls this after writing `slot`. `[tryboot]` always names the slot that is
        not committed; making the committed slot primary cancels a pending trial."""
        check_slot(slot)
        before = load_selection(self.select_dir)
        committed = before.autoboot.committed
        after = Selection(Autoboot(committed, other_slot(committed)),
                          replace(before.state.marked_good(slot),
                                  pending=None if slot == committed else slot))
        save_selection(self.select_dir, before, after)

    def get_state(self, slot: str) -> str:
        check_slot(slot)
        return "bad" if slot in load_selection(self.select_dir).state.bad else "good"

    def set_state(self, slot: str, state: str) -> None:
        check_slot(slot)
        if state == "good":
            self.mark_good(slot)
        elif state == "bad":
            self.mark_bad(slot)
        else:
            raise InvalidConfig(f"slot state {state!r} is neither good nor bad")

    def mark_good(self, slot: str) -> None:
        """On the committed slot: clear its bad mark. In a tryboot of `slot`: commit it,
        the end of a successful trial. Any other slot is running nowhere, so nothing can
        vouch for it: refused."""
        before = load_selection(self.select_dir)
        if slot == before.autoboot.committed:
            after = Selection(before.autoboot, before.state.marked_good(slot))
        else:
            booted = read_boot_info(self.device_tree)
            if not (booted.tryboot and booted.partition == SLOT_PARTITIONS[slot]):
                raise FailedPrecondition(
                    f"cannot mark slot {slot} good: it is neither committed (slot "
                    f"{before.autoboot.committed}) nor running a trial boot (this boot: "
                    f"partition {booted.partition}, tryboot={int(booted.tryboot)})")
            after = Selection(Autoboot(slot, other_slot(slot)),
                              replace(before.state.marked_good(slot), pending=None))
            log.info("trial of slot %s succeeded, committing it", slot)
        save_selection(self.select_dir, before, after)

    def mark_bad(self, slot: str) -> None:
        """Remember the mark and cancel a pending trial of `slot`, so no tryboot starts it.

        Marking the committed slot bad also commits the other slot when that one is good.
        Leaving autoboot.txt alone would be simpler, but the caller's next reboot is a
        plain one, which returns to `[all]`: the very slot just marked bad. The other slot
        is committed without a trial; a slot marked bad is never committed, so when both
        are bad autoboot.txt stays as it is (there is nothing better to boot)."""
        before = load_selection(self.select_dir)
        state = before.state.marked_bad(slot)
        autoboot = before.autoboot
        if state.pending == slot:
            state = replace(state, pending=None)
            log.info("trial of slot %s cancelled", slot)
        if slot == autoboot.committed and other_slot(slot) not in state.bad:
            autoboot = Autoboot(other_slot(slot), slot)
            state = replace(state, pending=None)
            log.info("committed slot %s marked bad, committing slot %s", slot, autoboot.committed)
        save_selection(self.select_dir, before, Selection(autoboot, state))

    def get_current(self) -> str:
        """The slot running now, from the partition the firmware booted."""
        partition = read_boot_info(self.device_tree).partition
        return slot_of_partition(partition, "booted partition")


USAGE = ("usage: rauc-tryboot-backend get-primary | set-primary A|B | get-state A|B"
         " | set-state A|B good|bad | get-current")


# RAUC's sub-commands: the method that answers each, and how many arguments it takes. The
# set-* methods return None: RAUC reads only their exit status.
COMMANDS: dict[str, tuple[Callable[..., str | None], int]] = {
    "get-primary": (TrybootBackend.get_primary, 0),
    "set-primary": (TrybootBackend.set_primary, 1),
    "get-state": (TrybootBackend.get_state, 1),
    "set-state": (TrybootBackend.set_state, 2),
    "get-current": (TrybootBackend.get_current, 0),
}


def backend_from_environment(environ: Mapping[str, str]) -> TrybootBackend:
    """The default paths, unless the environment overrides them (tests of the image)."""
    return TrybootBackend(Path(environ.get(SELECT_DIR_ENV, DEFAULT_SELECT_DIR)),
                          Path(environ.get(DEVICE_TREE_ENV, DEFAULT_DEVICE_TREE)))


def main(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> int:
    """RAUC's view: the answer on stdout, exit 0; an error on stderr, exit non-zero."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    command = COMMANDS.get(argv[0]) if argv else None
    if command is None or command[1] != len(argv) - 1:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        answer = command[0](backend_from_environment(environ), *argv[1:])
    except VigilError as exc:
        print(f"rauc-tryboot-backend {' '.join(argv)}: {exc}", file=sys.stderr)
        return 1
    if answer is not None:
        print(answer)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
