"""The Integrations page's MQTT side against a real broker (Debian's mosquitto on loopback,
passwords required, a TLS listener whose CA the test makes; tests/integration/
test_mqtt_events.py): the connection test tells a good login from a wrong one and says
which step failed for TLS without the CA or TLS against a plain port; and vigil-hwd's
mqtt.set, on a real control socket, switches a running `nvr mqtt run` on and off
without a restart (the daemon follows the files mqtt.set writes)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from appliance.cameras.credentials import Credentials
from appliance.cameras.onvif.policy import AddressPolicy
from appliance.core.control import ControlClient, ControlServer
from appliance.fleet_control import control_handlers
from appliance.mqtt.probe import probe_broker
from appliance.mqtt.settings import MqttSettings
from hw.camsim.server import free_port
from tests.integration.test_mqtt_events import (BOX_PASSWORD, BOX_USER, MOSQUITTO,
                                                MOSQUITTO_PASSWD, NVR, PREFIX, ROOT, Box,
                                                Broker, Subscriber, make_certificates)
from tests.waiting import wait_until

pytestmark = [
    pytest.mark.skipif(not (Path(MOSQUITTO).exists() and MOSQUITTO_PASSWD),
                       reason="Debian's mosquitto is not installed (Makefile DEBS: mosquitto)"),
    pytest.mark.timeout(120),
]
LOOPBACK = AddressPolicy(["127.0.0.0/8"])   # the broker runs on the test machine itself


@pytest.fixture
def plain_broker(tmp_path):
    broker = Broker(tmp_path / "plain", free_port(), None)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def tls_broker(tmp_path):
    certs = make_certificates(tmp_path)
    broker = Broker(tmp_path / "tls", free_port(), certs)
    broker.start()
    yield broker, certs[0]
    broker.stop()


def probe(port: int, password: str | None, tls: bool = False, ca: Path | None = None):
    settings = MqttSettings(host="127.0.0.1", port=port, tls=tls, ca_file=str(ca or ""))
    login = Credentials(BOX_USER, password) if password is not None else None
    return probe_broker(settings, login, LOOPBACK)


def test_the_connection_test_tells_a_good_login_from_a_wrong_one(plain_broker):
    good = probe(plain_broker.port, BOX_PASSWORD)
    assert (good.ok, good.step, good.address) == (True, "done", "127.0.0.1"), good
    wrong = probe(plain_broker.port, "not-the-password")
    assert (wrong.ok, wrong.step) == (False, "mqtt") and "refused" in wrong.message, wrong
    anonymous = probe(plain_broker.port, None)
    assert (anonymous.ok, anonymous.step) == (False, "mqtt"), anonymous
    tls_on_plain = probe(plain_broker.port, BOX_PASSWORD, tls=True)
    assert (tls_on_plain.ok, tls_on_plain.step) == (False, "tls"), tls_on_plain
    assert "does the broker use TLS on this port?" in tls_on_plain.message
    # the broker's log shows the test's clients came and went (nothing published)
    assert "vigil-test-" in (plain_broker.root / "broker.log").read_text()


def test_the_connection_test_checks_the_brokers_certificate(tls_broker):
    broker, ca = tls_broker
    good = probe(broker.port, BOX_PASSWORD, tls=True, ca=ca)
    assert (good.ok, good.step) == (True, "done"), good
    untrusted = probe(broker.port, BOX_PASSWORD, tls=True)       # the system's CAs only
    assert (untrusted.ok, untrusted.step) == (False, "tls"), untrusted
    assert "the broker's certificate is not trusted" in untrusted.message
    plain_on_tls = probe(broker.port, BOX_PASSWORD)
    assert plain_on_tls.ok is False and plain_on_tls.step == "mqtt", plain_on_tls


def start_daemon(box: Box, settings: Path, secrets: Path) -> subprocess.Popen:
    box.log = open(box.root / "mqtt.log", "w")
    box.process = subprocess.Popen(
        [str(NVR), "mqtt", "run", "--settings", str(settings), "--secrets", str(secrets),
         "--data", str(box.data), "--state", str(box.state),
         "--fallback-queue", str(box.root / "run" / "q.sqlite3"), "--allow-boot-media",
         "--board", "sim", "--poll-interval", "0.2"],
        cwd=ROOT, stdout=box.log, stderr=subprocess.STDOUT)
    return box.process


def test_mqtt_set_switches_a_running_daemon_on_and_off(plain_broker, tmp_path):
    """As on the box: the settings beside the appliance's TOML (config/), the login in
    secrets/mqtt; the daemon runs first with MQTT off (no file), the owner saves."""
    box = Box(tmp_path / "box")
    hwd = ControlServer(tmp_path / "hwd.sock", control_handlers(
        box.root / "config", box.root / "secrets")).start()
    ha = Subscriber(plain_broker.port, None)
    try:
        start_daemon(box, box.root / "config" / "mqtt.json", box.root / "secrets" / "mqtt")
        wait_until(lambda: "mqtt off" in box.log_text(), 30, "the daemon running, MQTT off")
        client = ControlClient(tmp_path / "hwd.sock")
        client.call("mqtt.set", changes={"enabled": True, "host": "127.0.0.1",
                                         "port": plain_broker.port, "tls": False,
                                         "topic_prefix": PREFIX},
                    login={"action": "set", "username": BOX_USER, "password": BOX_PASSWORD})
        wait_until(lambda: ha.last(f"{PREFIX}/status") == b"online", 30, "the box online")
        client.call("mqtt.set", changes={"enabled": False})
        wait_until(lambda: ha.last(f"{PREFIX}/status") == b"offline", 30, "the box offline")
        assert box.process.poll() is None, box.log_text()     # never restarted
        assert BOX_PASSWORD not in box.log_text()
    finally:
        ha.close()
        box.stop()
        hwd.close()
