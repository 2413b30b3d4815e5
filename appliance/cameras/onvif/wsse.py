"""WS-Security UsernameToken with PasswordDigest, as ONVIF cameras expect it.

    PasswordDigest = Base64( SHA-1( nonce + created + password ) )

with the raw nonce bytes (not their Base64 text), `created` as sent in wsu:Created and
the password in UTF-8 (OASIS UsernameToken Profile 1.0 §3.1; ONVIF Application
Programmer's Guide §6.1.1.3). The password never travels; the digest is only valid with
this nonce and timestamp, and cameras refuse a `created` far from their own clock. That
is why onboarding reads the camera's clock first (GetSystemDateAndTime, which ONVIF
allows without authentication) and writes `created` in the camera's time.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import datetime, timezone

from appliance.cameras.credentials import Credentials
from appliance.cameras.onvif.soap import NS, xml_text

PASSWORD_DIGEST = ("http://docs.oasis-open.org/wss/2004/01/"
                   "oasis-200401-wss-username-token-profile-1.0#PasswordDigest")
BASE64_BINARY = ("http://docs.oasis-open.org/wss/2004/01/"
                 "oasis-200401-wss-soap-message-security-1.0#Base64Binary")
NONCE_BYTES = 16


def password_digest(nonce: bytes, created: str, password: str) -> str:
    return base64.b64encode(hashlib.sha1(nonce + created.encode("utf-8")
                                         + password.encode("utf-8")).digest()).decode("ascii")


def created_stamp(wall: float) -> str:
    """xs:dateTime in UTC, whole seconds, `Z`: the form every camera parses."""
    return datetime.fromtimestamp(int(wall), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def security_header(creds: Credentials, camera_wall: float, nonce: bytes | None = None) -> str:
    """The wsse:Security header for one request, `created` at `camera_wall` (our clock plus
    the camera's offset)."""
    nonce = secrets.token_bytes(NONCE_BYTES) if nonce is None else nonce
    created = created_stamp(camera_wall)
    digest = password_digest(nonce, created, creds.password)
    return (f'<wsse:Security s:mustUnderstand="1" xmlns:wsse="{NS["wsse"]}" '
            f'xmlns:wsu="{NS["wsu"]}"><wsse:UsernameToken>'
            f"<wsse:Username>{xml_text(creds.username)}</wsse:Username>"
            f'<wsse:Password Type="{PASSWORD_DIGEST}">{digest}</wsse:Password>'
            f'<wsse:Nonce EncodingType="{BASE64_BINARY}">'
            f"{base64.b64encode(nonce).decode('ascii')}</wsse:Nonce>"
            f"<wsu:Created>{created}</wsu:Created>"
            "</wsse:UsernameToken></wsse:Security>")
