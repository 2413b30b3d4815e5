#!/usr/bin/env python3
"""Side-by-side recorder benchmark: our `nvr record` against ffmpeg's segment muxer.

One run does all of this on 127.0.0.1 only:

1. encodes a camera-like clip once (cached in var/cache; 1080p25 H.264, 4 Mb/s, GOP 50
   by default) and serves it as N simulated cameras from several gst-rtsp-server
   processes (hw.camsim), a few mounts per server;
2. records every stream with ONE `nvr record` process and, at the same time, with one
   reference `ffmpeg -rtsp_transport tcp -i URL -c copy -f segment` process per stream.
   Both clients of a stream share that mount's media pipeline, so they get the same
   packets;
3. after --warm seconds, measures user+sys CPU (psutil), RSS/PSS and /proc write bytes of
   every recorder process over a fixed --window of wall time;
4. stops the recorders (ours with SIGTERM, ffmpeg with SIGINT), then the servers, by PID,
   in `finally`, also when the bench itself gets SIGINT/SIGTERM;
5. counts the recorded packets with `ffprobe -count_packets` and checks them against
   25 fps x the recorded duration, and the recorded duration against the wall time each
   recorder ran;
6. writes --out (JSON) and prints a markdown table with PASS/FAIL per target.

Usage (bench/README.md explains the method and holds measured figures):

    .venv/bin/python bench/recorder_bench.py --streams 16 --out bench/results.json
    .venv/bin/python bench/recorder_bench.py --streams 32 --only ours \\
        --out bench/results-32-ours.json

Stdlib + psutil, plus the project's own hw.camsim.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from statistics import mean
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `hw` importable from the checkout
    sys.path.insert(0, str(ROOT))

from hw.camsim import SimCamera, SimCameraServer, ensure_clip, free_port  # noqa: E402

log = logging.getLogger("recorder_bench")

CLIP_CACHE = ROOT / "var" / "cache"
FPS = 25
GOP_FRAMES = 2 * FPS
CLIP_SECONDS = 20
MIB = 2**20
FIRST_CLIENT_PAUSE_S = 3.0   # let a server prepare its media before the next client
STOP_TIMEOUT_S = 30.0        # ours joins its threads within read_timeout + 5 s
TAIL_CHARS = 2000
PR_SET_PDEATHSIG = 1

# Targets reported against (the run never fails on them).
TARGET_CPU_RATIO = 1.0       # our CPU per stream / ffmpeg's, same run
TARGET_RSS_MIB = 15.0        # our RSS per stream
TARGET_LOSS_STREAMS = 32     # no lost packets with this many streams (ours)

FFMPEG_DEMUXED = re.compile(r"Total: (\d+) packets \((\d+) bytes\) demuxed")


class Interrupted(Exception):
    """SIGINT or SIGTERM reached the bench; `finally` blocks stop what it started."""


# ---------------------------------------------------------------------------- options


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Our recorder vs ffmpeg -c copy -f segment on the same N RTSP streams.")
    parser.add_argument("--streams", type=int, default=16, help="simulated cameras (N)")
    parser.add_argument("--only", choices=("both", "ours", "ffmpeg"), default="both",
                        help="which recorders to run (default both, side by side)")
    parser.add_argument("--warm", type=float, default=20.0,
                        help="seconds after the last launch before the window opens")
    parser.add_argument("--window", type=float, default=120.0,
                        help="seconds of wall time over which CPU and writes are measured")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json",
                        help="results JSON")
    parser.add_argument("--work", type=Path, default=None,
                        help="directory for recordings and logs (default: a new one in var/)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work directory (recordings, logs) afterwards")
    parser.add_argument("--segment-seconds", type=int, default=60,
                        help="segment length for both recorders")
    parser.add_argument("--clip-size", default="1920x1080", help="WIDTHxHEIGHT of the clip")
    parser.add_argument("--bitrate-kbps", type=int, default=4000, help="clip bit rate")
    parser.add_argument("--mounts-per-server", type=int, default=4,
                        help="cameras per gst-rtsp-server process (each has 1-2 clients)")
    parser.add_argument("--stagger", type=float, default=0.25,
                        help="seconds between ffmpeg launches")
    parser.add_argument("--startup-allowance", type=float, default=5.0,
                        help="seconds of a recorder's life that may go unrecorded "
                             "(connect, first keyframe, stop) before it counts as loss")
    args = parser.parse_args(argv)
    if args.streams < 1 or args.mounts_per_server < 1:
        parser.error("--streams and --mounts-per-server must be at least 1")
    if args.work is not None and args.work.exists() and any(args.work.iterdir()):
        parser.error(f"--work {args.work} must be empty or not exist")
    args.width, args.height = parse_size(parser, args.clip_size)
    return args


def parse_size(parser: argparse.ArgumentParser, text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        parser.error(f"--clip-size must look like 640x360, got {text!r}")
    return width, height


def variants_of(only: str) -> list[str]:
    return ["ours", "ffmpeg"] if only == "both" else [only]


# ---------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class Stream:
    name: str      # camera name, e.g. cam01
    mount: str     # /cam1
    url: str
    server: int    # index into the server list


@dataclass
class Recorder:
    """One recorder process: ours (all streams) or one ffmpeg (one stream)."""

    variant: str
    streams: list[Stream]
    out_dir: Path
    log_path: Path
    stop_signal: signal.Signals
    popen: subprocess.Popen
    process: psutil.Process
    launched_at: float                 # time.monotonic()
    stopped_at: float | None = None    # when the bench stopped the recorders
    killed: bool = False


def raise_on_stop_signals() -> None:
    """SIGINT/SIGTERM raise Interrupted once; later ones are ignored so cleanup finishes."""

    def handler(signum: int, _frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Interrupted(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


@contextmanager
def stop_signals_deferred():
    """Let cleanup finish: a SIGINT/SIGTERM arriving meanwhile is handled right after it."""
    signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)


def stop_with_parent(signum: signal.Signals):
    """preexec_fn: the child gets `signum` if the bench dies without cleaning up (SIGKILL)."""
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0)

    return preexec


def spawn(argv: list[str], log_path: Path, stop_signal: signal.Signals) -> subprocess.Popen:
    """Start a child in its own session (a terminal's Ctrl-C reaches only the bench)."""
    with open(log_path, "wb") as stderr:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=stderr, start_new_session=True,
                                preexec_fn=stop_with_parent(stop_signal))


