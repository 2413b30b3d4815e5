"""The web server's certificate (appliance/web/tls.py): made on the device with the box's
names, described with the fingerprint browsers show, replaced by the owner's only after
every check, and every bad owner certificate leaves the one in force untouched."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import os
import ssl
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appliance.cli import main
from appliance.core.errors import InvalidConfig
from appliance.web import tls
from appliance.web.accounts import AccountStore
from appliance.web.app import create_app
from appliance.web.certificate_api import IDENTITY
from appliance.web.http_redirect import redirect_app
from appliance.web.https_server import CertificateReloader, HostNames
from appliance.web.services import WebPaths

NOW = dt.datetime.now(dt.timezone.utc)
BOX = tls.DeviceIdentity("vigil-box", ("192.168.1.20", "fd00::20"))
ADMIN = {"username": "owner", "password": "correct horse battery"}


# --- certificates an owner might bring ----------------------------------------------------

def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def key_pem(key, password: bytes | None = None) -> str:
    encryption = serialization.BestAvailableEncryption(password) if password else \
        serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             encryption).decode()


def make_cert(subject: str, key, issuer_name: str | None = None, issuer_key=None,
              not_before: dt.datetime | None = None, not_after: dt.datetime | None = None,
              dns: tuple[str, ...] = (), ca: bool = False, usage=ExtendedKeyUsageOID.SERVER_AUTH
              ) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name or subject)])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before or NOW - dt.timedelta(days=1))
               .not_valid_after(not_after or NOW + dt.timedelta(days=90))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if dns:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
    if not ca and usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    signer = issuer_key or key
    algorithm = None if isinstance(signer, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(signer, algorithm)


@pytest.fixture(scope="module")
def owner_ca():
    key = ec.generate_private_key(ec.SECP256R1())
    return key, make_cert("Owner Home CA", key, ca=True,
                          not_after=NOW + dt.timedelta(days=3650))


@pytest.fixture(scope="module")
def owner_pair(owner_ca):
    """A leaf for nvr.home.example issued by the owner's CA: (chain PEM, key PEM, leaf)."""
    ca_key, ca_cert = owner_ca
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = make_cert("nvr.home.example", key, "Owner Home CA", ca_key,
                     dns=("nvr.home.example",))
    return pem(leaf) + pem(ca_cert), key_pem(key), leaf


@pytest.fixture
def store(tmp_path):
    store = tls.TlsStore(tmp_path / "tls")
    store.ensure(BOX)
    return store


def served_bytes(store) -> bytes:
    return store.served_path.read_bytes()


# --- generation ---------------------------------------------------------------------------

def test_first_start_generates_a_p256_certificate_for_the_box_names(tmp_path):
    store = tls.TlsStore(tmp_path / "tls")
    status = store.ensure(BOX)
    assert status.source == "generated" and status.self_signed
    assert status.dns_names == ["vigil-box", "vigil-box.local"]
    assert status.ip_addresses == ["192.168.1.20", "fd00::20", "127.0.0.1", "::1"]
    assert status.key == "ECDSA P-256" and status.missing_names == []
    assert "CN=vigil-box" in status.subject
    assert (status.not_after - NOW).days >= 3650 - 2

    _, [cert] = tls.read_served(store.served_path)
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"
    cert.verify_directly_issued_by(cert)  # self-signed, and the signature holds
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert ExtendedKeyUsageOID.SERVER_AUTH in \
        cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    # Secrets: the directory and both files are for the web server's user only.
    assert oct((tmp_path / "tls").stat().st_mode & 0o777) == "0o700"
    for name in ("server.pem", "generated.pem"):
        assert oct((tmp_path / "tls" / name).stat().st_mode & 0o777) == "0o600"
    # The server loads it as it is: key and chain in one file.
    tls.server_context(store.served_path)
    assert not list((tmp_path / "tls").glob(".*.tmp"))


def test_the_fingerprint_is_the_one_openssl_and_browsers_show(store):
    status = store.status()
    _, [cert] = tls.read_served(store.served_path)
    der = cert.public_bytes(serialization.Encoding.DER)
    assert status.fingerprint_sha256 == hashlib.sha256(der).digest().hex(":").upper()
    out = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256"],
                         input=pem(cert), capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().split("=", 1)[1] == status.fingerprint_sha256


def test_a_second_start_keeps_the_certificate_and_each_box_gets_its_own(tmp_path, store):
    first = store.status().fingerprint_sha256
    assert store.ensure(BOX).fingerprint_sha256 == first
    other = tls.TlsStore(tmp_path / "other").ensure(BOX)
    assert other.fingerprint_sha256 != first and other.serial != store.status().serial


