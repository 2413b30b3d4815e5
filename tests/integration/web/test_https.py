"""A real `nvr serve` on loopback ports, as the vigil-web unit runs it: HTTPS with the
device certificate (the handshake verifies against it, hostname checked), the plain-HTTP
port only redirecting, Host checks on both, a Secure session cookie, an owner certificate
installed through the API served at once without a restart, and live view streaming
through HTTPS (a slow viewer is dropped and its thread freed)."""

from __future__ import annotations

import datetime as dt
import http.client
import ipaddress
import json
import os
import resource
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
import warnings
from pathlib import Path

import psutil
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appliance.storage.volume import write_marker
from appliance.web import https_server, tls
from hw.camsim.clips import ensure_clip
from hw.camsim.server import SimCamera, free_port
from tests.integration.conftest import CACHE, ffprobe_json
from tests.integration.nvr_cli import nvr
from tests.integration.web.test_live_view import LiveReader
from tests.integration.web_session import ApiClient
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[3]
HOSTNAME = "vigil-test"


class NvrServe:
    """`nvr serve` in production mode on two loopback ports; ready when systemd would be
    told so (READY=1 on a NOTIFY_SOCKET this test listens on)."""

    def __init__(self, tmp: Path, *extra: str, file_size_limit: int | None = None) -> None:
        """`file_size_limit`: RLIMIT_FSIZE for the server (bytes): a write past it fails
        with EFBIG, as one on a full disk fails with ENOSPC."""
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.https_port, self.http_port = free_port(), free_port()
        self.tls_dir = tmp / "tls"
        self.registry = ["--registry", str(tmp / "config" / "cameras.json"),
                         "--secrets", str(tmp / "secrets")]
        argv = [sys.executable, "-m", "appliance.cli", "serve", "--data", str(tmp / "data"),
                "--https-listen", f"127.0.0.1:{self.https_port}",
                "--http-listen", f"127.0.0.1:{self.http_port}",
                "--tls-dir", str(self.tls_dir), "--accounts", str(tmp / "accounts.sqlite3"),
                "--licence", str(tmp / "licence.txt"), "--config", str(tmp / "recorder.toml"),
                "--volumes", str(tmp / "volumes.json"), "--hwd-state", str(tmp / "state"),
                "--hwd-socket", str(tmp / "hwd.sock"), "--hostname", HOSTNAME,
                "--addresses", "127.0.0.1", "--board", "sim", *self.registry, *extra]
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        address = f"vigil-test-{uuid.uuid4().hex}"
        self.notify.bind("\0" + address)
        self.notify.settimeout(30)
        self.log_path = tmp / "serve.log"
        self._log = open(self.log_path, "ab")
        limit = None if file_size_limit is None else \
            (lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit,) * 2))
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=self._log, stderr=self._log,
                                     env={**os.environ, "NOTIFY_SOCKET": "@" + address},
                                     preexec_fn=limit)
        try:
            self.ready = self.notify.recv(4096).decode()
        except socket.timeout:
            self.stop()
            raise AssertionError(f"nvr serve did not get ready: {self.log()}") from None
        self.base = f"https://127.0.0.1:{self.https_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        self.notify.close()
        return self.proc.returncode

    def generated_context(self) -> ssl.SSLContext:
        """A client that trusts exactly the box's generated certificate."""
        return trusting((self.tls_dir / "generated.pem").read_text())

    def client(self, context: ssl.SSLContext | None = None) -> ApiClient:
        """The tests' API client over HTTPS (setup or login as the owner)."""
        client = ApiClient(self.base)
        client.opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=context or self.generated_context()),
            urllib.request.HTTPCookieProcessor(client.jar))
        return client.login()


def trusting(pem_text: str) -> ssl.SSLContext:
    """A verifying client context whose only CA is the certificate(s) in `pem_text`."""
    certs = "".join(block.decode() for label, block in tls.pem_blocks(pem_text)
                    if label == "CERTIFICATE")
    context = ssl.create_default_context(cadata=certs)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    return context


