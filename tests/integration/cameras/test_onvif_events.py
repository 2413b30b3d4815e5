"""Event subscriptions against a fake ONVIF event service on loopback (fakeevents.py):
subscribe, a motion start/stop pair in the real index, renew before termination,
unsubscribe on stop, a rebooting camera, and hostile answers (XML bomb, external entity,
100 MB body, garbage, subscription addresses the policy refuses).

ipycam (the virtual camera of test_onvif_ipycam.py) has no event service (ipycam 1.3.0
implements device, media and PTZ only), so there is no namespace test here: the fake
serves answers written from the ONVIF event WSDL and schema instead.
"""

from __future__ import annotations

import random
from pathlib import Path

import psutil
import pytest

from appliance.cameras.credentials import Credentials
from appliance.cameras.onvif.events import PullPointClient
from appliance.cameras.onvif.policy import AddressPolicy
from appliance.cameras.onvif.transport import Timeouts
from appliance.events.subscriber import EventSubscriber, SubscriberSettings
from tests.integration.cameras.fakeevents import MOTION, EventCamera, notification
from tests.integration.cameras.hostile import TcpPeer
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(60)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "cameras" / "onvif"
POLICY = AddressPolicy(["127.0.0.1/32"])     # the fake camera; 127.0.0.2 stays refused
CREDS = Credentials("admin", "pa55 word")
FAST = SubscriberSettings(termination_s=30, pull_timeout_s=1, request_s=5,
                          backoff_initial_s=0.05, backoff_cap_s=0.3,
                          timeouts=Timeouts(connect=1, read=3, total=5))
MIB = 1 << 20


@pytest.fixture
def running():
    started: list[EventSubscriber] = []

    def start(cam_or_xaddr, index, settings=FAST, policy=POLICY) -> EventSubscriber:
        xaddr = getattr(cam_or_xaddr, "xaddr", cam_or_xaddr)
        sub = EventSubscriber("cam1", xaddr, CREDS, policy, index, settings=settings,
                              rng=random.Random(7))
        started.append(sub.start())
        return sub

    yield start
    for sub in started:
        assert sub.stop(15), "the subscriber did not stop"


def subscribed(sub, count=1):
    return lambda: sub.status()["subscriptions"] >= count and \
        sub.status()["state"] == "subscribed"


def test_motion_start_stop_pair_is_one_event(index, running):
    with EventCamera() as cam:
        sub = running(cam, index)
        wait_until(subscribed(sub), 10, "the subscription")
        wait_until(lambda: sub.status()["notifications"] >= 1, 5, "the Initialized message")
        assert index.events("cam1") == []              # Initialized false: nothing happened
        cam.push(notification(MOTION, "true"))
        opened = wait_until(lambda: index.open_events("cam1"), 5, "the motion start")
        cam.push(notification(MOTION, "false"))
        wait_until(lambda: not index.open_events("cam1"), 5, "the motion end")
    (event,) = index.events("cam1")
    assert event.id == opened[0].id
    assert (event.kind, event.topic) == ("motion", MOTION)
    assert event.start_us < event.end_us
    assert "VideoSourceToken=vs1" in event.detail
    # The subscription address came from the camera; every request carried WS-Security.
    assert all(seen.authenticated for seen in cam.requests if "Subscription" in seen.path
               or "Events" in seen.path)


def test_renews_before_the_termination_time(index, running):
    settings = SubscriberSettings(**{**FAST.__dict__, "termination_s": 3})
    with EventCamera() as cam:
        sub = running(cam, index, settings)
        # The camera logs a Renew when it arrives; the subscriber counts it once the
        # answer is read, so wait for both.
        wait_until(lambda: cam.count("Renew") >= 3 and sub.status()["renewals"] >= 3, 15,
                   "three renewals")
        renewals = [e for e in cam.events if e.operation == "Renew"]
        assert all(e.ends is not None and e.at < e.ends for e in renewals)
        assert cam.count("CreatePullPointSubscription") == 1     # never lost it
        assert cam.faults_served == 0


def test_unsubscribes_on_stop_and_closes_open_events(index, running):
    with EventCamera() as cam:
        sub = running(cam, index)
        wait_until(subscribed(sub), 10, "the subscription")
        cam.push(notification(MOTION, "true"))
        wait_until(lambda: index.open_events("cam1"), 5, "the motion start")
        assert sub.stop(10)
        assert cam.count("Unsubscribe") == 1 and cam.subscriptions == {}
        assert sub.status()["state"] == "stopped"
    assert index.open_events("cam1") == [] and index.events("cam1")[0].end_us is not None


