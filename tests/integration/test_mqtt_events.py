"""Events over MQTT to a real broker: Debian's mosquitto on loopback, with passwords
(allow_anonymous false) and a TLS listener whose CA the test makes. The daemon is the
real `nvr mqtt run` process reading a real recording index and a real vigil-hwd alert
log; Home Assistant's side is a paho subscriber with a persistent session.

The outage test stops the broker for 30 s (the issue's figure) while events keep
happening, starts it again on the same port, and checks that every event arrives, in
the order it happened, none lost."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import json
import os
import pwd
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from appliance.recorder.index import GapCause, RecordingIndex
from appliance.storage.alerts import Alert
from appliance.storage.monitor import AlertLog
from hw.camsim.server import free_port
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")
NVR = Path(sys.executable).with_name("nvr")
OUTAGE_S = 30.0
PREFIX = "vigil/testbox"
NODE = "vigil_sim00000001"        # the simulated board's serial
BOX_USER, BOX_PASSWORD = "vigil-box", "box-Passw0rd-1"
HA_USER, HA_PASSWORD = "homeassistant", "ha-Passw0rd-2"
EVENT_KEYS = {"kind", "id", "time", "time_us", "camera", "cause", "detail"}

pytestmark = pytest.mark.skipif(
    not (Path(MOSQUITTO).exists() and MOSQUITTO_PASSWD),
    reason="Debian's mosquitto is not installed (Makefile DEBS: mosquitto, mosquitto-clients)")


# --- a CA and a certificate for 127.0.0.1 -------------------------------------------------
def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key), with the extensions a strict
    verifier (Python 3.13's default context) asks for."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Vigil test broker CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


# --- the broker -----------------------------------------------------------------------------
class Broker:
    """mosquitto on 127.0.0.1:<port>: passwords required, persistence on (so a subscriber's
    session and the retained messages survive its restart, as on a real broker)."""

    def __init__(self, root: Path, port: int, tls: tuple[Path, Path, Path] | None) -> None:
        self.root, self.port = root, port
        root.mkdir(parents=True, exist_ok=True)
        passwords = root / "passwords"
        for n, (user, password) in enumerate([(BOX_USER, BOX_PASSWORD),
                                              (HA_USER, HA_PASSWORD)]):
            subprocess.run([MOSQUITTO_PASSWD, "-b", *(["-c"] if n == 0 else []), str(passwords),
                            user, password], check=True, capture_output=True, timeout=30)
        lines = [f"user {pwd.getpwuid(os.geteuid()).pw_name}",   # no privilege drop
                 "per_listener_settings false", "allow_anonymous false",
                 f"password_file {passwords}", "persistence true",
                 f"persistence_location {root}/", f"log_dest file {root}/broker.log",
                 f"listener {port} 127.0.0.1"]
        if tls:
            ca, cert, key = tls
            lines += [f"cafile {ca}", f"certfile {cert}", f"keyfile {key}"]
        self.config = root / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.config)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._accepts, 10, f"mosquitto listening on {self.port}", step=0.05)

    def _accepts(self) -> bool:
        assert self.process.poll() is None, (self.root / "broker.log").read_text()
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()   # mosquitto saves its persistence file on SIGTERM
            self.process.wait(10)


@pytest.fixture
def broker_factory(tmp_path):
    brokers = []

    def make(tls: bool) -> Broker:
        certs = make_certificates(tmp_path) if tls else None
        broker = Broker(tmp_path / "broker", free_port(), certs)
        broker.start()
        brokers.append(broker)
        return broker

    yield make
    for broker in brokers:
        broker.stop()


# --- Home Assistant's side --------------------------------------------------------------------
class Subscriber:
    def __init__(self, port: int, ca: Path | None) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.subscribed = threading.Event()
        client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                             client_id="ha-test", clean_session=False)
        client.username_pw_set(HA_USER, HA_PASSWORD)
        if ca:
            client.tls_set_context(ssl.create_default_context(cafile=str(ca)))
        client.reconnect_delay_set(1, 2)
        client.on_connect = self._on_connect
        client.on_subscribe = lambda *args: self.subscribed.set()
        client.on_message = lambda c, u, msg: self.messages.append(
            (msg.topic, msg.payload, msg.retain))
        client.connect("127.0.0.1", port)
        client.loop_start()
        self.client = client
        wait_until(self.subscribed.is_set, 10, "the subscription")

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ARG002
        client.subscribe([(f"{PREFIX}/#", 1), ("homeassistant/#", 1)])

    def events(self) -> list[dict]:
        return [json.loads(payload) for topic, payload, _ in list(self.messages)
                if "/event/" in topic]

    def event_ids(self) -> list[str]:
        """Ids in arrival order, a redelivered duplicate counted once (at-least-once)."""
        seen: dict[str, None] = {}
        for event in self.events():
            seen.setdefault(event["id"], None)
        return list(seen)

    def last(self, topic: str) -> bytes | None:
        found = [payload for t, payload, _ in list(self.messages) if t == topic]
        return found[-1] if found else None

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


# --- the box ----------------------------------------------------------------------------------
class SteppedClock:
    """The alert log's clock: each alert a millisecond after the previous event."""

    def __init__(self, box: "Box") -> None:
        self.box = box

    def wall(self) -> float:
        return self.box.next_time() / 1e6