def handshake(port: int, context: ssl.SSLContext, name: str) -> tuple[bytes, str]:
    """(the leaf's DER the server presented, the TLS version) for a new connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=name) as conn:
            return conn.getpeercert(binary_form=True), conn.version()


def sha256(der: bytes) -> str:
    return x509.load_der_x509_certificate(der).fingerprint(hashes.SHA256()).hex(":").upper()


def plain_request(port: int, method: str, path: str, host: str | None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest(method, path, skip_host=True)
    if host is not None:
        conn.putheader("Host", host)
    conn.putheader("Content-Length", "0")
    conn.endheaders()
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, resp.getheader("Location"), body


@pytest.fixture
def serve(tmp_path):
    servers: list[NvrServe] = []

    def start(*extra: str, file_size_limit: int | None = None) -> NvrServe:
        server = NvrServe(tmp_path / f"box{len(servers)}", *extra,
                          file_size_limit=file_size_limit)
        servers.append(server)
        return server
    yield start
    for server in servers:
        server.stop()


@pytest.mark.timeout(120)
def test_https_verifies_against_the_device_certificate_with_hostname_checks(serve):
    box = serve()
    assert "READY=1" in box.ready  # Type=notify works: gunicorn tells systemd
    shown = json.loads(nvr("web-certificate", "show", "--json", "--tls-dir",
                           str(box.tls_dir)).stdout)
    context = box.generated_context()
    for name in (HOSTNAME, f"{HOSTNAME}.local", "127.0.0.1"):
        der, version = handshake(box.https_port, context, name)
        assert sha256(der) == shown["fingerprint_sha256"]  # what the owner compares
        assert version in ("TLSv1.2", "TLSv1.3")
    with pytest.raises(ssl.SSLCertVerificationError):  # hostname checking is real
        handshake(box.https_port, context, "other.example")
    with pytest.raises(ssl.SSLCertVerificationError):  # and so is the chain check
        handshake(box.https_port, ssl.create_default_context(), HOSTNAME)
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname, old.verify_mode = False, ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
        old.set_ciphers("DEFAULT:@SECLEVEL=0")
    with pytest.raises(ssl.SSLError):  # TLS 1.1 and older are refused
        handshake(box.https_port, old, HOSTNAME)

    # The API over HTTPS: the same app; the session cookie is Secure.
    conn = http.client.HTTPSConnection("127.0.0.1", box.https_port, context=context, timeout=10)
    conn.request("POST", "/api/v1/setup", body=json.dumps(
        {"username": "owner", "password": "correct horse battery"}),
        headers={"Content-Type": "application/json", "Host": HOSTNAME})
    resp = conn.getresponse()
    assert resp.status == 201, resp.read()
    cookie = resp.getheader("Set-Cookie")
    assert "vigil_session=" in cookie and "; Secure" in cookie and "HttpOnly" in cookie
    assert resp.getheader("Strict-Transport-Security") is None  # generated: no HSTS
    resp.read()
    conn.request("GET", "/api/v1/setup", headers={"Host": "evil.example"})
    resp = conn.getresponse()
    assert resp.status == 421 and resp.read() == b'{"error":"unknown host name"}\n'
    conn.close()
    client = box.client()
    assert all(c.secure for c in client.jar) and len(client.jar) == 1
    status, me = client.json("GET", "/api/v1/me")
    assert status == 200 and me["user"] == "owner"
    assert box.stop() == 0  # SIGTERM: a clean stop


@pytest.mark.timeout(120)
def test_a_renamed_box_answers_to_its_new_name_at_once(serve, tmp_path):
    """The System page's new name reaches /etc/hostname (a link to /run/vigil/hostname on
    the image); both ports follow it without a restart."""
    hostname = tmp_path / "hostname"
    hostname.write_text(f"{HOSTNAME}\n")
    box = serve("--hostname-file", str(hostname))
    context = box.generated_context()
    context.check_hostname = False     # the generated certificate keeps the old name

    def status(host: str) -> int:
        conn = http.client.HTTPSConnection("127.0.0.1", box.https_port, context=context,
                                           timeout=10)
        conn.request("GET", "/api/v1/setup", headers={"Host": host})
        code = conn.getresponse().status
        conn.close()
        return code
    assert status("garage.local") == 421
    assert plain_request(box.http_port, "GET", "/", "garage")[0] == 421
    hostname.write_text("garage\n")
    assert status("garage.local") == 200 and status("garage") == 200
    assert plain_request(box.http_port, "GET", "/x", "garage.local")[:2] == \
        (308, f"https://garage.local:{box.https_port}/x")
    assert status(HOSTNAME) == 200      # the name it started with stays accepted
    assert status("evil.example") == 421


@pytest.mark.timeout(120)
def test_the_http_port_only_redirects_and_refuses_unknown_hosts(serve):
    box = serve()
    https = box.https_port
    for method, path, host, location in (
            ("GET", "/api/v1/setup", "127.0.0.1", f"https://127.0.0.1:{https}/api/v1/setup"),
            ("GET", "/live?camera=door&x=%2F", f"{HOSTNAME}.local:{box.http_port}",
             f"https://{HOSTNAME}.local:{https}/live?camera=door&x=%2F"),
            ("POST", "/api/v1/login", HOSTNAME, f"https://{HOSTNAME}:{https}/api/v1/login"),
            ("GET", "//evil.example/", "[::1]", f"https://[::1]:{https}//evil.example/")):
        status, got, body = plain_request(box.http_port, method, path, host)
        assert (status, got) == (308, location), (method, path, host, status, body)
        assert b"needed" not in body  # the app itself never answers in plain HTTP
    for host in ("evil.example", f"evil.example:{box.http_port}", f"{HOSTNAME}.evil.example"):
        status, got, body = plain_request(box.http_port, "GET", "/", host)
        assert status == 421 and got is None and b"unknown host name" in body, host
    status, got, _ = plain_request(box.http_port, "GET", "/", None)
    assert status == 400 and got is None
    # The redirect points at the port that really serves the box over HTTPS.
    status, location, _ = plain_request(box.http_port, "GET", "/api/v1/setup", "127.0.0.1")
    with urllib.request.urlopen(location, context=box.generated_context(), timeout=10) as resp:
        assert resp.status == 200 and json.loads(resp.read()) == {"needed": True}


def owner_certificate(name: str) -> tuple[str, str, str, str]:
    """An owner's CA and a server certificate from it: (CA PEM, chain PEM, key PEM,
    the leaf's fingerprint)."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Owner CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .sign(ca_key, hashes.SHA384()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=20))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA384()))
    as_pem = lambda c: c.public_bytes(serialization.Encoding.PEM).decode()  # noqa: E731
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return as_pem(ca), as_pem(leaf) + as_pem(ca), key_pem, \
        leaf.fingerprint(hashes.SHA256()).hex(":").upper()


