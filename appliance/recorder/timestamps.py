"""Timestamp repair for one elementary stream (see reference/performance.md §3).

Cameras get timestamps wrong in known ways, and a muxer rejects non-monotonic DTS
(PyAV raises and the recording dies). This keeps output DTS strictly increasing and
continuous, in the stream's own time base:

* the first packet without pts/dts (libavformat's RTSP demuxer does this to the IDR):
  given the next expected time instead of being dropped;
* DTS jumping backwards, or forwards by more than `max_jump` of media time while packets
  keep arriving (RTCP re-base, a camera re-basing its RTP clock): a running offset
  makes the stream continue where it was; each repair is counted;
* pts missing or before dts: pts = dts.

A *real* discontinuity (packets stop arriving for a while) is not this module's job:
the ingest loop sees it in wall-clock time, closes the segment and records a gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


@dataclass
class RepairedTime:
    dts: int
    pts: int
    duration: int
    repaired: bool


class TimestampRepair:
    def __init__(self, time_base: Fraction, nominal_duration: int, max_jump: float = 1.0) -> None:
        if nominal_duration <= 0:
            raise ValueError("nominal_duration must be positive")
        self.time_base = time_base
        self.nominal_duration = nominal_duration
        self.max_jump_ticks = max(int(max_jump / time_base), 2 * nominal_duration)
        self.offset = 0
        self.last_dts: int | None = None
        self.last_duration = nominal_duration
        self.repairs = 0

    def fix(self, dts: int | None, pts: int | None, duration: int | None) -> RepairedTime:
        if dts is None:
            dts = pts
        if dts is None:
            # No timestamp at all: the next expected instant (0 for the first packet).
            dts_out = 0 if self.last_dts is None else self.last_dts + self.last_duration
            pts_out = dts_out
            repaired = True
        else:
            dts_out = dts + self.offset
            repaired = False
            if self.last_dts is not None:
                step = dts_out - self.last_dts
                if step <= 0 or step > self.max_jump_ticks:
                    target = self.last_dts + self.last_duration
                    self.offset += target - dts_out
                    dts_out = target
                    repaired = True
                elif step <= 4 * self.nominal_duration:
                    self.last_duration = step  # learn the real frame spacing
            pts_out = max(dts_out, pts + self.offset) if pts is not None else dts_out
        if duration and duration > 0:
            self.last_duration = duration
        self.last_dts = dts_out
        self.repairs += repaired
        return RepairedTime(dts_out, pts_out, duration if duration and duration > 0
                            else self.last_duration, repaired)
