"""End to end with a real virtual ONVIF camera: ipycam 1.3.0 in a private network namespace.

ipycam binds 0.0.0.0 and multicasts WS-Discovery Hello (reference/performance.md §4.1),
so it runs only inside a namespace this test creates with `unshare --net`, holding just
loopback (with a multicast route). Our code runs as child processes in the same namespace:
`discover` (multicast and unicast), `onvif-info` (WS-Security digest; ipycam has auth on),
then the real recorder on the main stream URI onboarding returned, checked with
`nvr segments` and ffprobe. Nothing leaves the namespace; every process in it is killed
at the end, whatever happened.
"""

from __future__ import annotations

import importlib.util
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, ffprobe_json
from tests.waiting import wait_until

PASSWORD = "s3cret pass!"
NEEDED_TOOLS = ("unshare", "nsenter", "ip", "ffmpeg", "ffprobe")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="unshare --net needs root (CI and the dev "
                       "machines run as root)"),
    pytest.mark.skipif(any(shutil.which(t) is None for t in NEEDED_TOOLS),
                       reason=f"needs {', '.join(NEEDED_TOOLS)} (make system-packages)"),
    pytest.mark.skipif(importlib.util.find_spec("ipycam") is None,
                       reason="ipycam is not installed (pip install -e '.[test]')"),
]


class Namespace:
    """A private network namespace kept open by a sleeping process."""

    def __init__(self) -> None:
        setup = ("ip link set lo up && ip link set lo multicast on && "
                 "ip route add 224.0.0.0/4 dev lo && echo ready && exec sleep 600")
        self.holder = subprocess.Popen(["unshare", "--net", "--", "sh", "-c", setup],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       start_new_session=True)
        ready, _, _ = select.select([self.holder.stdout], [], [], 10)
        line = self.holder.stdout.readline() if ready else b""
        if line.strip() != b"ready":
            err = self.holder.stderr.read1(2000).decode(errors="replace") if ready else ""
            self.holder.kill()
            self.holder.wait(5)
            pytest.skip(f"cannot create a network namespace here: {err.strip() or 'timeout'}")
        self.path = f"/proc/{self.holder.pid}/ns/net"
        self.inode = os.stat(self.path).st_ino
        assert self.inode != os.stat("/proc/self/ns/net").st_ino

    def argv(self, *cmd: str) -> list[str]:
        return ["nsenter", f"--net={self.path}", "--", *cmd]

    def run(self, *cmd: str, input: str | None = None,
            timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(*cmd), input=input, capture_output=True, text=True,
                              timeout=timeout, cwd=ROOT, env=child_env())

    def members(self) -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.stat(entry / "ns" / "net").st_ino == self.inode:
                        pids.append(int(entry.name))
                except OSError:
                    continue
        return pids

    def close(self) -> None:
        """SIGTERM, then SIGKILL, every process in the namespace (only ours are there)."""
        for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
            for pid in self.members():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            try:
                wait_until(self._all_gone, grace, "the namespace's processes to end", step=0.05)
            except AssertionError:
                continue  # SIGKILL next
        self.holder.wait(5)
        assert self.members() == [], "processes survived in the test namespace"

    def _all_gone(self) -> bool:
        self.holder.poll()  # reap the holder as soon as it exits
        return not self.members()


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def wait_for(predicate, timeout: float, what: str, log: Path | None = None) -> None:
    try:
        wait_until(predicate, timeout, what, step=0.1)
    except AssertionError as exc:
        tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
        raise AssertionError(f"{exc}\n{tail}") from None


@pytest.fixture
def namespace():
    ns = Namespace()
    try:
        yield ns
    finally:
        ns.close()


@pytest.fixture
def ipycam(namespace, small_clip, tmp_path):
    """ipycam with WS-Security on, 640x360@10 main, 320x180 sub, listening in the namespace."""
    work = tmp_path / "ipycam"
    work.mkdir()
    (work / "camera_config.json").write_text(json.dumps({
        "name": "Lab Cam", "username": "admin", "password": PASSWORD,
        "main_width": 640, "main_height": 360, "main_fps": 10, "main_bitrate": "800K",
        "sub_width": 320, "sub_height": 180, "sub_fps": 10, "sub_bitrate": "256K",
        "show_timestamp": False}))
    log = work / "ipycam.log"
    with open(log, "wb") as out:
        subprocess.Popen(namespace.argv(sys.executable, "-m", "ipycam", "--source", str(small_clip),
                                        "--width", "640", "--height", "360", "--fps", "10",
                                        "--hw", "cpu", "--config", str(work / "camera_config.json"),
                                        "--log-level", "INFO"),
                         cwd=work, stdout=out, stderr=subprocess.STDOUT, env=child_env(),
                         start_new_session=True)
    wait_for(lambda: b"Opening camera source" in log.read_bytes(), 30, "ipycam to start", log)
    # Answering: its ONVIF (8080) and RTSP (8554) ports accept, checked from inside.
    check = ("import socket,sys,time\nend=time.monotonic()+20\n"
             "while time.monotonic()<end:\n"
             " try:\n  [socket.create_connection(('127.0.0.1',p),1).close() for p in (8080,8554)]\n"
             "  sys.exit(0)\n except OSError: time.sleep(0.1)\nsys.exit(1)")
    assert namespace.run(sys.executable, "-c", check, timeout=30).returncode == 0, \
        log.read_text(errors="replace")[-2000:]
    return log


