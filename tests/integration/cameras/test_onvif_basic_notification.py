"""Basic notification (WS-BaseNotification) for cameras without PullPoint, against the
fake event service (fakeevents.py, `pullpoint=False`) on loopback: the subscriber falls
back to Subscribe with a consumer URL of the box's NotifyReceiver, the camera POSTs
Notify messages to it, and they reach the real index through the same state machine as
pulled ones. Renew before expiry, Unsubscribe on stop, a camera that forgets the
subscription, and the receiver under hostile requests (XML bomb, oversized and endless
bodies, wrong token, wrong method, wrong sender, floods): a clear status, bounded memory,
and it keeps serving.
"""

from __future__ import annotations

import ipaddress
import random
import socket
import threading
import tracemalloc
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from appliance.cameras.credentials import Credentials
from appliance.cameras.onvif.policy import AddressPolicy
from appliance.cameras.onvif.transport import Timeouts
from appliance.events.receiver import NOTIFY_PATH, NotifyReceiver, ReceiverSettings
from appliance.events.subscriber import EventSubscriber, SubscriberSettings
from tests.integration.cameras.fakeevents import (MOTION, EventCamera, notification,
                                                  notify_envelope)
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(60)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "cameras" / "onvif"
POLICY = AddressPolicy(["127.0.0.1/32"])
CREDS = Credentials("admin", "pa55 word")
FAST = SubscriberSettings(termination_s=30, pull_timeout_s=1, request_s=5,
                          backoff_initial_s=0.05, backoff_cap_s=0.3,
                          timeouts=Timeouts(connect=1, read=3, total=5))
LOOPBACK = ReceiverSettings(host="127.0.0.1", port=0, read_timeout_s=1, request_s=3)
LIMIT = LOOPBACK.max_body
KIB = 1024


@pytest.fixture
def receiver():
    rec = NotifyReceiver(LOOPBACK)
    yield rec
    rec.close()


@pytest.fixture
def running(receiver):
    started: list[EventSubscriber] = []

    def start(cam, index, settings=FAST) -> EventSubscriber:
        sub = EventSubscriber("cam1", cam.xaddr, CREDS, POLICY, index, settings=settings,
                              rng=random.Random(7), receiver=receiver)
        started.append(sub.start())
        return sub

    yield start
    for sub in started:
        assert sub.stop(15), "the subscriber did not stop"


def subscribed(sub, count=1, mode="basic notification"):
    return lambda: sub.status()["subscriptions"] >= count and \
        sub.status()["state"] == "subscribed" and sub.status()["mode"] == mode


def consumer_of(cam) -> str:
    (url,) = cam.consumers.values()
    return url


# --- the subscription --------------------------------------------------------------------

def test_pushed_motion_start_stop_pair_is_one_event(index, running, receiver):
    with EventCamera(pullpoint=False) as cam:
        sub = running(cam, index)
        wait_until(subscribed(sub), 10, "the basic subscription")
        wait_until(lambda: sub.status()["notifications"] >= 1, 5, "the Initialized message")
        assert cam.notify_statuses == [200] and index.events("cam1") == []
        consumer = urlsplit(consumer_of(cam))
        assert (consumer.hostname, consumer.port) == receiver.listening()[0]
        assert consumer.path.startswith(NOTIFY_PATH) and \
            len(consumer.path) - len(NOTIFY_PATH) >= 43          # 256-bit token
        assert cam.deliver(notification(MOTION, "true")) == [200]
        opened = wait_until(lambda: index.open_events("cam1"), 5, "the motion start")
        assert cam.deliver(notification(MOTION, "false")) == [200]
        wait_until(lambda: not index.open_events("cam1"), 5, "the motion end")
        assert cam.actions().count("CreatePullPointSubscriptionRequest") == 1   # refused
        assert all(seen.authenticated for seen in cam.requests
                   if "Events" in seen.path or "Subscription" in seen.path)
    (event,) = index.events("cam1")
    assert event.id == opened[0].id
    assert (event.kind, event.topic) == ("motion", MOTION)
    assert event.start_us < event.end_us
    assert "VideoSourceToken=vs1" in event.detail


def test_renews_before_the_termination_time(index, running):
    settings = SubscriberSettings(**{**FAST.__dict__, "termination_s": 3})
    with EventCamera(pullpoint=False) as cam:
        sub = running(cam, index, settings)
        # The camera logs a Renew when it arrives; the subscriber counts it once the
        # answer is read, so wait for both.
        wait_until(lambda: cam.count("Renew") >= 3 and sub.status()["renewals"] >= 3, 15,
                   "three renewals")
        renewals = [e for e in cam.events if e.operation == "Renew"]
        assert all(e.ends is not None and e.at < e.ends for e in renewals)
        assert cam.count("Subscribe") == 1 and cam.faults_served == 0   # never lost it
        assert cam.deliver(notification(MOTION, "true")) == [200]      # still delivered
        wait_until(lambda: index.open_events("cam1"), 5, "the motion start")