@pytest.mark.timeout(120)
def test_an_owner_certificate_installed_through_the_api_is_served_without_a_restart(serve):
    box = serve()
    client = box.client()
    pid = box.proc.pid
    generated = sha256(handshake(box.https_port, box.generated_context(), HOSTNAME)[0])
    ca, chain, key, fingerprint = owner_certificate("nvr.home.example")

    # A bad pair first: refused with the reason, the device certificate still served.
    status, answer = client.json("POST", "/api/v1/system/certificate",
                                 {"certificate": chain, "key": tls.generate(
                                     tls.DeviceIdentity("x")).decode()})
    assert status == 400 and "does not belong" in answer["error"]
    assert sha256(handshake(box.https_port, box.generated_context(), HOSTNAME)[0]) == generated

    status, answer = client.json("POST", "/api/v1/system/certificate",
                                 {"certificate": chain, "key": key})
    assert status == 201 and answer["fingerprint_sha256"] == fingerprint, answer
    owner = trusting(ca)
    der, _ = handshake(box.https_port, owner, "nvr.home.example")  # the next connection
    assert sha256(der) == fingerprint and box.proc.pid == pid and box.proc.poll() is None
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(box.https_port, box.generated_context(), HOSTNAME)
    # The certificate's name is one the box now answers to, with HSTS.
    conn = http.client.HTTPSConnection("127.0.0.1", box.https_port, context=owner, timeout=10)
    conn.request("GET", "/api/v1/setup", headers={"Host": "nvr.home.example"})
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read() == b'{"needed":false}\n'
    assert resp.getheader("Strict-Transport-Security") == f"max-age={tls.HSTS_MAX_AGE}"
    conn.close()
    status, location, _ = plain_request(box.http_port, "GET", "/x", "nvr.home.example")
    assert (status, location) == (308, f"https://nvr.home.example:{box.https_port}/x")

    # Back to the device's own: the same fingerprint the owner checked before, no HSTS.
    status, answer = box.client(owner).json("DELETE", "/api/v1/system/certificate", {})
    assert status == 200 and answer["fingerprint_sha256"] == generated
    assert sha256(handshake(box.https_port, box.generated_context(), HOSTNAME)[0]) == generated
    conn = http.client.HTTPSConnection("127.0.0.1", box.https_port,
                                       context=box.generated_context(), timeout=10)
    conn.request("GET", "/api/v1/setup", headers={"Host": HOSTNAME})
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Strict-Transport-Security") is None
    conn.close()
    assert "tls: serving owner certificate" in box.log()


class HttpsLiveReader(LiveReader):
    """test_live_view's viewer, over HTTPS."""

    def __init__(self, port: int, cookie: str, context: ssl.SSLContext,
                 camera: str = "cam") -> None:
        self.conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=context)
        self.conn.request("GET", f"/api/v1/cameras/{camera}/live.mp4",
                          headers={"Cookie": cookie, "Host": HOSTNAME})
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.content_type = self.resp.getheader("Content-Type", "")
        self.data = bytearray()
        self.received = {}
        self.ended = False
        self._parsed = 0
        self.complete = 0
        self._seq = None
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        assert self.status == 200, self.resp.read()
        self._thread.start()