def test_a_clock_still_at_1970_does_not_make_a_certificate_that_expires_soon(tmp_path):
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    status = tls.TlsStore(tmp_path / "tls", now=lambda: epoch).ensure(BOX)
    assert status.not_before < epoch
    assert status.not_after >= tls.CLOCK_FLOOR + dt.timedelta(days=3650)


def test_a_hostname_that_is_no_dns_name_gets_addresses_only(tmp_path):
    status = tls.TlsStore(tmp_path / "tls").ensure(tls.DeviceIdentity("my_box", ("10.0.0.5",)))
    assert status.dns_names == [] and "CN=vigil-nvr" in status.subject
    assert status.ip_addresses == ["10.0.0.5", "127.0.0.1", "::1"]


def test_the_status_names_box_addresses_the_certificate_lacks(store):
    moved = tls.DeviceIdentity("vigil-box", ("192.168.1.77",))
    assert store.status(moved).missing_names == ["192.168.1.77"]


def test_a_damaged_served_file_is_kept_aside_and_the_box_serves_again(store):
    store.served_path.write_text("Vigil-Source: owner\n-----BEGIN CERTIFICATE-----\nAAAA\n")
    status = store.ensure(BOX)
    assert status.source == "generated"
    assert (store.dir / "server.pem.damaged").exists()
    tls.server_context(store.served_path)


def test_discovered_identity_has_this_machines_name_and_no_loopback():
    found = tls.discover_identity()
    assert found.hostname
    assert not any(ipaddress.ip_address(a).is_loopback for a in found.addresses)


# --- the owner's certificate --------------------------------------------------------------

def test_an_owner_certificate_replaces_the_generated_one_and_going_back_restores_it(
        store, owner_pair):
    chain, key, leaf = owner_pair
    generated = store.status().fingerprint_sha256
    status = store.install(chain, key)
    assert status.source == "owner" and not status.self_signed
    assert status.dns_names == ["nvr.home.example"] and status.chain_length == 2
    assert status.fingerprint_sha256 == tls.fingerprint(leaf)
    assert tls.hsts_value("owner") and tls.hsts_value("generated") is None
    tls.server_context(store.served_path)
    assert oct(store.served_path.stat().st_mode & 0o777) == "0o600"

    back = store.use_generated(BOX)
    assert back.source == "generated" and back.fingerprint_sha256 == generated
    fresh = store.use_generated(BOX, fresh=True)
    assert fresh.fingerprint_sha256 != generated
    assert store.use_generated(BOX).fingerprint_sha256 == fresh.fingerprint_sha256


def test_an_encrypted_key_is_accepted_with_its_passphrase_and_stored_decrypted(store):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = make_cert("nvr.rsa.example", key, dns=("nvr.rsa.example",))
    status = store.install(pem(cert), key_pem(key, b"open sesame"), "open sesame")
    assert status.key == "RSA 2048" and status.self_signed
    text = store.served_path.read_text()
    assert "BEGIN PRIVATE KEY" in text and "ENCRYPTED" not in text


