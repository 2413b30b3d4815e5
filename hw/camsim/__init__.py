"""Simulated IP cameras: pre-encoded clips served over RTSP by gst-rtsp-server.

``clips.ensure_clip`` encodes and caches test clips; ``server.SimCameraServer`` runs
``rtsp_server.py`` (Debian's system Python + GStreamer) serving them as cameras on
127.0.0.1. See docs/design/camsim.md.

The names below are re-exported lazily, so ``python -m hw.camsim.server`` does not
import its own module twice.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ClipError": "hw.camsim.clips",
    "ensure_clip": "hw.camsim.clips",
    "CamSimError": "hw.camsim.server",
    "SimCamera": "hw.camsim.spec",
    "SimCameraServer": "hw.camsim.server",
    "free_port": "hw.camsim.server",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'hw.camsim' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