def bench_licence(work: Path) -> Path:
    """A 32-channel licence for the simulated board, signed with the development key: the
    simulated board records 8 cameras without one."""
    from appliance.licensing.keys import load_private
    from appliance.licensing.licence import Licence, sign

    key = load_private(ROOT / "keys" / "dev" / "licence-vendor-DEV-ONLY.pem")
    path = work / "licence.txt"
    path.write_bytes(sign(Licence("bench-0001", "SIM00000001", 32, "standard",
                                  "2026-01-01", None), key))
    return path


def ours_argv(nvr: Path, streams: list[Stream], data_dir: Path, segment_seconds: int) -> list[str]:
    argv = [str(nvr), "record", "--data", str(data_dir), "--status", "never",
            "--segment-seconds", str(segment_seconds), "--allow-boot-media", "true",
            "--board", "sim", "--licence", str(bench_licence(data_dir.parent))]
    for stream in streams:
        argv += ["--camera", f"{stream.name}={stream.url}"]
    return argv


def ffmpeg_argv(stream: Stream, out_dir: Path, segment_seconds: int) -> list[str]:
    """The reference command; verbose logging only adds its final demuxed-bytes line."""
    return ["ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-loglevel", "verbose",
            "-rtsp_transport", "tcp", "-i", stream.url,
            "-c", "copy", "-f", "segment", "-segment_time", str(segment_seconds),
            "-reset_timestamps", "1", str(out_dir / "%05d.mp4")]


def launch_ours(streams: list[Stream], work: Path, segment_seconds: int) -> Recorder:
    data_dir = work / "ours"
    data_dir.mkdir()
    log_path = work / "logs" / "ours.log"
    popen = spawn(ours_argv(nvr_command(), streams, data_dir, segment_seconds), log_path,
                  signal.SIGTERM)
    log.info("launched ours pid=%d streams=%d", popen.pid, len(streams))
    return Recorder("ours", streams, data_dir, log_path, signal.SIGTERM, popen,
                    psutil.Process(popen.pid), time.monotonic())


def launch_ffmpeg(stream: Stream, work: Path, segment_seconds: int) -> Recorder:
    out_dir = work / "ffmpeg" / stream.name
    out_dir.mkdir(parents=True)
    log_path = work / "logs" / f"ffmpeg-{stream.name}.log"
    popen = spawn(ffmpeg_argv(stream, out_dir, segment_seconds), log_path, signal.SIGINT)
    log.info("launched ffmpeg pid=%d stream=%s", popen.pid, stream.name)
    return Recorder("ffmpeg", [stream], out_dir, log_path, signal.SIGINT, popen,
                    psutil.Process(popen.pid), time.monotonic())


def nvr_command() -> Path:
    """`nvr` from the interpreter's own virtualenv (.venv/bin/nvr under `make bench`)."""
    return Path(sys.executable).with_name("nvr")