def test_rebooting_camera_loses_then_regains_the_subscription(index, running):
    with EventCamera() as cam:
        sub = running(cam, index)
        wait_until(subscribed(sub), 10, "the subscription")
        cam.push(notification(MOTION, "true"))
        wait_until(lambda: index.open_events("cam1"), 5, "the motion start")
        cam.down = True                          # rebooting: connections drop unanswered
        wait_until(lambda: sub.status()["failures"] >= 2, 10, "failed reconnects")
        assert index.open_events("cam1") == []   # closed at the loss
        cam.reboot()
        cam.initial = [notification(MOTION, "true", "Initialized")]   # still moving
        cam.down = False
        wait_until(subscribed(sub, 2), 10, "a new subscription")
        wait_until(lambda: index.open_events("cam1"), 5, "the motion still going")
    assert [e.kind for e in index.events("cam1")] == ["motion", "motion"]


def test_a_subscription_the_camera_forgot_is_replaced(index, running):
    with EventCamera() as cam:
        sub = running(cam, index)
        wait_until(subscribed(sub), 10, "the subscription")
        cam.reboot()                              # too fast to notice: the next pull faults
        wait_until(subscribed(sub, 2), 10, "a new subscription")
        assert cam.faults_served >= 1
        assert sub.status()["failures"] >= 1
        assert "ResourceUnknownFault" in sub.status()["last_error"]


def test_nothing_listening_is_retried_with_growing_backoff(index, running):
    peer = TcpPeer()
    port = peer.port
    peer._sock.close()                            # a port where nothing listens
    sub = running(f"http://127.0.0.1:{port}/onvif/device_service", index)
    wait_until(lambda: sub.status()["failures"] >= 4, 10, "retries")
    status = sub.status()
    assert status["state"] in ("retrying", "subscribing")
    assert "connection refused" in status["last_error"]
    assert 0.0 < status["retry_in_s"] <= FAST.backoff_cap_s
    assert index.events("cam1") == []


def _pull_answer(data: bytes):
    return lambda body: (200, data)


@pytest.mark.parametrize("answer, words", [
    ((FIXTURES / "billion_laughs.xml").read_bytes(), "carries a DTD or entity declarations"),
    ((FIXTURES / "external_entity.xml").read_bytes(), "carries a DTD or entity declarations"),
    (b"\x00\xff garbage <<<", "not well-formed XML"),
    (b"<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope'><s:Body><x/></s:Body>"
     b"</s:Envelope>", "expected PullMessagesResponse"),
], ids=["billion-laughs", "external-entity", "garbage", "wrong-answer"])
def test_hostile_pull_answers_are_refused_and_retried(index, running, answer, words):
    with EventCamera() as cam:
        cam.answers["http://www.onvif.org/ver10/events/wsdl/PullPointSubscription/"
                    "PullMessagesRequest"] = _pull_answer(answer)
        sub = running(cam, index)
        wait_until(lambda: sub.status()["failures"] >= 3, 10, "refusals and retries")
        assert words in sub.status()["last_error"]
        assert cam.count("CreatePullPointSubscription") >= 3    # it keeps trying
    assert index.events("cam1") == []


