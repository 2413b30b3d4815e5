"""Hostile cameras on loopback: huge answers, silence, trickles, redirects, SSRF bait.

Every case ends within its time bound with a clear error, bounded memory, and (for the
SSRF cases) no connection at all to the address the camera pointed at.
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from appliance.cameras.credentials import Credentials
from appliance.cameras.onvif import (AddressPolicy, AddressRefused, BadResponse, CameraUnreachable,
                                     Timeouts, onboard, probe)
from appliance.cameras.onvif.transport import request
from tests.integration.cameras.hostile import DiscoveryResponder, TcpPeer

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "cameras" / "onvif"
LOOPBACK = AddressPolicy(["127.0.0.0/8"])
MIB = 1 << 20
MARGIN_S = 0.6


def post(url: str, timeouts: Timeouts = Timeouts(1.0, 1.0, 1.5), policy=LOOPBACK):
    return request("POST", url, policy, body=b"<x/>", timeouts=timeouts)


def timed(fn):
    start = time.monotonic()
    try:
        fn()
    finally:
        timed.elapsed = time.monotonic() - start


def answer_then(head: bytes, body_chunks):
    def behave(conn, stop):
        peer = behave.peer
        peer.read_request(conn)
        peer.send(conn, head)
        for chunk in body_chunks():
            if stop.is_set():
                return
            peer.send(conn, chunk)
    return behave


def serve(behave) -> TcpPeer:
    peer = TcpPeer(behave)
    behave.peer = peer
    return peer


def hundred_mib(chunked: bool):
    block = b"<a>" + b"x" * (64 * 1024 - 7) + b"</a>"

    def chunks():
        for _ in range(100 * MIB // len(block)):
            yield (f"{len(block):x}\r\n".encode() + block + b"\r\n") if chunked else block
    return chunks


def test_declared_100_mb_answer_is_refused_before_reading():
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml\r\nContent-Length: %d\r\n\r\n" \
        % (100 * MIB)
    with serve(answer_then(head, hundred_mib(False))) as peer:
        with pytest.raises(BadResponse, match=r"announced 104857600 bytes; the limit is 1048576"):
            post(peer.url())


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "until-close"])
def test_100_mb_answer_is_cut_at_the_limit_with_bounded_memory(chunked):
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml\r\n" +
            (b"Transfer-Encoding: chunked\r\n" if chunked else b"Connection: close\r\n") + b"\r\n")
    with serve(answer_then(head, hundred_mib(chunked))) as peer:
        tracemalloc.start()
        try:
            with pytest.raises(BadResponse, match="sent more than 1048576 bytes; the rest was "
                                                  "not read"):
                post(peer.url(), Timeouts(2, 2, 10))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 4 * MIB
    assert peer.sent < 20 * MIB     # we stopped reading; the peer could not push 100 MB


def test_camera_that_accepts_and_never_answers():
    with serve(lambda conn, stop: (serve_peer.read_request(conn), stop.wait(30))) as serve_peer:
        with pytest.raises(CameraUnreachable, match="did not answer within 1 s"):
            timed(lambda: post(serve_peer.url(), Timeouts(connect=1, read=1, total=3)))
    assert timed.elapsed >= 1.0 and timed.elapsed < 1.0 + MARGIN_S


def test_full_backlog_without_accept_fails_on_the_total_bound():
    # A listening socket that never accepts: the kernel completes the handshake, nobody reads.
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/onvif/device_service"
        with pytest.raises(CameraUnreachable):
            timed(lambda: post(url, Timeouts(connect=1, read=5, total=1.5)))
    assert timed.elapsed < 1.5 + MARGIN_S


def trickle(head_first: bytes, piece: bytes, every: float):
    def behave(conn, stop):
        behave.peer.read_request(conn)
        behave.peer.send(conn, head_first)
        while not stop.wait(every):
            behave.peer.send(conn, piece)
    return behave


def test_trickling_headers_hit_the_total_deadline():
    # A header line every 0.2 s keeps every single read under the read timeout.
    with serve(trickle(b"HTTP/1.1 200 OK\r\n", b"X-Slow: 1\r\n", 0.2)) as peer:
        with pytest.raises(CameraUnreachable, match="did not finish answering within 1.5 s"):
            timed(lambda: post(peer.url(), Timeouts(connect=1, read=1, total=1.5)))
    assert timed.elapsed < 1.5 + MARGIN_S


def test_trickling_body_hits_the_total_deadline():
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n<"
    with serve(trickle(head, b"a", 0.2)) as peer:
        with pytest.raises(CameraUnreachable, match="within 1.5 s"):
            timed(lambda: post(peer.url(), Timeouts(connect=1, read=1, total=1.5)))
    assert timed.elapsed < 1.5 + MARGIN_S


def test_onboarding_a_silent_camera_ends_within_its_deadline():
    with serve(lambda conn, stop: (silent.read_request(conn), stop.wait(30))) as silent:
        with pytest.raises(CameraUnreachable):
            timed(lambda: onboard(silent.url(), Credentials("admin", "pw"), LOOPBACK,
                                  timeouts=Timeouts(connect=1, read=5, total=10), deadline_s=2))
    assert timed.elapsed < 2 + MARGIN_S


def redirect(location: str):
    def behave(conn, stop):
        behave.peer.read_request(conn)
        behave.peer.send(conn, b"HTTP/1.1 307 Temporary Redirect\r\nLocation: " +
                         location.encode() + b"\r\nContent-Length: 0\r\n\r\n")
    return behave


def test_redirect_to_another_host_is_not_followed():
    with TcpPeer(host="127.0.0.2") as canary:
        with serve(redirect(f"http://127.0.0.2:{canary.port}/latest/meta-data/")) as peer:
            with pytest.raises(AddressRefused, match="redirected to another host"):
                post(peer.url())
        assert canary.accepts == 0


@pytest.mark.parametrize("location,reason", [
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("file:///etc/passwd", "only http:// or https://"),
    ("gopher://127.0.0.1:70/_x", "only http:// or https://"),
])
def test_redirect_to_forbidden_addresses_is_refused(location, reason):
    with serve(redirect(location)) as peer:
        with pytest.raises(AddressRefused, match=reason):
            post(peer.url())


def test_redirect_on_the_same_host_is_followed_and_loops_are_cut():
    def behave(conn, stop):
        head = behave.peer.read_request(conn)
        if b"/moved" in head.split(b"\r\n")[0]:
            behave.peer.send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        else:
            behave.peer.send(conn, b"HTTP/1.1 308 Permanent Redirect\r\nLocation: /moved\r\n"
                             b"Content-Length: 0\r\n\r\n")
    with serve(behave) as peer:
        resp = post(peer.url("/old"))
        assert (resp.status, resp.body) == (200, b"ok")
        assert [r.split(b" ")[:2] for r in peer.requests] == [[b"POST", b"/old"],
                                                               [b"POST", b"/moved"]]
    with serve(redirect("/again")) as loop:
        with pytest.raises(BadResponse, match="redirected more than 2 times"):
            post(loop.url())
        assert loop.accepts == 3


@pytest.mark.parametrize("answer", [
    b"garbage\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 200 + b"\r\n",
    b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n",
], ids=["status-line", "header-flood", "long-header"])
def test_malformed_http_is_a_bad_response(answer):
    def behave(conn, stop):
        behave.peer.read_request(conn)
        behave.peer.send(conn, answer)
    with serve(behave) as peer:
        with pytest.raises(BadResponse, match="malformed HTTP"):
            post(peer.url())


def test_connection_refused():
    peer = TcpPeer()
    url = peer.url()
    peer._sock.close()
    with pytest.raises(CameraUnreachable, match="connection refused"):
        post(url)


# -- SSRF bait: refused before any connection --------------------------------------------

def lan_only() -> AddressPolicy:
    return AddressPolicy(["192.168.77.0/24"])


@pytest.mark.parametrize("template", [
    "http://127.0.0.1:{port}/onvif/device_service",
    "http://localhost:{port}/onvif/device_service",
    "http://2130706433:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://169.254.169.254/latest/meta-data/",
    "file:///etc/passwd",
    "gopher://127.0.0.1:{port}/_GET",
    "http://admin:pw@127.0.0.1:{port}/",
])
def test_onboarding_refused_addresses_connects_nowhere(template):
    with TcpPeer() as canary:
        url = template.format(port=canary.port)
        with pytest.raises(AddressRefused):
            onboard(url, Credentials("admin", "pw"), lan_only(), deadline_s=2)
        time.sleep(0.1)   # give a stray connection time to show up in the accept loop
        assert canary.accepts == 0


def spoofed(canary_port: int):
    template = (FIXTURES / "probe_match.spoofed.xml.in").read_text()
    return lambda message_id: [template.format(relates_to=message_id,
                                               canary=canary_port).encode()]


def test_discovery_suggestions_from_a_spoofing_responder_are_refused_and_not_fetched():
    policy = AddressPolicy(["127.0.0.2/32"])      # the responder's address only
    with TcpPeer() as canary, DiscoveryResponder(spoofed(canary.port)) as responder:
        start = time.monotonic()
        found = probe(policy, timeout=0.8, addresses=[responder.host], multicast=False,
                      port=responder.port)
        elapsed = time.monotonic() - start
        time.sleep(0.1)
        assert canary.accepts == 0
    assert 0.8 <= elapsed < 0.8 + MARGIN_S
    assert len(responder.probes) == 2          # sent, and repeated once
    [device] = found
    assert device.sender == "127.0.0.2"
    assert device.usable_xaddrs == []
    assert all(x.refused for x in device.xaddrs)


def test_discovery_flood_is_bounded():
    def flood(message_id: str) -> list[bytes]:
        return [(f'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
                 f'xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" '
                 f'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"><s:Header>'
                 f"<a:RelatesTo>{message_id}</a:RelatesTo></s:Header><s:Body><d:ProbeMatches>"
                 f"<d:ProbeMatch><a:EndpointReference><a:Address>urn:uuid:00000000-0000-4000-"
                 f"8000-{i:012d}</a:Address></a:EndpointReference><d:XAddrs>"
                 f"http://127.0.0.2/onvif/device_service</d:XAddrs></d:ProbeMatch>"
                 f"</d:ProbeMatches></s:Body></s:Envelope>").encode() for i in range(300)]
    policy = AddressPolicy(["127.0.0.2/32"])
    with DiscoveryResponder(flood) as responder:
        start = time.monotonic()
        found = probe(policy, timeout=1.0, addresses=[responder.host], multicast=False,
                      port=responder.port, max_devices=50, max_datagrams=400)
        elapsed = time.monotonic() - start
    assert len(found) == 50
    assert elapsed < 1.0 + MARGIN_S


def test_discovery_refuses_a_forbidden_unicast_target_and_sends_nothing():
    with DiscoveryResponder(lambda message_id: []) as responder:
        with pytest.raises(AddressRefused, match="loopback"):
            probe(AddressPolicy(["192.168.77.0/24"]), timeout=0.5, addresses=[responder.host],
                  multicast=False, port=responder.port)
        time.sleep(0.1)
        assert responder.probes == []