def launch_recorders(variants: list[str], streams: list[Stream], work: Path,
                     segment_seconds: int, stagger: float, recorders: list[Recorder]) -> None:
    """Ours first (it is every media's first client), then ffmpeg staggered.

    `recorders` is filled as processes start, so the caller can stop them if this fails.
    """
    primed: set[int] = set()
    if "ours" in variants:
        recorders.append(launch_ours(streams, work, segment_seconds))
        time.sleep(FIRST_CLIENT_PAUSE_S)
        primed = {stream.server for stream in streams}
    if "ffmpeg" in variants:
        for stream in streams:
            recorders.append(launch_ffmpeg(stream, work, segment_seconds))
            first_on_server = stream.server not in primed
            primed.add(stream.server)
            time.sleep(FIRST_CLIENT_PAUSE_S if first_on_server else stagger)


def stop_recorders(recorders: list[Recorder]) -> None:
    """Stop signal to every recorder at once, wait, SIGKILL what is left.

    `stopped_at` is the bench's stop moment even for a recorder that died earlier, so
    what it missed since counts as unrecorded.
    """
    for rec in recorders:
        rec.stopped_at = time.monotonic()
        if rec.popen.poll() is None:
            rec.popen.send_signal(rec.stop_signal)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for rec in recorders:
        try:
            rec.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s pid=%d did not stop in %.0f s; killing", rec.variant, rec.popen.pid,
                        STOP_TIMEOUT_S)
            rec.popen.kill()
            rec.popen.wait()
            rec.killed = True


# ---------------------------------------------------------------------------- cameras


def plan_streams(count: int, mounts_per_server: int) -> list[list[tuple[str, str]]]:
    """[(camera name, mount)] per server: cam01../cam1 ... spread over ceil(N/k) servers."""
    names = [(f"cam{i:02d}", f"/cam{i}") for i in range(1, count + 1)]
    return [names[i:i + mounts_per_server] for i in range(0, count, mounts_per_server)]


def start_servers(clip: Path, plan: list[list[tuple[str, str]]], log_dir: Path,
                  servers: list[SimCameraServer]) -> list[Stream]:
    """One SimCameraServer per plan entry, shared media per mount; fills `servers`."""
    streams = []
    for index, mounts in enumerate(plan):
        server = SimCameraServer(free_port(), [SimCamera(mount, clip) for _, mount in mounts],
                                 log_path=log_dir / f"camsim-{index}.log")
        servers.append(server)
        server.start()
        streams += [Stream(name, mount, server.url(mount), index) for name, mount in mounts]
    return streams


def stop_servers(servers: list[SimCameraServer]) -> list[int | None]:
    return [server.stop() for server in servers]


# ---------------------------------------------------------------------------- measuring


@dataclass
class Usage:
    """A snapshot of one process's resource counters."""

    cpu_s: float
    write_bytes: int
    rss: int
    pss: int | None = None


def usage_of(process: psutil.Process, with_memory_map: bool = False) -> Usage | None:
    """None when the process is gone."""
    try:
        with process.oneshot():
            times = process.cpu_times()
            usage = Usage(times.user + times.system, process.io_counters().write_bytes,
                          process.memory_info().rss)
        if with_memory_map:
            usage.pss = process.memory_full_info().pss
        return usage
    except psutil.NoSuchProcess:
        return None


def machine_idle_s() -> float:
    """CPU-seconds all cores spent idle (or waiting for I/O) since boot.

    Busy time is derived from idle time: /proc/stat's user/system columns are sampled at
    the timer tick and undercount many short wake-ups (25 per second per stream here).
    """
    times = psutil.cpu_times()
    return times.idle + getattr(times, "iowait", 0.0)


@dataclass
class Window:
    seconds: float
    start: dict[int, Usage | None]
    end: dict[int, Usage | None]
    servers_cpu_s: float
    bench_cpu_s: float
    machine_busy_s: float


def measure_window(recorders: list[Recorder], servers: list[SimCameraServer],
                   seconds: float) -> Window:
    """CPU, writes and memory of every recorder over `seconds` of wall time."""
    server_procs = [psutil.Process(server.pid) for server in servers if server.pid]
    bench = psutil.Process()
    start = {rec.popen.pid: usage_of(rec.process) for rec in recorders}
    servers_0 = sum(u.cpu_s for u in map(usage_of, server_procs) if u)
    bench_0, idle_0, t0 = usage_of(bench).cpu_s, machine_idle_s(), time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - t0
    busy = elapsed * (os.cpu_count() or 1) - (machine_idle_s() - idle_0)
    end = {rec.popen.pid: usage_of(rec.process, with_memory_map=True) for rec in recorders}
    servers_1 = sum(u.cpu_s for u in map(usage_of, server_procs) if u)
    return Window(elapsed, start, end, servers_1 - servers_0, usage_of(bench).cpu_s - bench_0,
                  busy)


