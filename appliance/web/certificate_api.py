"""The web server's certificate through the API (admin): what is served, installing the
owner's, going back to the device's own.

The running server picks a change up by itself: it reloads `server.pem` for the next
connection (web/https_server.py, CertificateReloader), no restart. Connections already
open keep the old certificate until they close; the page's next request may open a new
one, and then the browser may ask the owner to accept the new certificate.
"""

from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, request

from appliance.core.errors import InvalidConfig, Unavailable
from appliance.web import tls
from appliance.web.security import accounts, client_address, require_role
from appliance.web.services import required

IDENTITY = "VIGIL_TLS_IDENTITY"  # app config: () -> tls.DeviceIdentity (nvr serve sets it)

certificate = Blueprint("certificate", __name__)


def _store() -> tls.TlsStore:
    return tls.TlsStore(required("tls_dir"))


def _identity() -> tls.DeviceIdentity:
    factory = current_app.config.get(IDENTITY)
    return factory() if factory is not None else tls.discover_identity()


def _answer(status: tls.CertificateStatus) -> dict:
    hsts = tls.hsts_value(status.source)
    return {**status.to_json(), "hsts": hsts,
            "applies": "to new connections at once, without a restart"}


@certificate.get("/system/certificate")
@require_role("admin")
def show():
    store = _store()
    if not store.served_path.exists():
        raise Unavailable("no certificate yet: the web server makes one at its first start")
    return jsonify(_answer(store.status(_identity())))


@certificate.post("/system/certificate")
@require_role("admin")
def install():
    """Body: {"certificate": PEM chain (leaf first), "key": PEM private key, "passphrase":
    only for an encrypted key}. A bad pair is refused with the reason; nothing changes."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InvalidConfig("the body must be a JSON object")
    cert, key = data.get("certificate"), data.get("key")
    if not isinstance(cert, str) or not cert.strip():
        raise InvalidConfig("give the certificate (PEM text) as `certificate`")
    if not isinstance(key, str) or not key.strip():
        raise InvalidConfig("a certificate without its private key cannot be served: give "
                            "the key (PEM text) as `key`")
    passphrase = data.get("passphrase")
    if passphrase is not None and not isinstance(passphrase, str):
        raise InvalidConfig("`passphrase` must be text")
    status = _store().install(cert, key, passphrase or None, _identity())
    accounts().audit(g.session.user.username, "certificate_installed",
                     f"{status.subject}, sha256 {status.fingerprint_sha256}, until "
                     f"{status.not_after.date()}", client_address())
    return jsonify(_answer(status)), 201


@certificate.delete("/system/certificate")
@require_role("admin")
def revert():
    """Back to the device's own certificate (the one kept from before, same fingerprint);
    body {"regenerate": true} makes a new key and certificate instead."""
    data = request.get_json(silent=True)
    if data is None:
        data = {}
    if not isinstance(data, dict) or not isinstance(data.get("regenerate", False), bool):
        raise InvalidConfig('the body is {} or {"regenerate": true}')
    fresh = data.get("regenerate", False)
    status = _store().use_generated(_identity(), fresh=fresh)
    accounts().audit(g.session.user.username,
                     "certificate_regenerated" if fresh else "certificate_generated_restored",
                     f"sha256 {status.fingerprint_sha256}", client_address())
    return jsonify(_answer(status))
