"""Fixtures shared by the integration tests: clips, simulated cameras, recorder processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from hw.camsim.clips import ensure_clip

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "var" / "cache"


@pytest.fixture(scope="session")
def small_clip() -> Path:
    """640x360 H.264 with AAC audio, 1 s GOP: cheap to serve and to write."""
    return ensure_clip(CACHE, codec="h264", audio="aac", seconds=6, width=640, height=360,
                       fps=25, bitrate_kbps=800, gop=25)