def per_minute(cpu_s: float, window_s: float) -> float:
    return cpu_s * 60.0 / window_s


def ours_index(data_dir: Path) -> dict[str, Any]:
    """`nvr segments --data DIR --json`: per camera status, segments and gaps."""
    result = subprocess.run([str(nvr_command()), "segments", "--data", str(data_dir), "--json"],
                            capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        log.warning("nvr segments failed: %s", result.stderr.strip()[-500:])
        return {}
    return json.loads(result.stdout).get("cameras", {})


def cameras_recording(index: dict[str, Any]) -> int:
    return sum(1 for cam in index.values() if (cam.get("status") or {}).get("state") == "recording")


# ---------------------------------------------------------------------------- checking files


@dataclass
class Probe:
    packets: int
    payload_bytes: int
    duration_s: float
    readable: bool


def probe_file(path: Path) -> Probe:
    """Video packets (ffprobe -count_packets), their bytes and the duration of one file."""
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-count_packets", "-select_streams", "v:0",
         "-show_entries", "packet=size:stream=nb_read_packets,duration:format=duration",
         "-of", "json", str(path)], capture_output=True, text=True, timeout=120)
    try:
        data = json.loads(result.stdout)
        stream = data["streams"][0]
        duration = stream.get("duration") or data["format"]["duration"]
        payload = sum(int(p["size"]) for p in data.get("packets", []))
        return Probe(int(stream["nb_read_packets"]), payload, float(duration), True)
    except (ValueError, KeyError, IndexError):
        return Probe(0, 0, 0.0, False)


def probe_files(paths: list[Path]) -> dict[Path, Probe]:
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return dict(zip(paths, pool.map(probe_file, paths)))


def recorded_files(recorder: Recorder, stream: Stream) -> list[Path]:
    if recorder.variant == "ours":
        return sorted((recorder.out_dir / "recordings" / stream.name).rglob("*.mp4"))
    return sorted(recorder.out_dir.glob("*.mp4"))


def ffmpeg_demuxed_bytes(log_path: Path) -> int | None:
    """Bytes of media ffmpeg read from the camera, from its final verbose statistics."""
    match = FFMPEG_DEMUXED.search(log_path.read_text(errors="replace"))
    return int(match.group(2)) if match else None


def clean_exit(recorder: Recorder) -> bool:
    """Ours exits 0 on SIGTERM; ffmpeg exits 255 on SIGINT even when it finished cleanly."""
    code = recorder.popen.returncode
    if recorder.killed:
        return False
    if recorder.variant == "ours":
        return code == 0
    return code in (0, 255) and "Exiting normally" in recorder.log_path.read_text(errors="replace")


def log_tail(path: Path) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return text[-TAIL_CHARS:]


# ---------------------------------------------------------------------------- per-stream rows


def stream_row(recorder: Recorder, stream: Stream, files: list[Path],
               probes: dict[Path, Probe], allowance_s: float) -> dict[str, Any]:
    """Packets and duration recorded for one stream, and what is missing."""
    packets = sum(probes[f].packets for f in files)
    duration = sum(probes[f].duration_s for f in files)
    expected = sum(round(probes[f].duration_s * FPS) for f in files)
    ran_s = (recorder.stopped_at or time.monotonic()) - recorder.launched_at
    unrecorded = ran_s - duration
    return {
        "variant": recorder.variant, "stream": stream.name, "url": stream.url,
        "pid": recorder.popen.pid, "files": len(files),
        "unreadable_files": sum(not probes[f].readable for f in files),
        "packets": packets, "duration_s": round(duration, 3), "expected_packets": expected,
        "lost_packets": max(0, expected - packets), "extra_packets": max(0, packets - expected),
        "ran_s": round(ran_s, 3), "unrecorded_s": round(unrecorded, 3),
        "unrecorded_ok": unrecorded <= allowance_s,
        "bytes_written": sum(f.stat().st_size for f in files),
        "payload_bytes": sum(probes[f].payload_bytes for f in files),
    }


