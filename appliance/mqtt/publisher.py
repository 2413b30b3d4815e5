"""The connection to the broker (paho-mqtt): one thread that connects, publishes and
reconnects.

* TLS with the system's CAs or the owner's CA file, the broker's name verified; user
  name and password when given. MQTT 3.1.1 (every broker speaks it).
* Last Will: `<prefix>/status` = "offline", retained, so Home Assistant marks every
  entity unavailable when the box vanishes; "online" (retained) once connected, and
  "offline" again on a clean stop.
* Events go out with QoS 1 from the queue's head, at most WINDOW unacknowledged; each is
  deleted from the queue when its PUBACK arrives. A new paho client per connection (a
  clean session), so nothing of a lost connection is resent behind our back: the queue
  is the only source of what is sent.
* Retained states (cameras, health, discovery) are published on every connection and
  then only when they change.
* Reconnects: jittered exponential backoff from 1 s to `retry_max_s` (many boxes that
  lost one central broker do not all knock at the same instant), reset by a connection
  the broker accepted. Waits are cut into steps so the watchdog sees progress.
"""

from __future__ import annotations

import logging
import ssl
import threading
from typing import Any

import paho.mqtt.client as mqtt

from appliance.cameras.credentials import Credentials
from appliance.core.clock import Clock, RealClock
from appliance.mqtt.events import event_topic
from appliance.mqtt.queue import EventQueue
from appliance.mqtt.settings import MqttSettings
from appliance.mqtt.state import status_topic
from appliance.recorder.backoff import Backoff

log = logging.getLogger(__name__)

WINDOW = 20              # events published and not yet acknowledged (paho's default in flight)
CONNECT_TIMEOUT = 10.0   # TCP + TLS, and again for the broker's CONNACK
LOOP_STEP = 0.2          # the network loop's wait: also how soon a new event goes out
GOODBYE_TIMEOUT = 2.0


