"""The image's partition table: where each partition starts, how big it is, its GPT name.

One place computes the layout; image/steps/90-disk-image.sh asks it for the sfdisk script
and the byte offsets to write each partition file at, and the unit tests check it against
fstab, cmdline.txt and the sizes in image.conf.

    python3 image/tools/layout.py sfdisk     # the sfdisk script (stdin of `sfdisk IMAGE`)
    python3 image/tools/layout.py offsets    # "<name> <offset bytes> <size bytes>" lines
    python3 image/tools/layout.py size       # the whole image in bytes

Settings come from the environment (image/build exports image.conf). Standard library
only: it runs on the build machine's python3.
"""

from __future__ import annotations

import os
import sys
import uuid
from dataclasses import dataclass
from typing import Mapping

SECTOR = 512
MIB = 1024 * 1024
ALIGN = MIB              # every partition starts on a MiB boundary (SD/eMMC erase blocks)
GPT_TAIL = MIB           # room for the backup GPT at the end of the image

# GPT partition type GUIDs (UAPI Discoverable Partitions Specification; UEFI).
BASIC_DATA = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"   # FAT, read by the Pi's boot ROM
ROOT_ARM64 = "B921B045-1DF0-41C3-AF44-4C6F280D3FAE"   # Linux root (arm64)
LINUX_DATA = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"   # Linux file system


@dataclass(frozen=True)
class Partition:
    number: int
    name: str
    start: int        # bytes from the start of the disk
    size: int         # bytes
    type_guid: str
    uuid: str

    @property
    def end(self) -> int:
        return self.start + self.size


class LayoutError(ValueError):
    pass


def partition_uuid(disk_id: str, number: int) -> str:
    """Each partition's GUID, derived from the disk's: fixed, and distinct per partition."""
    base = uuid.UUID(disk_id)
    return str(uuid.UUID(int=(base.int & ~0xFFFF) | number)).upper()


def _mib(settings: Mapping[str, str], key: str) -> int:
    try:
        value = int(settings[key])
    except KeyError:
        raise LayoutError(f"{key} is not set (image/image.conf)") from None
    except ValueError:
        raise LayoutError(f"{key}={settings[key]!r}: not a whole number of MiB") from None
    if value <= 0:
        raise LayoutError(f"{key}={value}: a partition needs a positive size")
    return value * MIB


def plan(settings: Mapping[str, str]) -> list[Partition]:
    """Boot selection, boot A, boot B, root A, root B (each pair the same size: an update
    writes either), persist, in order."""
    try:
        disk_id = str(uuid.UUID(settings["DISK_ID"]))
    except (KeyError, ValueError):
        raise LayoutError("DISK_ID must be a UUID (image/image.conf)") from None
    wanted = [
        (settings.get("BOOT_NAME", ""), _mib(settings, "BOOT_SIZE"), BASIC_DATA),
        (settings.get("SLOT_BOOT_A_NAME", ""), _mib(settings, "SLOT_BOOT_SIZE"), BASIC_DATA),
        (settings.get("SLOT_BOOT_B_NAME", ""), _mib(settings, "SLOT_BOOT_SIZE"), BASIC_DATA),
        (settings.get("ROOT_A_NAME", ""), _mib(settings, "ROOT_SIZE"), ROOT_ARM64),
        (settings.get("ROOT_B_NAME", ""), _mib(settings, "ROOT_SIZE"), ROOT_ARM64),
        (settings.get("PERSIST_NAME", ""), _mib(settings, "PERSIST_SIZE"), LINUX_DATA),
    ]
    names = [name for name, _, _ in wanted]
    if any(not name or len(name) > 36 for name in names) or len(set(names)) != len(names):
        raise LayoutError(f"partition names must be set, distinct and at most 36 characters: {names}")
    partitions, start = [], ALIGN
    for number, (name, size, type_guid) in enumerate(wanted, start=1):
        partitions.append(Partition(number, name, start, size, type_guid,
                                    partition_uuid(disk_id, number)))
        start += size
    return partitions


def image_size(partitions: list[Partition]) -> int:
    return partitions[-1].end + GPT_TAIL


def sfdisk_script(settings: Mapping[str, str], partitions: list[Partition]) -> str:
    lines = ["label: gpt", f"label-id: {str(uuid.UUID(settings['DISK_ID'])).upper()}",
             "unit: sectors", "first-lba: 2048", f"last-lba: {image_size(partitions) // SECTOR - 34}", ""]
    for part in partitions:
        lines.append(f"start={part.start // SECTOR}, size={part.size // SECTOR}, "
                     f"type={part.type_guid}, uuid={part.uuid}, name=\"{part.name}\"")
    return "\n".join(lines) + "\n"


def main(argv: list[str], environ: Mapping[str, str]) -> int:
    if len(argv) != 1 or argv[0] not in ("sfdisk", "offsets", "size"):
        print("usage: layout.py sfdisk|offsets|size", file=sys.stderr)
        return 2
    try:
        partitions = plan(environ)
    except LayoutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if argv[0] == "sfdisk":
        sys.stdout.write(sfdisk_script(environ, partitions))
    elif argv[0] == "offsets":
        for part in partitions:
            print(part.name, part.start, part.size)
    else:
        print(image_size(partitions))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ))