def ours_extras(camera: dict[str, Any], launched_wall_us: int) -> dict[str, Any]:
    """What our index says about one camera: bytes received, gaps, reconnects, start-up."""
    status = camera.get("status") or {}
    segments = camera.get("segments") or []
    first_us = min((s["start_us"] for s in segments), default=None)
    gaps_while_recording = [g for g in camera.get("gaps") or []
                            if first_us is not None and g["start_us"] > first_us
                            and g["cause"] != "recorder_stopped"]
    return {
        "bytes_received": status.get("bytes_in"), "packets_received": status.get("packets_in"),
        "indexed_segments": len(segments),
        "indexed_packets": sum(s.get("packets", 0) for s in segments),
        "reconnects": status.get("reconnects"),
        "timestamp_repairs": status.get("timestamp_repairs"),
        "gaps_while_recording": len(gaps_while_recording),
        "startup_s": round((first_us - launched_wall_us) / 1e6, 3) if first_us else None,
    }


def ratio(numerator: int, denominator: int | None) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def stream_lost(row: dict[str, Any]) -> bool:
    return (row["lost_packets"] > 0 or not row["unrecorded_ok"] or row["packets"] == 0
            or row["unreadable_files"] > 0 or row.get("gaps_while_recording", 0) > 0)


def collect_rows(recorders: list[Recorder], launched_wall_us: dict[int, int],
                 allowance_s: float) -> list[dict[str, Any]]:
    """One row per (variant, stream), after every recorder has stopped."""
    files = {(rec.popen.pid, s.name): recorded_files(rec, s) for rec in recorders
             for s in rec.streams}
    probes = probe_files([f for paths in files.values() for f in paths])
    rows = []
    for rec in recorders:
        index = ours_index(rec.out_dir) if rec.variant == "ours" else {}
        for stream in rec.streams:
            row = stream_row(rec, stream, files[(rec.popen.pid, stream.name)], probes,
                             allowance_s)
            if rec.variant == "ours":
                row |= ours_extras(index.get(stream.name, {}), launched_wall_us[rec.popen.pid])
            else:
                row["bytes_received"] = ffmpeg_demuxed_bytes(rec.log_path)
            received = row["bytes_received"]
            row["written_per_received"] = ratio(row["bytes_written"], received)
            row["written_per_payload"] = ratio(row["bytes_written"], row["payload_bytes"])
            row["lost"] = stream_lost(row)
            rows.append(row)
    return rows


# ---------------------------------------------------------------------------- aggregates


def process_row(rec: Recorder, window: Window) -> dict[str, Any]:
    """CPU, memory and writes of one recorder process over the window, per stream."""
    start, end = window.start.get(rec.popen.pid), window.end.get(rec.popen.pid)
    n = len(rec.streams)
    row: dict[str, Any] = {"variant": rec.variant, "pid": rec.popen.pid, "streams": n,
                           "alive_through_window": start is not None and end is not None,
                           "exit_code": rec.popen.returncode, "clean_exit": clean_exit(rec)}
    if start is not None and end is not None:
        cpu = end.cpu_s - start.cpu_s
        row |= {
            "cpu_s": round(cpu, 3),
            "cpu_s_per_min_per_stream": round(per_minute(cpu, window.seconds) / n, 4),
            "rss_mib": round(end.rss / MIB, 1), "rss_mib_per_stream": round(end.rss / MIB / n, 2),
            "rss_growth_mib": round((end.rss - start.rss) / MIB, 1),
            "pss_mib_per_stream": round(end.pss / MIB / n, 2) if end.pss else None,
            "disk_write_MBps_per_stream": round(
                (end.write_bytes - start.write_bytes) / window.seconds / 1e6 / n, 4),
        }
    if not row["clean_exit"]:
        row["log_tail"] = log_tail(rec.log_path)
    return row


def spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"mean": round(mean(values), 4), "min": round(min(values), 4),
            "max": round(max(values), 4)}


def weighted_per_stream(procs: list[dict[str, Any]], key: str) -> float | None:
    """Per-stream figure over all of a variant's streams (processes weighted by streams)."""
    measured = [p for p in procs if p.get(key) is not None]
    streams = sum(p["streams"] for p in measured)
    if not streams:
        return None
    return round(sum(p[key] * p["streams"] for p in measured) / streams, 4)