class Publisher:
    def __init__(self, settings: MqttSettings, credentials: Credentials | None, prefix: str,
                 client_id: str, queue: EventQueue, clock: Clock | None = None) -> None:
        self.settings = settings
        self.credentials = credentials
        self.prefix = prefix
        self.client_id = client_id
        self.queue = queue
        self.clock = clock or RealClock()
        self.connected = False
        self.problem = ""                  # why we are not connected (for status and logs)
        self.heartbeat = self.clock.monotonic()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._desired: dict[str, str] = {}  # retained topic -> payload (set by the service)
        self._sent: dict[str, str] = {}     # what this connection has published
        self._mids: dict[int, int] = {}     # paho message id -> queue seq
        self._connack: Any = None
        self._seen_version = -1
        self._thread = threading.Thread(target=self._run, name="mqtt", daemon=True)

    @property
    def address(self) -> str:
        return f"{self.settings.host}:{self.settings.effective_port}"

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def set_retained(self, messages: dict[str, str]) -> None:
        """The retained topics as they should be now (topics left out are cleared)."""
        with self._lock:
            self._desired = dict(messages)

    # --- the thread ---------------------------------------------------------------------
    def _run(self) -> None:
        backoff = Backoff(1.0, self.settings.retry_max_s)
        while not self._stop.is_set():
            try:
                accepted = self._session()
            except Exception as exc:  # a bug must not end publishing for good
                log.exception("mqtt session failed")
                self._note(f"internal error: {exc}")
                accepted = False
            if accepted:
                backoff.reset()
            if not self._stop.is_set():
                self._wait(backoff.next_delay())

    def _wait(self, seconds: float) -> None:
        end = self.clock.monotonic() + seconds
        while not self._stop.is_set():
            left = end - self.clock.monotonic()
            if left <= 0:
                return
            self.heartbeat = self.clock.monotonic()
            self.clock.sleep(min(left, 1.0), self._stop)

    def _session(self) -> bool:
        """One connection from connect to loss; True if the broker accepted us."""
        try:
            client = self._new_client()
            client.connect(self.settings.host, self.settings.effective_port,
                           self.settings.keepalive_s)
        except (OSError, ssl.SSLError, ValueError) as exc:
            self._note(f"cannot connect to {self.address}: {exc}")
            return False
        try:
            if not self._await_connack(client):
                return False
            self._on_accepted(client)
            while not self._stop.is_set():
                self._publish_retained(client)
                self._publish_events(client)
                rc = client.loop(LOOP_STEP)
                self.heartbeat = self.clock.monotonic()
                if rc != mqtt.MQTT_ERR_SUCCESS:
                    self._note(f"connection to {self.address} lost ({mqtt.error_string(rc)})")
                    return True
            self._goodbye(client)
            return True
        finally:
            self.connected = False
            self.queue.release()
            self._mids.clear()
            close_socket(client)

    def _new_client(self) -> mqtt.Client:
        client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                             client_id=self.client_id, clean_session=True,
                             protocol=mqtt.MQTTv311, reconnect_on_failure=False)
        client.connect_timeout = CONNECT_TIMEOUT
        client.max_inflight_messages_set(WINDOW)
        if self.settings.tls:
            client.tls_set_context(self._tls_context())
        if self.credentials is not None:
            client.username_pw_set(self.credentials.username, self.credentials.password)
        client.will_set(status_topic(self.prefix), "offline", qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        return client

    def _tls_context(self) -> ssl.SSLContext:
        """The broker's certificate and name are checked (never switched off)."""
        try:
            return ssl.create_default_context(cafile=self.settings.ca_file or None)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"mqtt.ca_file {self.settings.ca_file}: not a readable PEM file "
                             f"of CA certificates ({exc})") from None

    def _await_connack(self, client: mqtt.Client) -> bool:
        self._connack = None
        deadline = self.clock.monotonic() + CONNECT_TIMEOUT
        while self._connack is None and not self._stop.is_set():
            rc = client.loop(LOOP_STEP)
            self.heartbeat = self.clock.monotonic()
            if rc != mqtt.MQTT_ERR_SUCCESS and self._connack is None:
                self._note(f"{self.address} closed the connection ({mqtt.error_string(rc)})")
                return False
            if self.clock.monotonic() > deadline:
                self._note(f"{self.address} did not answer the MQTT connect")
                return False
        if self._connack is None:
            return False
        if self._connack.is_failure:
            self._note(f"{self.address} refused the connection: {self._connack}")
            return False
        return True

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ARG002
        self._connack = reason_code

    def _on_accepted(self, client: mqtt.Client) -> None:
        self.connected = True
        log.info("mqtt connected to %s", self.address)
        self.problem = ""
        self._sent = {}
        self._seen_version = -1
        client.publish(status_topic(self.prefix), "online", qos=1, retain=True)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:  # noqa: ARG002
        seq = self._mids.pop(mid, None)
        if seq is not None:
            self.queue.ack(seq)

    def _publish_retained(self, client: mqtt.Client) -> None:
        with self._lock:
            desired = self._desired
        for topic, payload in desired.items():
            if self._sent.get(topic) != payload:
                client.publish(topic, payload, qos=1, retain=True)
                self._sent[topic] = payload
        for topic in [t for t in self._sent if t not in desired]:
            client.publish(topic, b"", qos=1, retain=True)   # empty retained: removed
            del self._sent[topic]

    def _publish_events(self, client: mqtt.Client) -> None:
        room = WINDOW - self.queue.in_flight
        version = self.queue.version
        if room <= 0 or version == self._seen_version:
            return
        taken = self.queue.take(room)
        if len(taken) < room:   # drained: nothing to take until the collector puts more
            self._seen_version = version
        for item in taken:
            info = client.publish(event_topic(self.prefix, item.kind), item.payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                return   # the connection is going; the loop notices, the queue keeps it
            self._mids[info.mid] = item.seq

    def _goodbye(self, client: mqtt.Client) -> None:
        """A clean stop: "offline" (the Will is not sent for a clean disconnect)."""
        info = client.publish(status_topic(self.prefix), "offline", qos=1, retain=True)
        deadline = self.clock.monotonic() + GOODBYE_TIMEOUT
        while not info.is_published() and self.clock.monotonic() < deadline:
            if client.loop(LOOP_STEP) != mqtt.MQTT_ERR_SUCCESS:
                return
        client.disconnect()
        client.loop(LOOP_STEP)

    def _note(self, problem: str) -> None:
        """Log a problem when it changes, not at every retry."""
        if problem != self.problem:
            log.warning("mqtt: %s", problem)
        self.problem = problem


def close_socket(client: mqtt.Client) -> None:
    """Whatever is left of a connection (a refused or unanswered connect) is closed."""
    sock = client.socket()
    if sock is not None:
        sock.close()