def nvr_onvif(namespace: Namespace, *args: str, input: str | None = None):
    return namespace.run(sys.executable, "-m", "appliance.cli", *args, input=input)


def test_discover_onboard_and_record_ipycam(namespace, ipycam, tmp_path):
    started = time.monotonic()
    loopback = ("--allow-network", "127.0.0.0/8")

    # 1. WS-Discovery, multicast to 239.255.255.250 on the namespace's loopback
    multi = nvr_onvif(namespace, "discover", "--json", "--timeout", "1.5", *loopback)
    assert multi.returncode == 0, multi.stderr
    [device] = json.loads(multi.stdout)["devices"]
    assert device["name"] == "Lab Cam" and device["endpoint"].startswith("urn:uuid:")
    assert device["xaddrs"] == [{"url": "http://127.0.0.1:8080/onvif/device_service",
                                 "refused": None, "from_sender": True}]
    # ... and unicast to the camera's address
    uni = nvr_onvif(namespace, "discover", "--json", "--timeout", "1", "--address", "127.0.0.1",
                    *loopback)
    assert uni.returncode == 0, uni.stderr
    assert [d["endpoint"] for d in json.loads(uni.stdout)["devices"]] == [device["endpoint"]]
    # without the explicit loopback opt-in, the suggestion is marked refused
    default = nvr_onvif(namespace, "discover", "--json", "--timeout", "1")
    [seen] = json.loads(default.stdout)["devices"]
    assert "loopback" in seen["xaddrs"][0]["refused"]

    # 2. Onboarding with WS-Security (the password arrives on stdin, never in argv)
    xaddr = device["xaddrs"][0]["url"]
    wrong = nvr_onvif(namespace, "onvif-info", "--xaddr", xaddr, "--user", "admin",
                      "--password-file", "-", *loopback, input="not it\n")
    assert wrong.returncode == 2
    assert "refused the user name or password" in wrong.stderr
    info = nvr_onvif(namespace, "onvif-info", "--xaddr", xaddr, "--user", "admin",
                     "--password-file", "-", "--json", *loopback, input=PASSWORD + "\n")
    assert info.returncode == 0, info.stderr
    camera = json.loads(info.stdout)
    assert PASSWORD not in info.stdout
    assert (camera["manufacturer"], camera["model"], camera["serial"], camera["hardware_id"]) == \
        ("PythonCam", "VirtualCam-1", "PY-000001", "PY-HW-01")
    assert camera["endpoint_reference"] == device["endpoint"]   # by unicast probe
    main, sub = camera["main"], camera["sub"]
    assert (main["uri"], main["codec"], main["width"], main["height"]) == \
        ("rtsp://127.0.0.1:8554/video_main", "h264", 640, 360)
    assert (sub["uri"], sub["width"], sub["height"]) == \
        ("rtsp://127.0.0.1:8554/video_sub", 320, 180)
    assert camera["snapshot_uri"] == "http://127.0.0.1:8080/snapshot.jpg"

    # 3. The real recorder on the main stream, inside the namespace, for 10 s of video
    data = tmp_path / "data"
    events: list[dict] = []
    recorder = subprocess.Popen(
        namespace.argv(sys.executable, "-m", "appliance.cli", "record", "--data", str(data),
                       "--camera", f"cam={main['uri']}", "--allow-boot-media", "true",
                       "--segment-seconds", "2", "--events", "--status", "never"),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=open(tmp_path / "recorder.log", "wb"),
        env=child_env(), start_new_session=True)
    reader = threading.Thread(target=lambda: events.extend(json.loads(line) for line
                                                           in recorder.stdout), daemon=True)
    reader.start()

    def recorded_seconds() -> float:
        return sum((e["end_us"] - e["start_us"]) / 1e6 for e in list(events)
                   if e.get("event") == "segment")

    try:
        wait_for(lambda: recorded_seconds() >= 10 or recorder.poll() is not None, 30,
                 "10 s of recorded segments", tmp_path / "recorder.log")
    finally:
        recorder.send_signal(signal.SIGINT)
        recorder.wait(15)
        reader.join(5)
    assert recorder.returncode == 0, (tmp_path / "recorder.log").read_text()[-2000:]
    assert recorded_seconds() >= 10

    listing = subprocess.run([sys.executable, "-m", "appliance.cli", "segments", "--data",
                              str(data), "--camera", "cam", "--json"], capture_output=True,
                             text=True, cwd=ROOT, timeout=30)
    assert listing.returncode == 0, listing.stderr
    segments = json.loads(listing.stdout)["segments"]
    assert len(segments) >= 5
    assert {(s["video_codec"], s["width"], s["height"], s["status"]) for s in segments} == \
        {("h264", 640, 360, "ok")}
    durations = []
    for seg in segments:
        probe = ffprobe_json(data / seg["path"], "-show_streams", "-show_format")
        [video] = [s for s in probe["streams"] if s["codec_type"] == "video"]
        assert (video["codec_name"], video["width"], video["height"]) == ("h264", 640, 360)
        durations.append(float(probe["format"]["duration"]))
    assert all(d >= 1.5 for d in durations[:-1])   # 2 s segments; the last one cut by the stop
    assert sum(durations) >= 9.5
    assert time.monotonic() - started < 55