def test_unsubscribes_on_stop_and_stops_listening(index, running, receiver):
    with EventCamera(pullpoint=False) as cam:
        sub = running(cam, index)
        wait_until(subscribed(sub), 10, "the basic subscription")
        consumer = consumer_of(cam)
        cam.deliver(notification(MOTION, "true"))
        wait_until(lambda: index.open_events("cam1"), 5, "the motion start")
        assert sub.stop(10)
        assert cam.count("Unsubscribe") == 1 and cam.subscriptions == {}
        assert sub.status()["state"] == "stopped"
    assert receiver.listening() == []
    with pytest.raises(ConnectionRefusedError):
        exchange(consumer, "POST", body=notify_envelope(notification(MOTION, "false")))
    assert index.open_events("cam1") == [] and index.events("cam1")[0].end_us is not None


def test_a_subscription_the_camera_forgot_is_replaced(index, running):
    """Nothing is pulled, so the renewal is what notices (a 4 s life: renewed at 2 s)."""
    settings = SubscriberSettings(**{**FAST.__dict__, "termination_s": 4})
    with EventCamera(pullpoint=False) as cam:
        sub = running(cam, index, settings)
        wait_until(subscribed(sub), 10, "the basic subscription")
        first = consumer_of(cam)
        cam.reboot()                   # forgets it: the next Renew gets a fault
        wait_until(subscribed(sub, 2), 15, "a new subscription")
        assert cam.count("Subscribe") == 2 and cam.faults_served >= 1
        assert "ResourceUnknownFault" in sub.status()["last_error"]
        assert consumer_of(cam) != first                     # a fresh token
        assert cam.deliver(notification(MOTION, "true")) == [200]
        wait_until(lambda: index.open_events("cam1"), 5, "motion on the new subscription")


def test_pullpoint_cameras_need_no_listener(index, running, receiver):
    with EventCamera() as cam:
        sub = running(cam, index)
        wait_until(subscribed(sub, mode="pullpoint"), 10, "the PullPoint subscription")
        assert receiver.listening() == [] and cam.count("Subscribe") == 0


def test_a_camera_refusing_both_is_retried_and_leaves_no_listener(index, running, receiver):
    with EventCamera(pullpoint=False) as cam:
        del cam.answers["http://docs.oasis-open.org/wsn/bw-2/NotificationProducer/"
                        "SubscribeRequest"]
        sub = running(cam, index)
        wait_until(lambda: sub.status()["failures"] >= 3, 10, "refusals and retries")
        assert "refused a basic-notification subscription" in sub.status()["last_error"]
        assert sub.stop(10)
    assert receiver.listening() == []


def test_notify_from_another_address_is_refused(index, running):
    with EventCamera(pullpoint=False) as cam:
        sub = running(cam, index)
        wait_until(subscribed(sub), 10, "the basic subscription")
        status, _, text = exchange(consumer_of(cam), "POST", source="127.0.0.2",
                                   body=notify_envelope(notification(MOTION, "true")))
        assert status == 403 and "camera's address only" in text
        assert index.events("cam1") == []
        assert cam.deliver(notification(MOTION, "true")) == [200]     # the camera: fine
        wait_until(lambda: index.open_events("cam1"), 5, "the motion start")


def test_the_service_shares_one_receiver_and_closes_it(tmp_path, index, receiver):
    from appliance.cameras.credentials import CredentialStore
    from appliance.cameras.registry import Camera, CameraRegistry, StreamInfo
    from appliance.config.cameras import build_camera_settings
    from appliance.events.service import EventService

    reg = CameraRegistry(tmp_path / "config" / "cameras.json",
                         CredentialStore(tmp_path / "secrets" / "cameras"),
                         build_camera_settings({}))
    service = EventService(index, lambda: reg, POLICY, settings=FAST, rng=random.Random(1),
                           receiver=receiver)
    try:
        with EventCamera(pullpoint=False) as door, EventCamera(pullpoint=False) as yard:
            for name, cam in (("door", door), ("yard", yard)):
                reg.add(Camera(name, name, cam.host, StreamInfo(f"rtsp://{cam.host}:554/m"),
                               xaddr=cam.xaddr), CREDS)
            service.refresh()
            for name in ("door", "yard"):
                wait_until(subscribed(service.subscribers[name]), 10, f"{name} subscribed")
            assert len(receiver.listening()) == 1                 # one listener for both
            assert consumer_of(door) != consumer_of(yard)
            assert yard.deliver(notification(MOTION, "true")) == [200]
            wait_until(lambda: index.open_events("yard"), 5, "yard motion")
            assert index.open_events("door") == []               # by token, not by sender
            service.close()
            assert door.count("Unsubscribe") == 1 and yard.count("Unsubscribe") == 1
            assert receiver.listening() == []
    finally:
        service.close()


