"""Logging set-up: stdlib logging to stderr (journald picks it up), key=value context."""

from __future__ import annotations

import logging
import sys


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # libav's own logging is noisy (every RTP hiccup); keep it at errors.
    try:
        import av.logging

        av.logging.set_level(av.logging.ERROR)
    except ImportError:  # pragma: no cover - av is a hard dependency
        pass