def bad_uploads(owner_pair, owner_ca):
    """(case, certificate, key, passphrase, the words the refusal must contain)."""
    chain, key, _ = owner_pair
    ca_key, ca_cert = owner_ca
    other = ec.generate_private_key(ec.SECP256R1())
    expired_key = ec.generate_private_key(ec.SECP256R1())
    expired = make_cert("old.example", expired_key, not_before=NOW - dt.timedelta(days=400),
                        not_after=NOW - dt.timedelta(days=10))
    future = make_cert("new.example", expired_key, not_before=NOW + dt.timedelta(days=10),
                       not_after=NOW + dt.timedelta(days=100))
    enc_key = ec.generate_private_key(ec.SECP256R1())
    enc_cert = make_cert("enc.example", enc_key)
    ed_key = ed25519.Ed25519PrivateKey.generate()
    ed_cert = make_cert("ed.example", ed_key)
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    small_cert = make_cert("small.example", small)
    p521 = ec.generate_private_key(ec.SECP521R1())
    p521_cert = make_cert("p521.example", p521)
    client_only = make_cert("client.example", other, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    leaf_only = chain.split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
    der = owner_pair[2].public_bytes(serialization.Encoding.DER).decode("latin-1")
    return [
        ("garbage", "hello, this is not a certificate", key, None, "not PEM text"),
        ("damaged PEM", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
         key, None, "cannot be read"),
        ("DER instead of PEM", der, key, None, "not PEM text"),
        ("expired", pem(expired), key_pem(expired_key), None, "expired on"),
        ("not yet valid", pem(future), key_pem(expired_key), None, "not valid yet"),
        ("key mismatch", chain, key_pem(other), None, "does not belong"),
        ("encrypted key without passphrase", pem(enc_cert), key_pem(enc_key, b"pw"), None,
         "encrypted"),
        ("wrong passphrase", pem(enc_cert), key_pem(enc_key, b"pw"), "guess",
         "passphrase does not open"),
        ("2 MB", chain + "x" * 2_000_000, key, None, "larger than"),
        ("2 MB key", chain, key + "x" * 2_000_000, None, "larger than"),
        ("private key in the certificate field", key, key, None, "holds a private key"),
        ("certificate without key", chain, "", None, "without its private key"),
        ("certificate in the key field", chain, chain, None, "not a private key"),
        ("Ed25519", pem(ed_cert), key_pem(ed_key), None, "do not accept Ed25519"),
        ("RSA 1024", pem(small_cert), key_pem(small), None, "2048 to 8192 bits"),
        ("P-521", pem(p521_cert), key_pem(p521), None, "P-256 or P-384"),
        ("chain out of order", pem(ca_cert) + leaf_only, key, None, "does not belong"),
        ("wrong issuer", leaf_only + pem(make_cert("Someone Else", other, ca=True)), key,
         None, "did not issue"),
        ("client certificate", pem(client_only), key_pem(other), None, "serverAuth"),
    ]


CASES = ["garbage", "damaged PEM", "DER instead of PEM", "expired", "not yet valid",
         "key mismatch", "encrypted key without passphrase", "wrong passphrase", "2 MB",
         "2 MB key", "private key in the certificate field", "certificate without key",
         "certificate in the key field", "Ed25519", "RSA 1024", "P-521", "chain out of order",
         "wrong issuer", "client certificate"]


@pytest.mark.parametrize("case", CASES)
def test_a_bad_owner_certificate_is_refused_and_the_current_one_stays(case, store, owner_pair,
                                                                      owner_ca):
    [(_, cert, key, passphrase, words)] = [c for c in bad_uploads(owner_pair, owner_ca)
                                           if c[0] == case]
    before = served_bytes(store)
    with pytest.raises(InvalidConfig) as refused:
        store.install(cert, key, passphrase)
    assert words in str(refused.value)
    material = [line for line in (cert + key).splitlines() if len(line) >= 16 and
                "-----" not in line]
    assert not any(line in str(refused.value) for line in material)  # nothing quoted back
    assert served_bytes(store) == before
    assert not (store.dir / ".trial.pem").exists()


def test_bad_cases_cover_the_list():
    assert len(CASES) == len(set(CASES)) == 19


# --- the server side: reload, names, redirect ---------------------------------------------

def test_the_reloader_serves_a_new_file_at_once_and_keeps_the_old_on_a_broken_one(
        store, owner_pair):
    reloader = CertificateReloader(store.served_path)
    first = reloader.context()
    assert reloader.context() is first  # unchanged file: the same context, no reload
    store.install(*owner_pair[:2])
    second = reloader.context()
    assert second is not first and reloader.source == "owner"
    assert reloader.fingerprint == tls.fingerprint(owner_pair[2])
    store.served_path.write_text("broken")
    assert reloader.context() is second and reloader.source == "owner"


def test_host_names_follow_the_served_certificate(store, owner_pair):
    names = HostNames(BOX.dns_names(), store.served_path)
    assert sorted(set(names)) == ["vigil-box", "vigil-box.local"]
    store.install(*owner_pair[:2])
    assert "nvr.home.example" in set(names)


def test_host_names_follow_the_hostname_file(tmp_path):
    """A box renamed on the System page answers to its new name at once."""
    hostname = tmp_path / "hostname"
    names = HostNames(BOX.dns_names(), None, hostname)
    assert sorted(set(names)) == ["vigil-box", "vigil-box.local"]      # no file yet
    hostname.write_text("garage\n")
    assert sorted(set(names)) == ["garage", "garage.local", "vigil-box", "vigil-box.local"]
    hostname.write_text("shop-front.example.net\n")
    assert "shop-front.example.net" in set(names) and "garage" not in set(names)
    for bad in ("-bad-\n", "a b\n", "x" * 300, "\xff\n"):
        hostname.write_text(bad, errors="surrogateescape")
        assert sorted(set(names)) == ["vigil-box", "vigil-box.local"], bad
    hostname.unlink()
    assert sorted(set(names)) == ["vigil-box", "vigil-box.local"]


def test_every_response_gets_a_send_timeout_and_hsts_only_with_an_owner_certificate():
    import socket

    from appliance.web.https_server import SEND_TIMEOUT, ServerApp

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    for source, scheme, hsts in (("generated", "https", None), ("owner", "http", None),
                                 ("owner", "https", f"max-age={tls.HSTS_MAX_AGE}")):
        ours, theirs = socket.socketpair()
        with ours, theirs:
            assert ours.gettimeout() is None
            seen = {}
            body = ServerApp(app, lambda: source)(
                {"gunicorn.socket": ours, "wsgi.url_scheme": scheme},
                lambda status, headers, exc_info=None: seen.update(headers))
            assert list(body) == [b"ok"] and ours.gettimeout() == SEND_TIMEOUT
            assert seen.get("Strict-Transport-Security") == hsts, (source, scheme)


def call(app, host: str | None, target: str = "/", method: str = "GET"):
    path, _, query = target.partition("?")
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
               "REQUEST_URI": target, "wsgi.url_scheme": "http"}
    if host is not None:
        environ["HTTP_HOST"] = host
    seen = {}

    def start_response(status, headers):
        seen["status"], seen["headers"] = status, dict(headers)
    body = b"".join(app(environ, start_response))
    return int(seen["status"].split()[0]), seen["headers"], body