# --- hostile requests to a live subscription's receiver -----------------------------------

def chunked(*parts: bytes) -> list[bytes]:
    return [b"%x\r\n%s\r\n" % (len(part), part) for part in parts] + [b"0\r\n\r\n"]


HOSTILE = [
    ("billion-laughs", "POST", None, (FIXTURES / "billion_laughs.xml").read_bytes(), None,
     400, "carries a DTD or entity declarations"),
    ("external-entity", "POST", None, (FIXTURES / "external_entity.xml").read_bytes(), None,
     400, "carries a DTD or entity declarations"),
    ("garbage", "POST", None, b"\x00\xff garbage <<<", None, 400, "not well-formed XML"),
    ("not-a-notify", "POST", None,
     b"<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope'><s:Body><x/></s:Body>"
     b"</s:Envelope>", None, 400, "expected Notify"),
    ("wrong-token", "POST", "/onvif-events/" + "A" * 43, notify_envelope(), None, 404,
     "no such subscription"),
    ("other-path", "POST", "/", notify_envelope(), None, 404, "no such subscription"),
    ("get", "GET", None, b"", None, 405, "only POST"),
    ("put", "PUT", None, notify_envelope(), None, 405, "only POST"),
    ("declared-100-mb", "POST", None, b"x" * 1024, {"Content-Length": str(100 << 20)},
     413, "nothing was read"),
    ("no-length", "POST", None, b"", {"Content-Length": None}, 411, "Content-Length"),
    ("bad-chunk", "POST", None, b"zz\r\nabc\r\n",
     {"Transfer-Encoding": "chunked", "Content-Length": None}, 400, "not hexadecimal"),
    ("stalled-body", "POST", None, b"<s:Envelope", {"Content-Length": "4096"}, 408,
     "the body stopped"),
]


@pytest.mark.parametrize("method, path, body, headers, status, words",
                         [case[1:] for case in HOSTILE], ids=[case[0] for case in HOSTILE])
def test_hostile_requests_get_a_clear_answer_and_the_receiver_keeps_serving(
        index, running, method, path, body, headers, status, words):
    with EventCamera(pullpoint=False) as cam:
        sub = running(cam, index)
        wait_until(subscribed(sub), 10, "the basic subscription")
        url = consumer_of(cam)
        if path is not None:
            url = url[:url.index(NOTIFY_PATH)] + path
        tracemalloc.start()
        try:
            got, answer_headers, text = exchange(url, method, body=body, headers=headers)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert got == status and words in text, text
        assert peak < 2 * LIMIT
        if status == 405:
            assert answer_headers["allow"] == "POST"
        assert index.events("cam1") == []
        assert cam.deliver(notification(MOTION, "true")) == [200]
        wait_until(lambda: index.open_events("cam1"), 5, "motion after the hostile request")


