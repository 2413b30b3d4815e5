"""WS-Security UsernameToken PasswordDigest against a known vector."""

from __future__ import annotations

import base64
from datetime import datetime, timezone

from appliance.cameras.credentials import Credentials
from appliance.cameras.onvif.soap import child, envelope, parse_xml, text
from appliance.cameras.onvif.wsse import created_stamp, password_digest, security_header

# The ONVIF Application Programmer's Guide's example (§6.1.1.3), recomputed by hand from
# the formula with an independent tool:
#   (printf 'LKqI6G/AikKCQrN0zqZFlg==' | base64 -d; printf '2010-09-16T07:50:45Z';
#    printf 'userpassword') | openssl sha1 -binary | base64
NONCE = base64.b64decode("LKqI6G/AikKCQrN0zqZFlg==")
CREATED = "2010-09-16T07:50:45Z"
DIGEST = "tuOSpGlFlIXsozq4HFNeeGeFLEI="


def test_known_vector():
    assert password_digest(NONCE, CREATED, "userpassword") == DIGEST


def test_non_ascii_password_is_utf8():
    # (printf '\x00\x01'; printf '2026-01-01T00:00:00Z'; printf 'p\xc3\xa4ss') \
    #     | openssl sha1 -binary | base64
    assert password_digest(b"\x00\x01", "2026-01-01T00:00:00Z", "p\u00e4ss") == \
        "ze2D+4J7aUxXNLbVHP9HQRxzqAA="


def test_created_is_utc_whole_seconds():
    wall = datetime(2010, 9, 16, 7, 50, 45, 900_000, tzinfo=timezone.utc).timestamp()
    assert created_stamp(wall) == CREATED


def test_header_carries_the_digest_not_the_password():
    wall = datetime(2010, 9, 16, 7, 50, 45, tzinfo=timezone.utc).timestamp()
    header = security_header(Credentials("admin<&>", "userpassword"), wall, nonce=NONCE)
    assert "userpassword" not in header
    root = parse_xml(envelope("<tds:GetDeviceInformation/>", header))
    token = child(root, "Header", "Security", "UsernameToken")
    assert text(token, "Username") == "admin<&>"          # escaped on the wire, parsed back
    assert text(token, "Password") == DIGEST
    assert child(token, "Password").get("Type").endswith("#PasswordDigest")
    assert text(token, "Nonce") == "LKqI6G/AikKCQrN0zqZFlg=="
    assert text(token, "Created") == CREATED


def test_every_header_gets_a_fresh_nonce():
    creds = Credentials("admin", "x")
    first, second = security_header(creds, 0.0), security_header(creds, 0.0)
    assert first != second