@pytest.mark.parametrize("host, target, location", [
    ("192.168.1.20", "/live?cam=door", "https://192.168.1.20:8443/live?cam=door"),
    ("vigil-box.local:80", "/a%2Fb", "https://vigil-box.local:8443/a%2Fb"),
    ("[fd00::20]:80", "/", "https://[fd00::20]:8443/"),
    ("[::1]evil.example", "/", "https://[::1]:8443/"),
    ("localhost", "//evil.example/x", "https://localhost:8443//evil.example/x"),
])
def test_the_redirect_keeps_host_and_path_and_changes_only_scheme_and_port(host, target,
                                                                           location):
    status, headers, _ = call(redirect_app(lambda: ["vigil-box", "vigil-box.local"], 8443),
                              host, target, "POST")
    assert status == 308 and headers["Location"] == location


def test_the_redirect_drops_the_port_for_443_and_never_leaves_the_box():
    app = redirect_app(lambda: ["vigil-box"], 443)
    assert call(app, "vigil-box:80", "/x")[1]["Location"] == "https://vigil-box/x"
    for host in ("evil.example", "evil.example:80", "vigil-box.evil.example", "127.0.0.1@evil"):
        status, headers, body = call(app, host)
        assert status == 421 and "Location" not in headers, host
        assert json.loads(body) == {"error": "unknown host name"}
    status, headers, _ = call(app, None)
    assert status == 400 and "Location" not in headers
    # An absolute-form target names another host: only its path is kept.
    for target, location in (("http://evil.example/steal?x=1", "https://vigil-box/steal?x=1"),
                             ("*", "https://vigil-box/")):
        assert call(app, "vigil-box", target)[1]["Location"] == location


# --- the API ------------------------------------------------------------------------------

@pytest.fixture
def api(tmp_path):
    accounts = AccountStore(tmp_path / "accounts.sqlite3")
    app = create_app(tmp_path / "data", accounts, paths=WebPaths(tls_dir=tmp_path / "tls"))
    app.config[IDENTITY] = lambda: BOX
    tls.TlsStore(tmp_path / "tls").ensure(BOX)
    client = app.test_client()
    csrf = client.post("/api/v1/setup", json=ADMIN).json["csrf"]
    yield app, client, {"X-CSRF-Token": csrf}, tls.TlsStore(tmp_path / "tls")
    accounts.close()


def test_the_api_shows_installs_and_reverts_for_admins_only(api, owner_pair):
    app, client, csrf, store = api
    shown = client.get("/api/v1/system/certificate").json
    assert shown["source"] == "generated" and shown["hsts"] is None
    assert shown["fingerprint_sha256"] == store.status().fingerprint_sha256
    chain, key, leaf = owner_pair
    resp = client.post("/api/v1/system/certificate", json={"certificate": chain, "key": key},
                       headers=csrf)
    assert resp.status_code == 201, resp.json
    assert resp.json["fingerprint_sha256"] == tls.fingerprint(leaf)
    assert resp.json["source"] == "owner" and resp.json["hsts"].startswith("max-age=")
    assert client.get("/api/v1/system/certificate").json["source"] == "owner"
    resp = client.delete("/api/v1/system/certificate", json={}, headers=csrf)
    assert resp.status_code == 200 and resp.json["fingerprint_sha256"] == \
        shown["fingerprint_sha256"]
    resp = client.delete("/api/v1/system/certificate", json={"regenerate": True}, headers=csrf)
    assert resp.status_code == 200 and resp.json["fingerprint_sha256"] != \
        shown["fingerprint_sha256"]
    audit = [e["what"] for e in app.config["VIGIL_ACCOUNTS"].audit_log()]
    assert {"certificate_installed", "certificate_generated_restored",
            "certificate_regenerated"} <= set(audit)

    assert client.post("/api/v1/users", headers=csrf, json={
        "username": "op", "password": "a long password", "role": "operator"}).status_code == 201
    operator = app.test_client()
    operator.post("/api/v1/login", json={"username": "op", "password": "a long password"})
    assert operator.get("/api/v1/system/certificate").status_code == 403
    assert operator.delete("/api/v1/system/certificate", json={}).status_code == 403