def add_camera(box_args: list[str], url: str) -> None:
    out = nvr("cameras", "add", "--name", "cam", "--rtsp", url, *box_args)
    assert out.returncode == 0, out.stderr


@pytest.mark.timeout(180)
def test_live_view_streams_through_https(serve, camera_server, small_clip, tmp_path):
    cam = camera_server(SimCamera("/cam1", small_clip, audio="aac"))
    box = serve()
    add_camera(box.registry, cam.url("/cam1"))
    client = box.client()
    context = box.generated_context()
    reader = HttpsLiveReader(box.https_port, client.cookie, context)
    assert reader.content_type.startswith('video/mp4; codecs="avc1.')
    reader.wait_fragments(75)  # ~3 s at 25 fps, one fragment per frame
    reader.close()
    times = sorted(reader.received.values())
    longest_pause = max(b - a for a, b in zip(times[5:], times[6:]))
    assert longest_pause < 0.5, longest_pause  # chunks leave as they are made, unbuffered
    packets = ffprobe_json(reader.save(tmp_path / "live.mp4"), "-select_streams", "v:0",
                           "-show_entries", "packet=flags")["packets"]
    assert len(packets) >= 70 and packets[0]["flags"].startswith("K")

    # An independent client: ffmpeg over HTTPS, verifying the certificate and the name.
    ca = tmp_path / "device-ca.pem"
    ca.write_text("".join(b.decode() for label, b in tls.pem_blocks(
        (box.tls_dir / "generated.pem").read_text()) if label == "CERTIFICATE"))
    out = subprocess.run(["ffmpeg", "-v", "error", "-tls_verify", "1", "-ca_file", str(ca),
                          "-headers", f"Cookie: {client.cookie}\r\n", "-i",
                          f"{box.base}/api/v1/cameras/cam/live.mp4", "-t", "2", "-f", "null",
                          "-"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr


@pytest.mark.timeout(180)
def test_a_slow_https_viewer_is_dropped_and_its_thread_freed(serve, camera_server, tmp_path):
    clip = ensure_clip(CACHE, codec="h264", audio=None, seconds=6, width=640, height=360,
                       fps=25, bitrate_kbps=6000, gop=25)
    cam = camera_server(SimCamera("/cam1", clip))
    box = serve("--threads", "4")
    add_camera(box.registry, cam.url("/cam1"))
    client = box.client()
    context = box.generated_context()
    fast = HttpsLiveReader(box.https_port, client.cookie, context)
    fast.wait_fragments(10)

    def live() -> dict:
        return client.json("GET", "/api/v1/live")[1]["cameras"].get("cam", {})

    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", box.https_port))
    slow = context.wrap_socket(raw, server_hostname=HOSTNAME)
    slow.sendall(f"GET /api/v1/cameras/cam/live.mp4 HTTP/1.1\r\nHost: {HOSTNAME}\r\n"
                 f"Cookie: {client.cookie}\r\n\r\n".encode())  # and never reads
    worker = psutil.Process(box.proc.pid).children()[0]

    def holds_slow_connection() -> bool:
        port = slow.getsockname()[1]
        return any(c.raddr and c.raddr.port == port for c in worker.net_connections("tcp"))
    try:
        wait_until(lambda: live().get("viewers") == 2, 15, "the slow viewer")
        assert holds_slow_connection()
        wait_until(lambda: live().get("dropped_viewers") == 1, 45, "the slow viewer dropped")
        dropped = time.monotonic()
        # Its response thread was blocked in a send: the live send timeout (just above
        # viewer_max_delay, 2 s) ends it well before the server's general one.
        wait_until(lambda: not holds_slow_connection(), https_server.SEND_TIMEOUT - 5,
                   "the slow viewer's connection to be closed by the server")
        freed_after = time.monotonic() - dropped
        fast.wait_fragments(25)
    finally:
        slow.close()
    times = sorted(fast.received.values())
    longest_pause = max(b - a for a, b in zip(times, times[1:]))
    print(f"\nslow HTTPS viewer's connection closed {freed_after:.1f} s after the drop; "
          f"the other viewer's longest pause {longest_pause * 1000:.0f} ms")
    assert longest_pause < 0.5
    # With 4 threads, the box still answers: nothing is stuck.
    assert client.json("GET", "/api/v1/me")[0] == 200
    fast.close()


@pytest.mark.timeout(60)
def test_development_mode_serves_plain_http_on_loopback_only(tmp_path):
    refused = nvr("serve", "--data", str(tmp_path / "data"), "--listen", "0.0.0.0:8080",
                  "--hostname", HOSTNAME, "--addresses", "127.0.0.1")
    assert refused.returncode == 2 and "loopback" in refused.stderr
    port = free_port()
    log = open(tmp_path / "dev.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "appliance.cli", "serve", "--data",
                             str(tmp_path / "data"), "--listen", f"127.0.0.1:{port}",
                             "--accounts", str(tmp_path / "accounts.sqlite3"),
                             "--hostname", HOSTNAME, "--addresses", "127.0.0.1"],
                            cwd=ROOT, stdout=log, stderr=log)
    try:
        def answers():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/setup",
                                            timeout=5) as resp:
                    return json.loads(resp.read())
            except OSError:
                return None
        assert wait_until(answers, 30, "the development server") == {"needed": True}
        assert not (tmp_path / "tls").exists()
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def refused_upload(client: ApiClient, base: str, size: int) -> tuple[int, str]:
    """POST `size` bytes as a bundle, all sent before the answer is read (as urllib and a
    browser's XHR do); the refusal's status and reason."""
    request = urllib.request.Request(
        base + "/api/v1/update/bundle", data=bytes(size), method="POST",
        headers={"Content-Type": "application/octet-stream", "X-CSRF-Token": client.csrf})
    with pytest.raises(urllib.error.HTTPError) as refused:
        client.opener.open(request, timeout=120)
    return refused.value.code, json.loads(refused.value.read())["error"]


