"""image/image.conf read the way image/build reads it: sourced by bash."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
IMAGE = ROOT / "image"
OVERLAY = ROOT / "rootfs-overlay"


def image_settings() -> dict[str, str]:
    out = subprocess.run(["bash", "-c", "set -a; . image/image.conf; env -0"], cwd=ROOT,
                         capture_output=True, check=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
    pairs = (item.split("=", 1) for item in out.stdout.decode().split("\0") if "=" in item)
    return dict(pairs)