def test_a_bad_upload_through_the_api_is_a_400_with_the_reason_and_changes_nothing(
        api, owner_pair):
    app, client, csrf, store = api
    before = served_bytes(store)
    chain, key, _ = owner_pair
    for body, words in (({"certificate": key, "key": key}, "holds a private key"),
                        ({"certificate": chain}, "without its private key"),
                        ({"certificate": chain, "key": key, "passphrase": 5}, "must be text"),
                        ([], "JSON object")):
        resp = client.post("/api/v1/system/certificate", json=body, headers=csrf)
        assert resp.status_code == 400 and words in resp.json["error"], resp.json
    resp = client.post("/api/v1/system/certificate", headers=csrf,
                       json={"certificate": chain + "x" * 2_000_000, "key": key})
    assert resp.status_code == 413
    assert client.delete("/api/v1/system/certificate", json={"regenerate": "yes"},
                         headers=csrf).status_code == 400
    assert served_bytes(store) == before
    assert "certificate_installed" not in [e["what"] for e in
                                           app.config["VIGIL_ACCOUNTS"].audit_log()]


def test_without_a_tls_dir_the_api_says_so(tmp_path):
    accounts = AccountStore(tmp_path / "accounts.sqlite3")
    app = create_app(tmp_path / "data", accounts)
    client = app.test_client()
    client.post("/api/v1/setup", json=ADMIN)
    resp = client.get("/api/v1/system/certificate")
    assert resp.status_code == 503 and "tls dir" in resp.json["error"]
    accounts.close()


# --- the owner's command line -------------------------------------------------------------

def test_nvr_web_certificate_show_install_regenerate(tmp_path, owner_pair, capsys):
    tls_dir = tmp_path / "tls"
    assert main(["web-certificate", "show", "--tls-dir", str(tls_dir)]) == 2
    assert "no certificate" in capsys.readouterr().err
    assert main(["web-certificate", "regenerate", "--tls-dir", str(tls_dir), "--hostname",
                 "vigil-box", "--addresses", "192.168.1.20"]) == 0
    made = capsys.readouterr().out
    assert "generated on this box" in made and "vigil-box.local" in made
    assert main(["web-certificate", "show", "--json", "--tls-dir", str(tls_dir)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["fingerprint_sha256"] in made and shown["ip_addresses"][0] == "192.168.1.20"

    chain, key, leaf = owner_pair
    (tmp_path / "chain.pem").write_text(chain)
    (tmp_path / "key.pem").write_text(key)
    (tmp_path / "wrong.pem").write_text(key_pem(ec.generate_private_key(ec.SECP256R1())))
    assert main(["web-certificate", "install", str(tmp_path / "chain.pem"),
                 str(tmp_path / "wrong.pem"), "--tls-dir", str(tls_dir)]) == 2
    assert "does not belong" in capsys.readouterr().err
    assert main(["web-certificate", "install", str(tmp_path / "chain.pem"),
                 str(tmp_path / "key.pem"), "--tls-dir", str(tls_dir)]) == 0
    out = capsys.readouterr().out
    assert tls.fingerprint(leaf) in out and "owner-supplied" in out
    assert "no restart" in out
    (tmp_path / "big.pem").write_bytes(b"x" * (2 * 1024 * 1024))
    assert main(["web-certificate", "install", str(tmp_path / "big.pem"),
                 str(tmp_path / "key.pem"), "--tls-dir", str(tls_dir)]) == 2
    assert "too large" in capsys.readouterr().err
    assert tls.TlsStore(tls_dir).status().fingerprint_sha256 == tls.fingerprint(leaf)


def test_server_context_refuses_old_tls(store):
    context = tls.server_context(store.served_path)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert os.path.exists(store.served_path)