def aggregate(variant: str, procs: list[dict[str, Any]], rows: list[dict[str, Any]]
              ) -> dict[str, Any]:
    procs = [p for p in procs if p["variant"] == variant]
    rows = [r for r in rows if r["variant"] == variant]
    cpu = [p["cpu_s_per_min_per_stream"] for p in procs if "cpu_s_per_min_per_stream" in p]
    written = sum(r["bytes_written"] for r in rows)
    received = [r["bytes_received"] for r in rows]
    payload = sum(r["payload_bytes"] for r in rows)
    return {
        "streams": len(rows), "processes": len(procs),
        "cpu_s_per_min_per_stream": weighted_per_stream(procs, "cpu_s_per_min_per_stream"),
        "cpu_s_per_min_per_stream_by_process": spread(cpu),
        "rss_mib_per_stream": weighted_per_stream(procs, "rss_mib_per_stream"),
        "pss_mib_per_stream": weighted_per_stream(procs, "pss_mib_per_stream"),
        "disk_write_MBps_per_stream": weighted_per_stream(procs, "disk_write_MBps_per_stream"),
        "written_per_received": ratio(written, sum(received)) if all(received) else None,
        "written_per_payload": ratio(written, payload),
        "packets": spread([r["packets"] for r in rows]),
        "lost_packets": sum(r["lost_packets"] for r in rows),
        "extra_packets": sum(r["extra_packets"] for r in rows),
        "unrecorded_s_max": max((r["unrecorded_s"] for r in rows), default=None),
        "streams_with_loss": sum(r["lost"] for r in rows),
        "processes_alive_through_window": sum(p["alive_through_window"] for p in procs),
        "clean_exits": sum(p["clean_exit"] for p in procs),
    }


def add_cpu_ratio(variants: dict[str, dict[str, Any]]) -> None:
    ours, ref = variants.get("ours"), variants.get("ffmpeg")
    if ours and ref and ours["cpu_s_per_min_per_stream"] and ref["cpu_s_per_min_per_stream"]:
        ours["cpu_ratio_to_ffmpeg"] = round(
            ours["cpu_s_per_min_per_stream"] / ref["cpu_s_per_min_per_stream"], 3)
    if ref:
        ref["cpu_ratio_to_ffmpeg"] = 1.0


def target(name: str, limit: str, value: Any, passed: bool | None) -> dict[str, Any]:
    status = "N/A" if passed is None else ("PASS" if passed else "FAIL")
    return {"target": name, "limit": limit, "measured": value, "status": status}


def evaluate_targets(variants: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    ours = variants.get("ours")
    if ours is None:
        return [target("our recorder", "run with --only both or ours", "not run", None)]
    ratio = ours.get("cpu_ratio_to_ffmpeg")
    rss = ours["rss_mib_per_stream"]
    streams = ours["streams"]
    no_loss = ours["streams_with_loss"] == 0 and ours["clean_exits"] == ours["processes"]
    loss_text = (f"{ours['lost_packets']} lost packets, {ours['streams_with_loss']} of "
                 f"{streams} streams short, {streams} streams")
    return [
        target("our CPU per stream vs ffmpeg (same run)", f"<= {TARGET_CPU_RATIO:.2f}x",
               ratio, None if ratio is None else ratio <= TARGET_CPU_RATIO),
        target("our RSS per stream", f"<= {TARGET_RSS_MIB:g} MiB", rss,
               None if rss is None else rss <= TARGET_RSS_MIB),
        target(f"no lost packets at {TARGET_LOSS_STREAMS} streams (ours)",
               f"0 lost, >= {TARGET_LOSS_STREAMS} streams", loss_text,
               no_loss if streams >= TARGET_LOSS_STREAMS else None),
        target(f"no lost packets at this run's {streams} streams (ours)", "0 lost", loss_text,
               no_loss),
    ]


# ---------------------------------------------------------------------------- context


def run_text(argv: list[str]) -> str | None:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def machine_info() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "?")
    os_name = next((line.split("=", 1)[1].strip('"') for line in
                    Path("/etc/os-release").read_text().splitlines()
                    if line.startswith("PRETTY_NAME=")), platform.system())
    return {"cpu_model": model, "nproc": os.cpu_count(),
            "mem_total_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "kernel": platform.release(), "os": os_name,
            "load_avg_at_start": [round(x, 2) for x in os.getloadavg()]}


def versions() -> dict[str, Any]:
    pyav_libs = run_text([sys.executable, "-c",
                          "import av; print(av.ffmpeg_version_info)"])
    ffmpeg = run_text(["ffmpeg", "-hide_banner", "-version"])
    return {
        "python": platform.python_version(),
        "pyav": metadata.version("av"), "pyav_ffmpeg_libs": pyav_libs,
        "psutil": psutil.__version__,
        "ffmpeg_cli": ffmpeg.splitlines()[0] if ffmpeg else None,
        "nvr": run_text([str(nvr_command()), "--version"]),
        "gst_rtsp_server": run_text(["dpkg-query", "-W", "-f", "${Version}",
                                     "libgstrtspserver-1.0-0"]),
        "git_commit": run_text(["git", "-C", str(ROOT), "rev-parse", "HEAD"]),
        "git_dirty": bool(run_text(["git", "-C", str(ROOT), "status", "--porcelain",
                                    "--untracked-files=no"])),
    }


