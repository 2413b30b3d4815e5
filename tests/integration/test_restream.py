"""The restream with real processes: a simulated camera, the camera registry, the relay
(gst-rtsp-server under /usr/bin/python3) and ffprobe as an independent VMS."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import psutil
import pytest

from appliance.cameras.credentials import Credentials, CredentialStore
from appliance.cameras.registry import Camera, CameraRegistry, StreamInfo
from appliance.config.cameras import build_camera_settings
from appliance.restream.login import RestreamLogin
from appliance.restream.plan import restream_url
from appliance.restream.supervisor import RestreamSupervisor
from hw.camsim.clips import ensure_clip
from hw.camsim.server import SimCamera
from tests.integration.conftest import CACHE, ROOT
from tests.waiting import wait_until

CAMERA_USER, CAMERA_PASSWORD = "admin", "CamPassw0rdXyz"


@pytest.fixture
def registry(tmp_path) -> CameraRegistry:
    return CameraRegistry(tmp_path / "config" / "cameras.json",
                          CredentialStore(tmp_path / "secrets" / "cameras"),
                          build_camera_settings({}))


@pytest.fixture
def restream(tmp_path, registry):
    """A supervisor serving the registry on a free loopback port; stopped at the end."""
    sups = []

    def start() -> RestreamSupervisor:
        sup = RestreamSupervisor(registry, RestreamLogin(tmp_path / "secrets" / "restream.json"),
                                 "127.0.0.1", 0, log_path=tmp_path / "restream.log")
        sup.start()
        sups.append(sup)
        return sup

    yield start
    for sup in sups:
        sup.stop()


def add_camera(registry: CameraRegistry, server, name: str, mount: str, codec: str) -> None:
    registry.add(Camera(name, name, "127.0.0.1", StreamInfo(server.url(mount), codec)),
                 Credentials(CAMERA_USER, CAMERA_PASSWORD))


def ffprobe(url: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ffprobe", "-v", "error", "-rtsp_transport", "tcp",
                           "-select_streams", "v:0", "-show_entries",
                           "stream=codec_name,width,height", "-of", "csv=p=0", url],
                          capture_output=True, text=True, timeout=60)


def url(sup: RestreamSupervisor, path: str, user: str | None = None,
        password: str | None = None) -> str:
    return restream_url("127.0.0.1", sup.port, path, user, password)


def upstream_sessions(camsim_log) -> int:
    """Pipelines the (unshared) camera built: one per connection made to it."""
    return camsim_log.read_text().count("media configured mount=/door")


@pytest.mark.timeout(120)
def test_ffprobe_reads_the_restream_with_the_login_and_is_refused_without(
        tmp_path, small_clip, camera_server, registry, restream):
    server = camera_server(SimCamera("/door", small_clip, audio="aac", user=CAMERA_USER,
                                     password=CAMERA_PASSWORD))
    add_camera(registry, server, "door", "/door", "h264")
    sup = restream()
    login = RestreamLogin(tmp_path / "secrets" / "restream.json").require()

    good = ffprobe(url(sup, "/door/main", login.username, login.password))
    assert good.returncode == 0, good.stderr
    assert good.stdout.split() == ["h264,640,360"]
    for anonymous_or_wrong in (url(sup, "/door/main"),
                               url(sup, "/door/main", login.username, "wrong-password")):
        refused = ffprobe(anonymous_or_wrong)
        assert refused.returncode != 0 and "401 Unauthorized" in refused.stderr
    # The camera's password is in no log and on no command line.
    assert CAMERA_PASSWORD not in (tmp_path / "restream.log").read_text()
    assert "upstream open mount=/door/main" in (tmp_path / "restream.log").read_text()
    assert CAMERA_PASSWORD not in " ".join(psutil.Process(sup.relay.pid).cmdline())


@pytest.mark.timeout(180)
def test_an_h265_camera_is_relayed_as_h265(tmp_path, camera_server, registry, restream):
    clip = ensure_clip(CACHE, codec="h265", audio=None, seconds=6, width=640, height=360,
                       fps=25, bitrate_kbps=800, gop=25)
    server = camera_server(SimCamera("/door", clip, codec="h265", user=CAMERA_USER,
                                     password=CAMERA_PASSWORD))
    add_camera(registry, server, "door", "/door", "h265")
    sup = restream()
    login = RestreamLogin(tmp_path / "secrets" / "restream.json").require()
    probe = ffprobe(url(sup, "/door/main", login.username, login.password))
    assert probe.returncode == 0 and probe.stdout.split() == ["hevc,640,360"], probe.stderr


@pytest.mark.timeout(120)
def test_clients_of_one_stream_share_one_connection_to_the_camera(
        tmp_path, small_clip, camera_server, registry, restream):
    # Unshared at the camera: each connection to it builds a pipeline and logs it.
    server = camera_server(SimCamera("/door", small_clip, audio="aac", shared=False,
                                     user=CAMERA_USER, password=CAMERA_PASSWORD))
    camsim_log = tmp_path / "camsim0.log"
    add_camera(registry, server, "door", "/door", "h264")
    sup = restream()
    login = RestreamLogin(tmp_path / "secrets" / "restream.json").require()
    main = url(sup, "/door/main", login.username, login.password)
    watcher = subprocess.Popen(["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", main,
                                "-c", "copy", "-f", "null", "-"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    try:
        wait_until(lambda: upstream_sessions(camsim_log) == 1, 30, "the first upstream session")
        probes = [subprocess.Popen(["ffprobe", "-v", "error", "-rtsp_transport", "tcp",
                                    "-show_entries", "stream=codec_name", "-of", "csv=p=0",
                                    main], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True) for _ in range(2)]
        results = [p.communicate(timeout=60) for p in probes]
        assert [p.returncode for p in probes] == [0, 0], results
        assert all("h264" in out for out, _ in results)
        assert watcher.poll() is None, watcher.stderr.read()
        assert upstream_sessions(camsim_log) == 1
    finally:
        watcher.kill()
        watcher.wait(timeout=10)


PARENT = textwrap.dedent("""
    import signal
    from appliance.restream.supervisor import RelayProcess
    spec = {"user": "restream", "password": "pw", "auth_methods": ["digest"], "mounts": []}
    relay = RelayProcess(spec, "127.0.0.1", 0)
    relay.start()
    print(relay.pid, flush=True)
    signal.pause()  # until the test kills this parent
""")


@pytest.mark.timeout(60)
def test_the_relay_ends_when_its_parent_dies():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True)
    try:
        relay_pid = int(parent.stdout.readline())
        relay = psutil.Process(relay_pid)
        assert "rtsp_relay.py" in " ".join(relay.cmdline())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        wait_until(lambda: not relay.is_running() or relay.status() == psutil.STATUS_ZOMBIE,
                   10, "the relay to exit after its parent")
    finally:
        if parent.poll() is None:
            parent.kill()