class Box:
    """The recorder's index and vigil-hwd's alert log, written the way those daemons
    write them, and the `nvr mqtt run` process reading them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data, self.state = root / "data", root / "state"
        self.index = RecordingIndex(self.data)
        self.alerts = AlertLog(self.state / "alerts.jsonl", SteppedClock(self))
        self._time = int(time.time() * 1e6)
        self.expected: list[str] = []      # event ids, in the order they happened
        self.process: subprocess.Popen | None = None
        self.log = None
        # a recording camera whose heartbeat stays fresh through the outage
        self.index.write_status("cam1", "recording", "h264 640x360",
                                self._time + 3600 * 10**6, {})

    def next_time(self) -> int:
        self._time += 1000
        return self._time

    def configure(self, port: int, ca: Path | None, password: str) -> None:
        settings = {"format": 1, "enabled": True, "host": "127.0.0.1", "port": port,
                    "tls": ca is not None, "topic_prefix": PREFIX, "retry_max_s": 2}
        if ca:
            settings["ca_file"] = str(ca)
        (self.root / "config").mkdir(exist_ok=True)
        (self.root / "config" / "mqtt.json").write_text(json.dumps(settings))
        self.set_password(password)

    def set_password(self, password: str) -> None:
        """Through the command the owner uses (the password on stdin)."""
        out = subprocess.run([str(NVR), "mqtt", "credentials", "--secrets",
                              str(self.root / "secrets"), "--username", BOX_USER],
                             input=password + "\n", capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr

    def start(self) -> None:
        self.log = open(self.root / "mqtt.log", "w")
        self.process = subprocess.Popen(
            [str(NVR), "mqtt", "run", "--settings", str(self.root / "config" / "mqtt.json"),
             "--secrets", str(self.root / "secrets"), "--data", str(self.data),
             "--state", str(self.state), "--fallback-queue", str(self.root / "run" / "q.sqlite3"),
             "--allow-boot-media", "--board", "sim", "--poll-interval", "0.2"],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)

    def log_text(self) -> str:
        return (self.root / "mqtt.log").read_text()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(20)
        self.index.close()
        if self.log is not None:
            self.log.close()

    def queued(self) -> int:
        db = sqlite3.connect(f"file:{self.data / 'mqtt-queue.sqlite3'}?mode=ro", uri=True)
        try:
            return db.execute("SELECT COUNT(*) FROM queue").fetchone()[0]
        except sqlite3.Error:
            return 0
        finally:
            db.close()

    # what happens on the box: each call one or two events, in time order
    def camera_fails(self, cause: str = GapCause.UNREACHABLE) -> int:
        gap = self.index.open_gap("cam1", self.next_time(), cause, "connection refused")
        self.expected.append(f"gap:{gap}:opened")
        return gap

    def camera_returns(self, gap: int) -> None:
        self.index.close_gap(gap, self.next_time())
        self.expected.append(f"gap:{gap}:closed")

    def hwd_alert(self, severity: str, source: str, message: str) -> None:
        self.alerts.add([Alert(severity, source, message)])
        line = (self.state / "alerts.jsonl").read_text().splitlines()[-1]
        entry = json.dumps(json.loads(line), sort_keys=True).encode()
        self.expected.append("alert:h" + hashlib.sha256(entry).hexdigest()[:16])

    def recorder_alert(self, message: str) -> None:
        self.index.add_alert(self.next_time(), "warning", "camera:cam1", message)
        row = self.index.alerts()[-1]
        self.expected.append(f"alert:r{row['id']}")


@pytest.fixture
def box(tmp_path):
    b = Box(tmp_path / "box")
    yield b
    b.stop()


def test_events_arrive_with_their_topics_and_survive_a_30_s_broker_outage_in_order(
        broker_factory, box, tmp_path):
    broker = broker_factory(tls=True)
    ca = tmp_path / "ca.pem"
    ha = Subscriber(broker.port, ca)
    box.configure(broker.port, ca, BOX_PASSWORD)
    box.start()

    # connected: online, and Home Assistant discovery for the box and the camera
    wait_until(lambda: ha.last(f"{PREFIX}/status") == b"online", 30, "the box online")
    recording = f"homeassistant/binary_sensor/{NODE}/cam1_recording/config"
    config = json.loads(wait_until(lambda: ha.last(recording), 30, "camera discovery"))
    assert config["state_topic"] == f"{PREFIX}/camera/cam1/state"
    assert config["availability_topic"] == f"{PREFIX}/status"
    assert config["device"]["via_device"] == NODE
    disk = json.loads(wait_until(lambda: ha.last(f"homeassistant/sensor/{NODE}/disk_free/config"),
                                 30, "box discovery"))
    assert disk["device"]["identifiers"] == [NODE] and disk["device"]["serial_number"]
    state = json.loads(wait_until(lambda: ha.last(f"{PREFIX}/camera/cam1/state"), 30, "state"))
    assert state["state"] == "recording" and state["recording"] is True

    # events with the documented topics and payloads
    gap = box.camera_fails()
    box.hwd_alert("critical", "raid:md0", "md0: degraded, one of two disks missing")
    box.camera_returns(gap)
    wait_until(lambda: ha.event_ids() == box.expected, 30, "the first three events")
    by_topic = {topic: json.loads(p) for topic, p, _ in ha.messages if "/event/" in topic}
    opened = by_topic[f"{PREFIX}/event/gap_opened"]
    assert EVENT_KEYS <= set(opened) and opened["camera"] == "cam1"
    assert opened["cause"] == "camera_unreachable" and opened["detail"] == "connection refused"
    assert opened["time"].endswith("+00:00") and opened["gap_id"] == gap
    raid = by_topic[f"{PREFIX}/event/raid_alert"]
    assert (raid["severity"], raid["source"], raid["active"]) == ("critical", "raid:md0", True)
    closed = by_topic[f"{PREFIX}/event/gap_closed"]
    assert closed["duration_s"] == pytest.approx(0.002, abs=0.0011)

    # the broker goes away for 30 s; the box keeps having events
    before = len(box.expected)
    broker.stop()
    down_at = time.monotonic()
    for n in range(4):
        gap = box.camera_fails(GapCause.STREAM_STALLED)
        box.hwd_alert("warning", ("disk:WD-1", "poe:Port 2", "smart:WD-1", "raid:md0")[n],
                      f"outage event {n}")
        box.recorder_alert(f"camera cam1 has not recorded for 60 s ({n})")
        box.camera_returns(gap)
    during = box.expected[before:]
    wait_until(lambda: box.queued() >= len(during), 20, "the events queued on disk")
    assert not any(event_id in ha.event_ids() for event_id in during)
    threading.Event().wait(OUTAGE_S - (time.monotonic() - down_at))   # the outage itself
    broker.start()

    wait_until(lambda: len(ha.event_ids()) >= len(box.expected), 60,
               "every event after the broker returned")
    assert ha.event_ids() == box.expected        # none lost, none extra, in order
    wait_until(lambda: box.queued() == 0, 10, "every acknowledged event out of the queue")
    wait_until(lambda: ha.last(f"{PREFIX}/status") == b"online", 30, "online again")

    # the box vanishes without a goodbye: the broker publishes its Last Will
    box.process.send_signal(signal.SIGKILL)
    box.process.wait(10)
    wait_until(lambda: ha.last(f"{PREFIX}/status") == b"offline", 10, "the Last Will")
    ha.close()


def test_a_refused_login_is_said_and_a_corrected_one_applies_without_a_restart(
        broker_factory, box):
    broker = broker_factory(tls=False)
    ha = Subscriber(broker.port, None)
    box.configure(broker.port, None, "not-the-password")
    box.start()
    gap = box.camera_fails()
    wait_until(lambda: "refused the connection" in box.log_text(), 30, "the refusal logged")
    assert "not-the-password" not in box.log_text()
    assert ha.events() == []
    box.set_password(BOX_PASSWORD)
    box.camera_returns(gap)
    wait_until(lambda: ha.event_ids() == box.expected, 30, "the events after the fix")
    assert box.process.poll() is None
    ha.close()