def with_data_disk(box: NvrServe) -> NvrServe:
    """The box's data directory marked as an initialised data disk (which takes uploads)."""
    (box.tmp / "data").mkdir(exist_ok=True)
    write_marker(box.tmp / "data")
    return box


def test_an_update_upload_refused_before_its_body_is_read_still_gets_its_reason(serve):
    """gunicorn streams request bodies. A refusal known before the body is read (here: no
    data disk) must still reach a client that sends the whole body before it reads (urllib,
    a browser's XHR): the body is read and dropped first, so the owner sees the reason,
    not a connection broken off mid-upload."""
    box = serve()
    client = box.client()
    status, reason = refused_upload(client, box.base, 64 << 20)
    assert status == 409 and "no data disk" in reason
    status, _ = client.json("GET", "/api/v1/users")      # the server goes on serving
    assert status == 200


def test_an_update_upload_that_fills_the_disk_mid_way_still_gets_its_reason(serve):
    """The disk fills while the bundle is coming in (here: the server may write no file
    past 16 MiB): the rest of the body is read and dropped, the owner gets the reason,
    and no partial file is left on the data disk."""
    box = with_data_disk(serve(file_size_limit=16 << 20))
    client = box.client()
    status, reason = refused_upload(client, box.base, 64 << 20)
    assert status == 409, (reason, box.log())
    assert "no more room" in reason and "nothing was installed" in reason
    assert list((box.tmp / "data" / "update-upload").iterdir()) == []
    status, _ = client.json("GET", "/api/v1/users")      # the server goes on serving
    assert status == 200


@pytest.mark.timeout(120)
def test_an_update_upload_may_pause_longer_than_the_send_timeout(serve):
    """A bundle sent over Wi-Fi or a VPN may stall for a while: a pause longer than the
    server's send timeout (which also bounds reads) does not cut the upload off. The
    whole body arrives; this box has no vigil-hwd to install it, which is the answer."""
    box = with_data_disk(serve())
    client = box.client()
    body = bytes(4 << 20)
    conn = http.client.HTTPSConnection("127.0.0.1", box.https_port, timeout=60,
                                       context=box.generated_context())
    conn.putrequest("POST", "/api/v1/update/bundle", skip_host=True)
    for name, value in (("Host", HOSTNAME), ("Content-Type", "application/octet-stream"),
                        ("Content-Length", str(len(body))), ("X-CSRF-Token", client.csrf),
                        ("Cookie", "; ".join(f"{c.name}={c.value}" for c in client.jar))):
        conn.putheader(name, value)
    conn.endheaders()
    conn.send(body[: len(body) // 2])
    time.sleep(https_server.SEND_TIMEOUT + 3)    # the stall itself, not a wait for something
    conn.send(body[len(body) // 2:])
    answer = conn.getresponse()
    reason = json.loads(answer.read())["error"]
    conn.close()
    assert answer.status == 503 and "vigil-hwd" in reason, (answer.status, reason, box.log())
    assert list((box.tmp / "data" / "update-upload").iterdir()) == []
