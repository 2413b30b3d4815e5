"""The built image (make image) and machines booted from it. These tests are `make
image-test`, not `make test`: they need the image, and one boot takes minutes."""

from __future__ import annotations

import lzma
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.image.machine import UBOOT, QemuMachine, switch_on_console_report

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "var/test-artifacts/image"
sys.path.insert(0, str(ROOT / "image/tools"))
import layout  # noqa: E402  (image/tools runs on the build machine; not a package)

pytestmark = pytest.mark.image
MACHINES = pytest.StashKey[list]()
TOOLS = ("qemu-system-aarch64", "qemu-img", "mcopy", "socat")


def image_settings() -> dict[str, str]:
    out = subprocess.run(["bash", "-c", "set -a; . image/image.conf; env -0"], cwd=ROOT,
                         capture_output=True, check=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
    return dict(item.split("=", 1) for item in out.stdout.decode().split("\0") if "=" in item)


def find_image() -> Path:
    given = os.environ.get("VIGIL_IMAGE")
    if given:
        return Path(given)
    found = sorted((ROOT / "image/out").glob("vigil-*-arm64.img.xz"))
    if not found:
        pytest.fail("no image in image/out: run `make image` first (make image-test does)")
    return found[-1]


@pytest.fixture(scope="session")
def image(tmp_path_factory) -> dict:
    """The published .img.xz, decompressed once (sparse), the console report switched on."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if not UBOOT.exists():
        missing.append(f"{UBOOT} (u-boot-qemu)")
    if missing:
        pytest.skip(f"missing {', '.join(missing)} (make image-test installs them)")
    packed = find_image()
    work = tmp_path_factory.mktemp("image")
    raw = work / packed.name.removesuffix(".xz")
    with lzma.open(packed) as source, open(raw, "wb") as target:
        while chunk := source.read(1 << 20):
            if chunk.count(0) == len(chunk):
                target.seek(len(chunk), os.SEEK_CUR)  # keep the empty slot sparse
            else:
                target.write(chunk)
        target.truncate()
    settings = image_settings()
    partitions = {part.name: part for part in layout.plan(settings)}
    switch_on_console_report(raw, partitions[settings["BOOT_NAME"]].start, work)
    return {"raw": raw, "packed": packed, "settings": settings, "partitions": partitions}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed image test's report carries what each of its machines said about itself
    (the journal's warnings, the last console report): CI keeps no console logs."""
    report = yield
    if report.failed and call.when == "call":
        for number, machine in enumerate(item.stash.get(MACHINES, [])):
            report.sections.append((f"machine {number}: what the box reported",
                                    machine.diagnostics()))
    return report


@pytest.fixture
def boot_machine(image, tmp_path, request):
    """Boot a machine from the image: boot_machine(camera_port, data_disks=1)."""
    machines: list[QemuMachine] = []
    request.node.stash[MACHINES] = machines

    def boot(camera_port: int, data_disks: int = 1, disk_gib: int = 16) -> QemuMachine:
        disks = []
        for n in range(data_disks):
            disk = tmp_path / f"data{n}.img"
            with open(disk, "wb") as handle:
                handle.truncate(disk_gib << 30)
            disks.append(disk)
        machine = QemuMachine(tmp_path / "machine", image["raw"], disks, camera_port)
        machines.append(machine)
        return machine.start()

    (tmp_path / "machine").mkdir()
    yield boot
    for machine in machines:
        machine.stop()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(machine.console_log, ARTIFACTS / "console.log")
