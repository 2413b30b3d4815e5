"""Time to first byte of playback at a random instant, over HTTP, on a real recording.

The real recorder records one simulated camera (1080p25, 4 Mb/s, 10 s segments) for
`--seconds`; the web API (waitress, logged in) then serves it. For `--samples` random
instants the client asks for the HLS playlist of the next minute and then fetches the
first GOP's byte range, as a player does; the time from the playlist request to the
first byte of video is reported (median, p95), with the fragment-index cache emptied
before each sample (the cold case). Target (issue 8): under 300 ms.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from waitress.server import create_server  # noqa: E402

from appliance.recorder.index import RecordingIndex  # noqa: E402
from appliance.web.accounts import AccountStore  # noqa: E402
from appliance.web import playback_api  # noqa: E402
from appliance.web.app import create_app  # noqa: E402
from hw.camsim.clips import ensure_clip  # noqa: E402
from hw.camsim.server import SimCamera, SimCameraServer, free_port  # noqa: E402
from tests.integration.recorder_process import RecorderProcess  # noqa: E402
from tests.integration.web_session import ApiClient  # noqa: E402


def record(work: Path, seconds: float) -> Path:
    clip = ensure_clip(ROOT / "var" / "cache", codec="h264", audio=None, seconds=20,
                       width=1920, height=1080, fps=25, bitrate_kbps=4000, gop=25)
    server = SimCameraServer(free_port(), [SimCamera("/cam1", clip)], log_path=work / "cam.log")
    server.start()
    data = work / "data"
    try:
        with RecorderProcess(data, {"cam": server.url("/cam1")}, "--segment-seconds", "10") as rec:
            rec.wait_for(lambda e: e["event"] == "segment", seconds + 60,
                         count=max(1, int(seconds // 10)), what="segments")
            rec.stop()
    finally:
        server.stop()
    return data


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--out", default="bench/playback-results.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = record(work, args.seconds)
        index = RecordingIndex(data, readonly=True)
        segs = index.segments("cam")
        index.close()
        app = create_app(data, AccountStore(work / "accounts.sqlite3"))
        srv = create_server(app, host="127.0.0.1", port=0, threads=4)
        threading.Thread(target=srv.run, daemon=True).start()
        client = ApiClient(f"http://127.0.0.1:{srv.effective_port}").login()
        rng = random.Random(7)
        ttfb = []
        for _ in range(args.samples):
            playback_api._fragments._items.clear()  # cold: the files' fragment index not cached
            at = rng.randint(segs[0].start_us, segs[-1].end_us - 2_000_000)
            t0 = time.perf_counter()
            status, text = client.request(
                "GET", f"/api/v1/cameras/cam/playback.m3u8?from={at}&to={at + 60_000_000}")
            lines = text.decode().splitlines()
            i = next(n for n, ln in enumerate(lines) if ln.startswith("#EXT-X-BYTERANGE"))
            length, offset = lines[i].split(":")[1].split("@")
            req = urllib.request.Request(f"{client.base}{lines[i + 1]}", headers={
                "Range": f"bytes={offset}-{int(offset) + int(length) - 1}",
                "Cookie": client.cookie})
            with urllib.request.urlopen(req, timeout=10) as resp:
                resp.read(1)
                ttfb.append((time.perf_counter() - t0) * 1000)
                resp.read()
        srv.close()
    ttfb.sort()
    result = {"samples": len(ttfb), "segments": len(segs),
              "ttfb_median_ms": round(statistics.median(ttfb), 1),
              "ttfb_p95_ms": round(ttfb[int(0.95 * (len(ttfb) - 1))], 1),
              "target_ms": 300}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
