"""Releases for the update tests, derived from the built image as a vendor would make them.

N+1 is the image's own root with the next version in its build.json; the "broken" N+2 is
the same with a recorder that cannot start (its unit's ExecStart replaced by /bin/false,
the kind of regression the health gate exists for). Both are squashfs roots bundled with
the image's own boot partition by image/bundle and signed with the development key.

Refused bundles (the security matrix's A3) need no real root: RAUC and the appliance
refuse them before anything is written, so a small squashfs with a build.json will do.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from tests.image.conftest import ROOT

BUNDLE = ROOT / "image/bundle"
UNKNOWN_KEY = ROOT / "tests/image/keys"
BROKEN_RECORDER = """[Service]
# A release whose recorder cannot start: the health gate must roll it back.
ExecStart=
ExecStart=/bin/false
"""


def next_version(version: str, step: int) -> str:
    major, minor, patch = (int(part) for part in version.split("."))
    return f"{major}.{minor}.{patch + step}"


def partition_bytes(raw: Path, start: int, size: int, target: Path) -> Path:
    with open(raw, "rb") as source, open(target, "wb") as out:
        source.seek(start)
        left = size
        while left:
            chunk = source.read(min(left, 1 << 20))
            out.write(chunk)
            left -= len(chunk)
    return target


def squashfs_length(raw: Path, start: int) -> int:
    with open(raw, "rb") as source:
        source.seek(start)
        superblock = source.read(96)
    assert superblock[:4] == b"hsqs", "no squashfs in root slot A"
    used = int.from_bytes(superblock[40:48], "little")
    return (used + 4095) // 4096 * 4096


def bundle(root: Path, boot: Path, out: Path, name: str, env: dict | None = None,
           compatible: str | None = None) -> Path:
    argv = [str(BUNDLE), "--root", str(root), "--boot", str(boot), "--out", str(out), "--name", name]
    if compatible:
        argv += ["--compatible", compatible]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1800,
                          env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr
    return out / name


class Releases:
    """The image's root unpacked once; each release a new squashfs of it plus a bundle."""

    def __init__(self, image: dict, work: Path) -> None:
        self.work = work
        settings, parts, raw = image["settings"], image["partitions"], image["raw"]
        root_a, boot_a = parts[settings["ROOT_A_NAME"]], parts[settings["SLOT_BOOT_A_NAME"]]
        self.boot = partition_bytes(raw, boot_a.start, boot_a.size, work / "boot.vfat")
        squashfs = partition_bytes(raw, root_a.start, squashfs_length(raw, root_a.start),
                                   work / "root-n.squashfs")
        self.tree = work / "root"
        subprocess.run(["unsquashfs", "-q", "-n", "-d", str(self.tree), str(squashfs)],
                       check=True, timeout=1200)
        squashfs.unlink()
        self.build = json.loads((self.tree / "usr/lib/vigil/build.json").read_text())

    def release(self, step: int, broken_recorder: bool = False) -> tuple[str, Path]:
        """(version, bundle) of release N+step."""
        version = next_version(self.build["version"], step)
        info = dict(self.build, version=version, source_date_epoch=self.build["source_date_epoch"] + step)
        (self.tree / "usr/lib/vigil/build.json").write_text(json.dumps(info) + "\n")
        dropin = self.tree / "etc/systemd/system/vigil-recorder.service.d"
        shutil.rmtree(dropin, ignore_errors=True)
        if broken_recorder:
            dropin.mkdir(parents=True)
            (dropin / "10-broken.conf").write_text(BROKEN_RECORDER)
        root = self.work / f"root-{version}.squashfs"
        subprocess.run(["mksquashfs", str(self.tree), str(root), "-noappend", "-quiet",
                        "-comp", "zstd", "-Xcompression-level", "3"], check=True, timeout=1800)
        made = bundle(root, self.boot, self.work, f"vigil-{version}.raucb")
        root.unlink()
        return version, made

    def refused(self, version: str, name: str, *, unknown_key: bool = False,
                compatible: str | None = None) -> Path:
        """A bundle of a small root: only its manifest and signature matter."""
        tree = self.work / f"tiny-{name}"
        (tree / "usr/lib/vigil").mkdir(parents=True, exist_ok=True)
        info = dict(self.build, version=version)
        (tree / "usr/lib/vigil/build.json").write_text(json.dumps(info) + "\n")
        (tree / "padding").write_bytes(os.urandom(256 * 1024))   # verity needs > 4 KiB
        root = self.work / f"tiny-{name}.squashfs"
        subprocess.run(["mksquashfs", str(tree), str(root), "-noappend", "-quiet"], check=True, timeout=300)
        env = {}
        if unknown_key:
            env = {"VIGIL_SIGNING_CERT": str(UNKNOWN_KEY / "unknown.cert.pem"),
                   "VIGIL_SIGNING_KEY": str(UNKNOWN_KEY / "unknown.key.pem")}
        return bundle(root, self.boot, self.work, f"{name}.raucb", env, compatible)
