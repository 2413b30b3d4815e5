"""Running the `nvr` command line as the owner would, in a child process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def nvr(*args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "appliance.cli", *args], cwd=ROOT, input=stdin,
                          capture_output=True, text=True, timeout=timeout)


def nvr_ok(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """`nvr` that must succeed (its stderr in the failure message)."""
    out = nvr(*args, stdin=stdin)
    assert out.returncode == 0, out.stderr
    return out