def load_summary(window: Window, procs: list[dict[str, Any]]) -> dict[str, Any]:
    """Where the machine's CPU went during the window (others may share the machine)."""
    recorders = sum(p.get("cpu_s", 0.0) for p in procs)
    other = window.machine_busy_s - recorders - window.servers_cpu_s - window.bench_cpu_s
    capacity = window.seconds * (os.cpu_count() or 1)
    return {
        "window_s": round(window.seconds, 2),
        "machine_busy_pct": round(100 * window.machine_busy_s / capacity, 1),
        "recorders_cpu_s_per_min": round(per_minute(recorders, window.seconds), 2),
        "servers_cpu_s_per_min": round(per_minute(window.servers_cpu_s, window.seconds), 2),
        "bench_cpu_s_per_min": round(per_minute(window.bench_cpu_s, window.seconds), 2),
        "other_processes_cpu_s_per_min": round(per_minute(max(0.0, other), window.seconds), 2),
    }


METHOD = {
    "cpu": "user+sys CPU-seconds of each recorder process (psutil) over the fixed wall window "
           "after warm-up, x 60 / window / streams in the process = CPU-s per minute of video "
           "per stream. Ours is one process for all N streams; ffmpeg is one per stream.",
    "memory": "RSS (and PSS from smaps) at the end of the window / streams in the process.",
    "disk_write": "/proc/<pid>/io write_bytes over the window / window / streams (includes our "
                  "SQLite index).",
    "written_per_received": "sum of the recorded files' sizes / bytes of media received over "
                            "the recorder's life; received = ours: the index status bytes_in; "
                            "ffmpeg: its own final verbose statistics ('N packets (B bytes) "
                            "demuxed'). Both count demuxed packet payload, including packets "
                            "dropped before the first keyframe (ffmpeg joins each shared stream "
                            "after ours, mid-GOP, and drops up to one GOP there).",
    "written_per_payload": "sum of the recorded files' sizes / sum of the recorded video "
                           "packets' sizes (ffprobe): the container's own overhead.",
    "lost_packets": "per file, round(fps x ffprobe duration) - ffprobe -count_packets, summed "
                    "per stream (holes inside the recording).",
    "unrecorded_s": "wall time from the recorder's launch to its stop signal minus the summed "
                    "file durations: connect + wait for the first keyframe + any loss; more "
                    "than --startup-allowance counts the stream as lossy.",
}


# ---------------------------------------------------------------------------- report


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def cpu_cell(agg: dict[str, Any]) -> str:
    by_proc = agg["cpu_s_per_min_per_stream_by_process"]
    if by_proc is None:
        return "-"
    if agg["processes"] == 1:
        return fmt(agg["cpu_s_per_min_per_stream"], 3)
    return f"{agg['cpu_s_per_min_per_stream']:.3f} ({by_proc['min']:.3f}-{by_proc['max']:.3f})"


