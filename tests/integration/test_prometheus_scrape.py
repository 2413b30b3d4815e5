"""A real Prometheus (Debian's `prometheus` package) scrapes the appliance that `make run`
starts (`nvr run`: simulated cameras, recorder, PoE board, web) on loopback with the
box's scrape token, and PromQL over its HTTP API returns the simulated cameras' series.
A second job with a wrong token is refused: Prometheus reports that target down."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from hw.camsim.server import free_port
from tests.e2e.devmode_process import DevMode
from tests.integration.web_session import ApiClient
from tests.waiting import wait_until

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="no prometheus binary (Debian "
                                "package `prometheus`: apt-get install prometheus)")
CAMERAS = {"cam1", "cam2"}


class Prometheus:
    """prometheus on a free loopback port, its config and TSDB under `root`."""

    def __init__(self, root: Path, target: str, token: str) -> None:
        root.mkdir()
        jobs = [("vigil", token), ("vigil-wrong-token", "not-the-token")]
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                       "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": name, "metrics_path": "/metrics",
                                "authorization": {"type": "Bearer", "credentials": credentials},
                                "static_configs": [{"targets": [target]}]}
                               for name, credentials in jobs]}
        (root / "prometheus.yml").write_text(json.dumps(config, indent=1))  # JSON is YAML
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = root / "prometheus.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [PROMETHEUS, f"--config.file={root / 'prometheus.yml'}",
                 f"--web.listen-address={self.url.removeprefix('http://')}",
                 f"--storage.tsdb.path={root / 'tsdb'}"],
                stdout=log, stderr=subprocess.STDOUT)

    def query(self, promql: str) -> list[dict]:
        """The instant vector of `promql` (empty while Prometheus is still starting)."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                answer = json.load(resp)
        except OSError:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            return []
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def labels(self, promql: str, label: str) -> set[str]:
        return {series["metric"][label] for series in self.query(promql)}

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def box(tmp_path):
    dev = DevMode(tmp_path / "var")
    yield dev
    assert dev.stop() == 0, dev.output()[-3000:]


@pytest.fixture
def prometheus(tmp_path):
    started = []

    def start(target: str, token: str) -> Prometheus:
        started.append(Prometheus(tmp_path / "prometheus", target, token))
        return started[0]
    yield start
    for server in started:
        server.stop()


@pytest.mark.timeout(420)
def test_prometheus_scrapes_the_dev_appliance_and_queries_its_cameras(box, prometheus):
    printed = wait_until(lambda: re.search(r"Prometheus metrics: (\S+)/metrics .* the token is "
                                           r"in (\S+) ", box.output()), 30, "the metrics line")
    assert printed.group(1) == box.base
    token_file = Path(printed.group(2))
    assert token_file.stat().st_mode & 0o777 == 0o600
    admin = ApiClient(box.base).login()
    status, answer = admin.json("GET", "/api/v1/metrics/token")
    assert status == 200 and answer["token"] == json.loads(token_file.read_text())["token"]

    server = prometheus(box.base.removeprefix("http://"), answer["token"])
    wait_until(lambda: server.query('up{job="vigil"} == 1'), 60, "Prometheus scraping the box")
    recording = wait_until(lambda: CAMERAS <= server.labels(
        'vigil_camera_recording{job="vigil"} == 1', "camera"), 180,
        "both simulated cameras recording in Prometheus")
    assert recording
    assert CAMERAS <= server.labels('vigil_camera_state{state="recording"} == 1', "camera")
    assert CAMERAS <= server.labels("vigil_camera_bitrate_bits_per_second > 0", "camera")
    assert "Port 1" in server.labels('vigil_poe_port_state{state="powered"} == 1', "label")
    sources = {s["metric"]["source"]: s["value"][1]
               for s in server.query('vigil_metrics_source_up{job="vigil"}')}
    assert sources["cameras"] == sources["storage"] == sources["poe"] == "1", sources
    assert sources["licence"] == sources["update"] == "1", sources
    # the second job's first scrape may come a moment after the first job's
    [wrong] = wait_until(lambda: server.query('up{job="vigil-wrong-token"}'), 30,
                         "a scrape with the wrong token")
    assert wrong["value"][1] == "0"                      # 401: Prometheus marks it down
    assert not server.query('{job="vigil-wrong-token", __name__=~"vigil_.*"}')