def test_100_mb_pull_answer_is_cut_with_bounded_memory(index, running):
    block = b"<a>" + b"x" * (64 * 1024 - 7) + b"</a>"

    def stream(conn, stop):
        peer.read_request(conn)
        peer.send(conn, b"HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml\r\n"
                        b"Connection: close\r\n\r\n")
        for _ in range(100 * MIB // len(block)):
            if stop.is_set():
                return
            peer.send(conn, block)
        stream.finished += 1

    stream.finished = 0
    process = psutil.Process()
    with TcpPeer(stream) as peer:
        # The subscription manager is on the camera's host, another port: allowed.
        with EventCamera(reference=lambda n: peer.url(f"/onvif/Subscription?Idx={n}")) as cam:
            before = process.memory_info().rss
            sub = running(cam, index)
            wait_until(lambda: sub.status()["failures"] >= 3, 20, "three cut answers")
            grew = process.memory_info().rss - before
            assert "sent more than 1048576 bytes; the rest was not read" in \
                sub.status()["last_error"]
    assert peer.accepts >= 3
    assert stream.finished == 0                  # the client closed every time, early
    assert peer.sent < 3 * 30 * MIB
    assert grew < 50 * MIB
    assert index.events("cam1") == []


@pytest.mark.parametrize("reference, words", [
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://127.0.0.2:{port}/onvif/Subscription", "loopback"),
    ("file:///etc/passwd", "only http:// or https://"),
], ids=["metadata", "other-loopback", "file"])
def test_subscription_addresses_the_policy_refuses(index, running, reference, words):
    with TcpPeer(host="127.0.0.2") as canary:
        with EventCamera(reference=lambda n: reference.format(port=canary.port)) as cam:
            sub = running(cam, index)
            wait_until(lambda: sub.status()["failures"] >= 3, 10, "refusals")
            detail = sub.status()["last_error"]
            assert "refused" in detail and words in detail
            assert cam.count("PullMessages") == 0
    assert canary.accepts == 0
    assert index.events("cam1") == []


def test_subscription_on_another_allowed_host_is_refused(index, running):
    policy = AddressPolicy(["127.0.0.0/8"])
    with TcpPeer(host="127.0.0.3") as canary:
        with EventCamera(reference=lambda n: canary.url("/sub")) as cam:
            sub = running(cam, index, policy=policy)
            wait_until(lambda: sub.status()["failures"] >= 2, 10, "refusals")
            assert "not on the camera's own host" in sub.status()["last_error"]
    assert canary.accepts == 0


def test_client_event_properties_and_a_camera_without_events(index):
    with EventCamera() as cam:
        client = PullPointClient(cam.xaddr, CREDS, POLICY)
        client.sync_clock()
        sub = client.create_pull_point(10)
        assert sub.address.startswith(cam.url("/onvif/Subscription?Idx="))
        assert 9 <= sub.lifetime() <= 11
        assert client.pull(sub, 1).notifications[0].operation == "Initialized"
        client.unsubscribe(sub)
    with EventCamera() as cam:
        del cam.answers["http://www.onvif.org/ver10/events/wsdl/EventPortType/"
                        "CreatePullPointSubscriptionRequest"]
        client = PullPointClient(cam.xaddr, CREDS, POLICY)
        client.sync_clock()
        with pytest.raises(Exception, match="refused a PullPoint subscription"):
            client.create_pull_point(10)


# --- the service: subscribers follow the registry ------------------------------------------

def _registry(tmp_path):
    from appliance.cameras.credentials import CredentialStore
    from appliance.cameras.registry import CameraRegistry
    from appliance.config.cameras import build_camera_settings

    return CameraRegistry(tmp_path / "config" / "cameras.json",
                          CredentialStore(tmp_path / "secrets" / "cameras"),
                          build_camera_settings({}))


def _camera(cid, cam):
    from appliance.cameras.registry import Camera, StreamInfo

    return Camera(cid, cid, cam.host, StreamInfo(f"rtsp://{cam.host}:554/main", "h264", 1920,
                                                 1080, 25, 2000), xaddr=cam.xaddr)


def test_service_follows_the_registry(tmp_path, index):
    from appliance.events.service import EventService

    reg = _registry(tmp_path)
    service = EventService(index, lambda: reg, POLICY, settings=FAST, rng=random.Random(1))
    try:
        with EventCamera() as cam, EventCamera() as other:
            reg.add(_camera("door", cam), CREDS)
            service.refresh()
            assert list(service.subscribers) == ["door"]
            wait_until(subscribed(service.subscribers["door"]), 10, "door subscribed")
            cam.push(notification(MOTION, "true"))
            wait_until(lambda: index.open_events("door"), 5, "door motion")

            reg.add(_camera("yard", other), CREDS)
            reg.set_enabled("door", False)
            service.refresh()                  # door stops (unsubscribes), yard starts
            assert list(service.subscribers) == ["yard"]
            assert cam.count("Unsubscribe") == 1 and index.open_events("door") == []
            wait_until(subscribed(service.subscribers["yard"]), 10, "yard subscribed")

            reg.set_credentials("yard", Credentials("admin", "pa55 word"))   # same: no restart
            first = service.subscribers["yard"]
            service.refresh()
            assert service.subscribers["yard"] is first
            service.close()
            assert service.subscribers == {} and other.count("Unsubscribe") == 1
    finally:
        service.close()
