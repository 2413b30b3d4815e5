"""The console status table shown by `nvr record` and `nvr run`."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from appliance.recorder.service import CameraView


def format_gap(gap: dict, now_us: int) -> str:
    if not gap:
        return "-"
    start = datetime.fromtimestamp(gap["start_us"] / 1e6, timezone.utc).strftime("%H:%M:%S")
    end_us = gap.get("end_us")
    length = ((end_us if end_us is not None else now_us) - gap["start_us"]) / 1e6
    ongoing = "" if end_us is not None else " (ongoing)"
    return f"{gap['cause']} at {start}Z, {length:.1f} s{ongoing}"


def render(views: list[CameraView], now_us: int | None = None) -> str:
    now_us = now_us if now_us is not None else int(time.time() * 1_000_000)
    header = f"{'camera':<12} {'state':<17} {'Mb/s':>6} {'segments':>8} {'reconnects':>10}  last gap"
    lines = [header, "-" * len(header)]
    for v in views:
        lines.append(f"{v.name:<12} {v.state:<17} {v.bitrate_bps / 1e6:>6.2f} {v.segments:>8} "
                     f"{v.stats.get('reconnects', 0):>10}  {format_gap(v.stats.get('last_gap'), now_us)}")
        if v.detail and v.state not in ("recording",):
            lines.append(f"{'':<12} {v.detail}")
    return "\n".join(lines)
