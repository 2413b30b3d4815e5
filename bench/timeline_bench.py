"""Timeline latency on a synthetic month: 32 cameras x 30 days of one-minute segments
(about 1.34 million index rows, with random outages), as `make bench` runs it.

Target (issue 8): one camera's 30-day timeline under 50 ms. Also reported: all 32
cameras' months one after the other.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from appliance.playback.timeline import timeline  # noqa: E402
from appliance.recorder.index import RecordingIndex  # noqa: E402

MIN = 60 * 1_000_000
DAY = 86_400 * 1_000_000


def build(data: Path, cameras: int, days: int) -> tuple[int, int]:
    index = RecordingIndex(data)
    index.close()
    db = sqlite3.connect(data / "index.sqlite3")
    start = 1_800_000_000 * 1_000_000
    rows = []
    rng = random.Random(1)
    for c in range(cameras):
        seq, t = 0, start
        while t < start + days * DAY:
            if rng.random() < 0.002:  # an outage now and then: 2-30 minutes
                t += rng.randint(2, 30) * MIN
                continue
            seq += 1
            rows.append((f"cam{c:02d}", seq, t, t + MIN, 30_000_000, f"r/cam{c:02d}/{seq}.mp4"))
            t += MIN
    with db:
        db.executemany("INSERT INTO segments (camera, seq, start_us, end_us, bytes, path) "
                       "VALUES (?, ?, ?, ?, ?, ?)", rows)
    db.close()
    return start, len(rows)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cameras", type=int, default=32)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--out", default="bench/timeline-results.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        start, rows = build(data, args.cameras, args.days)
        index = RecordingIndex(data, readonly=True)
        one, all_cams = [], []
        for _ in range(5):
            t = time.perf_counter()
            timeline(index, "cam07", start, start + args.days * DAY)
            one.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            for c in range(args.cameras):
                timeline(index, f"cam{c:02d}", start, start + args.days * DAY)
            all_cams.append((time.perf_counter() - t) * 1000)
        index.close()
    result = {"rows": rows, "cameras": args.cameras, "days": args.days,
              "one_camera_month_ms": round(statistics.median(one), 1),
              "all_cameras_month_ms": round(statistics.median(all_cams), 1),
              "target_one_camera_ms": 50}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