def test_a_body_streamed_past_the_limit_is_cut_with_bounded_memory(index, running):
    block = b"<a>" + b"x" * (64 * KIB - 7) + b"</a>"
    frames = chunked(*[block] * (LIMIT // len(block) + 1))     # just past the limit
    assert sum(map(len, frames)) > LIMIT
    with EventCamera(pullpoint=False) as cam:
        sub = running(cam, index)
        wait_until(subscribed(sub), 10, "the basic subscription")
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            status, _, text = exchange(consumer_of(cam), "POST", parts=frames,
                                       headers={"Transfer-Encoding": "chunked",
                                                "Content-Length": None})
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert status == 413 and f"longer than the limit of {LIMIT} bytes" in text
        assert peak < 2 * LIMIT + 128 * KIB        # the limit, one block in flight, and ours
        assert cam.deliver(notification(MOTION, "true")) == [200]
        wait_until(lambda: index.open_events("cam1"), 5, "motion after the long body")


def test_a_chunked_notify_within_the_limit_is_accepted(index, running):
    body = notify_envelope(notification(MOTION, "true"))
    with EventCamera(pullpoint=False) as cam:
        sub = running(cam, index)
        wait_until(subscribed(sub), 10, "the basic subscription")
        status, _, _ = exchange(consumer_of(cam), "POST", parts=chunked(body[:100], body[100:]),
                                headers={"Transfer-Encoding": "chunked", "Content-Length": None})
        assert status == 200
        wait_until(lambda: index.open_events("cam1"), 5, "the motion start")


def test_a_silent_sender_is_answered_at_the_read_timeout(index, running):
    with EventCamera(pullpoint=False) as cam:
        sub = running(cam, index)
        wait_until(subscribed(sub), 10, "the basic subscription")
        target = urlsplit(consumer_of(cam))
        with socket.create_connection((target.hostname, target.port), timeout=10) as sock:
            sock.sendall(f"POST {target.path} HTTP/1.1\r\nHost: {target.netloc}\r\n"
                         "Content-Length: 4096\r\n\r\n<s:Envelope".encode())
            answer = read_to_end(sock)       # not closing: the receiver's timeout answers
        assert answer.startswith(b"HTTP/1.1 408 ") and b"silent for 1 s" in answer
        assert cam.deliver(notification(MOTION, "true")) == [200]


# --- the receiver alone: floods ------------------------------------------------------------

def test_a_subscriber_that_is_behind_gets_503_not_more_memory():
    settings = ReceiverSettings(host="127.0.0.1", port=0, inbox_limit=2)
    receiver = NotifyReceiver(settings)
    try:
        with receiver.receiving("cam1", ipaddress.ip_address("127.0.0.1"),
                                threading.Event()) as inbox:
            two = notify_envelope(notification(MOTION, "true"), notification(MOTION, "false"))
            assert exchange(inbox.url, "POST", body=two)[0] == 200
            status, _, text = exchange(inbox.url, "POST", body=two)
            assert status == 503 and "2 notifications dropped" in text
            assert len(inbox.take()) == 2
            assert exchange(inbox.url, "POST", body=two)[0] == 200   # drained: accepted
    finally:
        receiver.close()


def test_connections_beyond_the_limit_are_closed_unanswered():
    settings = ReceiverSettings(host="127.0.0.1", port=0, max_connections=2,
                                read_timeout_s=10, request_s=10)
    receiver = NotifyReceiver(settings)
    try:
        with receiver.receiving("cam1", ipaddress.ip_address("127.0.0.1"),
                                threading.Event()) as inbox:
            parts = urlsplit(inbox.url)
            idle = [socket.create_connection((parts.hostname, parts.port), timeout=5)
                    for _ in range(2)]
            with socket.create_connection((parts.hostname, parts.port), timeout=5) as third:
                try:
                    assert third.recv(1024) == b""          # accepted third, closed at once
                except ConnectionResetError:
                    pass
            for sock in idle:
                sock.close()
            body = notify_envelope(notification(MOTION, "true"))
            wait_until(lambda: _status_or_none(inbox.url, body) == 200, 10,
                       "the receiver serving again")
    finally:
        receiver.close()


def _status_or_none(url: str, body: bytes) -> int | None:
    """None while the receiver still counts the idle connections just closed: this one is
    then beyond the limit and closed unanswered (an empty answer, or a reset)."""
    try:
        return exchange(url, "POST", body=body)[0]
    except (OSError, IndexError, ValueError):
        return None


# --- a raw HTTP client: what a hostile sender can do ---------------------------------------

def exchange(url: str, method: str, *, body: bytes = b"", parts: list[bytes] | None = None,
             headers: dict[str, str | None] | None = None, source: str | None = None,
             timeout: float = 10.0) -> tuple[int, dict[str, str], str]:
    """Send one request exactly as given (a header set to None is left out), stop sending,
    read the whole answer: (status, lower-case headers, body text). Loopback only."""
    target = urlsplit(url)
    assert target.hostname is not None and target.hostname.startswith("127.")
    fields = {"Host": target.netloc, "Content-Type": "application/soap+xml",
              "Content-Length": str(len(body)), **(headers or {})}
    head = f"{method} {target.path or '/'} HTTP/1.1\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in fields.items() if value is not None)
    with socket.create_connection((target.hostname, target.port), timeout=timeout,
                                  source_address=(source, 0) if source else None) as sock:
        sock.sendall(head.encode() + b"\r\n")
        for part in parts if parts is not None else [body]:
            sock.sendall(part)
        sock.shutdown(socket.SHUT_WR)
        answer = read_to_end(sock)
    status_line, _, rest = answer.partition(b"\r\n")
    header_block, _, text = rest.partition(b"\r\n\r\n")
    answer_headers = {}
    for line in header_block.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        answer_headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), answer_headers, text.decode("utf-8", "replace")


def read_to_end(sock: socket.socket, limit: int = 1 << 20) -> bytes:
    """Everything the other end sends until it closes (at most `limit` bytes)."""
    answer = b""
    while len(answer) < limit:
        data = sock.recv(65536)
        if not data:
            break
        answer += data
    return answer