def markdown(results: dict[str, Any]) -> str:
    load = results["load"]
    params = results["parameters"]
    machine = results["machine"]
    lines = [
        f"{params['streams']} streams, clip {params['clip']}, window {load['window_s']} s after "
        f"{params['warm_s']} s warm-up; {machine['cpu_model']} x{machine['nproc']}; machine "
        f"busy {load['machine_busy_pct']} %, camera servers {load['servers_cpu_s_per_min']} "
        f"CPU-s/min, everything else (kernel, other users) "
        f"{load['other_processes_cpu_s_per_min']} CPU-s/min",
        "",
        "| variant | streams | processes | CPU-s / min / stream (mean, min-max) | x ffmpeg "
        "| RSS MiB / stream | PSS MiB / stream | disk write MB/s / stream "
        "| written / received | packets / stream (min-max) | lost packets | streams short "
        "| unrecorded s (max) | clean exits |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, agg in results["variants"].items():
        packets = agg["packets"] or {"min": 0, "max": 0}
        lines.append(
            f"| {name} | {agg['streams']} | {agg['processes']} | {cpu_cell(agg)} "
            f"| {fmt(agg.get('cpu_ratio_to_ffmpeg'))} | {fmt(agg['rss_mib_per_stream'], 1)} "
            f"| {fmt(agg['pss_mib_per_stream'], 1)} | {fmt(agg['disk_write_MBps_per_stream'], 3)} "
            f"| {fmt(agg['written_per_received'], 4)} | {packets['min']:.0f}-{packets['max']:.0f} "
            f"| {agg['lost_packets']} | {agg['streams_with_loss']} "
            f"| {fmt(agg['unrecorded_s_max'])} | {agg['clean_exits']}/{agg['processes']} |")
    lines += ["", "| target | limit | measured | result |", "|---|---|---|---|"]
    for t in results["targets"]:
        lines.append(f"| {t['target']} | {t['limit']} | {fmt(t['measured'])} | {t['status']} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- main


def make_work_dir(requested: Path | None) -> Path:
    if requested is not None:
        requested.mkdir(parents=True, exist_ok=True)
        return requested
    (ROOT / "var").mkdir(exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="recorder-bench-", dir=ROOT / "var"))


def prepare_clip(args: argparse.Namespace) -> Path:
    log.info("clip %dx%d %d kb/s (encoded once, cached in %s)", args.width, args.height,
             args.bitrate_kbps, CLIP_CACHE)
    return ensure_clip(CLIP_CACHE, seconds=CLIP_SECONDS, width=args.width, height=args.height,
                       fps=FPS, bitrate_kbps=args.bitrate_kbps, gop=GOP_FRAMES)


def record_and_measure(args: argparse.Namespace, clip: Path, work: Path
                       ) -> tuple[list[Recorder], Window, dict[int, int], int | None]:
    """Everything that runs processes; every one of them is stopped before returning."""
    servers: list[SimCameraServer] = []
    recorders: list[Recorder] = []
    try:
        plan = plan_streams(args.streams, args.mounts_per_server)
        streams = start_servers(clip, plan, work / "logs", servers)
        launch_recorders(variants_of(args.only), streams, work, args.segment_seconds,
                         args.stagger, recorders)
        launched_wall_us = {rec.popen.pid: wall_us_of(rec.launched_at) for rec in recorders}
        log.info("warming up %.0f s", args.warm)
        time.sleep(args.warm)
        recording = next((cameras_recording(ours_index(rec.out_dir))
                          for rec in recorders if rec.variant == "ours"), None)
        log.info("measuring for %.0f s (ours recording: %s)", args.window, recording)
        window = measure_window(recorders, servers, args.window)
    finally:
        with stop_signals_deferred():
            log.info("stopping %d recorders and %d servers", len(recorders), len(servers))
            stop_recorders(recorders)
            server_exits = stop_servers(servers)
        if any(code not in (0, None) for code in server_exits):
            log.warning("camera server exit codes: %s", server_exits)
    return recorders, window, launched_wall_us, recording


def wall_us_of(monotonic_at: float) -> int:
    return int((time.time() - (time.monotonic() - monotonic_at)) * 1_000_000)


def build_results(args: argparse.Namespace, clip: Path, recorders: list[Recorder],
                  window: Window, launched_wall_us: dict[int, int],
                  recording_at_window_start: int | None, started: datetime) -> dict[str, Any]:
    procs = [process_row(rec, window) for rec in recorders]
    rows = collect_rows(recorders, launched_wall_us, args.startup_allowance)
    variants = {v: aggregate(v, procs, rows) for v in variants_of(args.only)}
    add_cpu_ratio(variants)
    return {
        "bench": "recorder_bench", "started_utc": started.isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "machine": machine_info(), "versions": versions(),
        "parameters": {
            "streams": args.streams, "only": args.only, "warm_s": args.warm,
            "window_s": args.window, "segment_seconds": args.segment_seconds,
            "clip": f"{args.width}x{args.height} {FPS} fps H.264 {args.bitrate_kbps} kb/s "
                    f"GOP {GOP_FRAMES}", "clip_path": str(clip),
            "mounts_per_server": args.mounts_per_server, "stagger_s": args.stagger,
            "startup_allowance_s": args.startup_allowance, "shared_media_per_stream": True,
            "ours_cameras_recording_at_window_start": recording_at_window_start,
        },
        "method": METHOD,
        "load": load_summary(window, procs),
        "variants": variants,
        "targets": evaluate_targets(variants),
        "processes": procs,
        "streams": rows,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = datetime.now(timezone.utc)
    work = make_work_dir(args.work)
    (work / "logs").mkdir(exist_ok=True)
    try:
        clip = prepare_clip(args)
        recorders, window, launched, recording = record_and_measure(args, clip, work)
        log.info("checking recordings with ffprobe")
        return build_results(args, clip, recorders, window, launched, recording, started)
    finally:
        with stop_signals_deferred():
            if args.keep:
                log.info("kept recordings and logs in %s", work)
            else:
                shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s bench %(levelname)s %(message)s")
    args = parse_args(argv)
    raise_on_stop_signals()
    try:
        results = run(args)
    except Interrupted as exc:
        log.error("interrupted by %s; everything the bench started was stopped", exc)
        return 130
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(markdown(results))
    log.info("results in %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
