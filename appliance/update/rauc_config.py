"""RAUC's system.conf for this board, written at boot into /run (the root is read-only).

One image serves every board, but the boot selection differs: U-Boot's environment on
QEMU's virt machine (RAUC's own `uboot` back end) and the Raspberry Pi firmware's
tryboot (RAUC's `custom` back end, appliance/update/tryboot.py). The board profile's
`[update] boot` names which. /etc/rauc/system.conf in the image is a link to the file
written here (vigil-rauc-config.service, before rauc.service).
"""

from __future__ import annotations

from pathlib import Path

from appliance.core.errors import InvalidConfig
from appliance.core.files import atomic_write

BACKENDS = {"uboot", "pi-tryboot"}
KEYRING = Path("/usr/share/vigil/rauc/keyring.pem")
DATA_DIR = Path("/persist/rauc")          # RAUC's slot status: versions, install times
TRYBOOT_BACKEND = "/usr/lib/vigil/rauc-tryboot-backend"
PRE_INSTALL = "/usr/lib/vigil/rauc-pre-install"
POST_INSTALL = "/usr/lib/vigil/rauc-post-install"
SLOTS = (("A", 0), ("B", 1))


def render(compatible: str, backend: str, keyring: Path = KEYRING,
           data_dir: Path = DATA_DIR) -> str:
    """The system.conf text: verity bundles only, slots by partition label, the handlers
    that refuse older releases (pre-install) and arm the health gate (post-install)."""
    if backend not in BACKENDS:
        raise InvalidConfig(f"update boot back end {backend!r} is not one of {sorted(BACKENDS)}")
    if not compatible or any(c.isspace() for c in compatible):
        raise InvalidConfig(f"RAUC compatible {compatible!r} must be one word")
    lines = ["# Written at boot by vigil-rauc-config.service (appliance/update/rauc_config.py).",
             "[system]", f"compatible={compatible}",
             f"bootloader={'uboot' if backend == 'uboot' else 'custom'}",
             "bundle-formats=-plain", f"data-directory={data_dir}",
             "mountprefix=/run/rauc", "",
             "[keyring]", f"path={keyring}", "",
             "[handlers]", f"pre-install={PRE_INSTALL}", f"post-install={POST_INSTALL}"]
    if backend == "pi-tryboot":
        lines.append(f"bootloader-custom-backend={TRYBOOT_BACKEND}")
    for name, index in SLOTS:
        lower = name.lower()
        lines += ["", f"[slot.rootfs.{index}]", f"device=/dev/disk/by-partlabel/vigil-root-{lower}",
                  "type=raw", f"bootname={name}",
                  "", f"[slot.boot.{index}]", f"device=/dev/disk/by-partlabel/vigil-boot-{lower}",
                  "type=vfat", f"parent=rootfs.{index}"]
    return "\n".join(lines) + "\n"


def write(target: Path, compatible: str, backend: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, render(compatible, backend).encode(), mode=0o644)
