"""The broker CA uploaded as PEM text: what is accepted, what is refused with which words,
and the files kept beside mqtt.json."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from appliance.core.errors import InvalidConfig
from appliance.mqtt import broker_ca


def ca_pem(name: str, days: int = 30) -> tuple[str, str]:
    """(a self-signed CA certificate, its private key), both PEM."""
    now = dt.datetime.now(dt.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


def test_a_ca_and_a_bundle_of_two_are_accepted_with_their_subjects_and_first_expiry():
    first, _ = ca_pem("Home CA", days=30)
    second, _ = ca_pem("Old CA", days=3)
    one = broker_ca.check_ca_pem(first)
    assert one.subjects == ("CN=Home CA",)
    two = broker_ca.check_ca_pem("comment line\r\n" + first + "\n" + second)
    assert two.subjects == ("CN=Home CA", "CN=Old CA")
    assert two.not_after == (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3)).date() \
        .isoformat()
    assert two.pem.count(b"BEGIN CERTIFICATE") == 2 and b"comment" not in two.pem
    assert one.file_name != two.file_name
    assert one.file_name.startswith("mqtt-ca-") and one.file_name.endswith(".pem")


@pytest.mark.parametrize("text, words", [
    ("", "give the PEM text"),
    (None, "give the PEM text"),
    (42, "give the PEM text"),
    ("just some words", "no PEM certificate"),
    ("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
     "cannot be read"),
    ("x" * (64 * 1024 + 1), "too large"),
])
def test_what_is_not_a_ca_certificate_is_refused_with_words(text, words):
    with pytest.raises(InvalidConfig, match=words):
        broker_ca.check_ca_pem(text)


def test_a_private_key_pasted_with_the_certificate_is_refused_not_stored():
    cert, key = ca_pem("Home CA")
    with pytest.raises(InvalidConfig, match="private key"):
        broker_ca.check_ca_pem(cert + key)


def test_files_kept_beside_the_settings_and_the_unused_ones_removed(tmp_path):
    first = broker_ca.check_ca_pem(ca_pem("Home CA")[0])
    second = broker_ca.check_ca_pem(ca_pem("New CA")[0])
    by_hand = tmp_path / "mqtt-ca.pem"
    by_hand.write_text(ca_pem("Technician's CA")[0])
    old = broker_ca.save_ca(tmp_path, first)
    new = broker_ca.save_ca(tmp_path, second)
    assert oct(new.stat().st_mode & 0o777) == "0o644"
    assert broker_ca.is_uploaded(tmp_path, str(new))
    assert not broker_ca.is_uploaded(tmp_path, str(by_hand))
    assert not broker_ca.is_uploaded(tmp_path, "/etc/ssl/certs/mqtt-ca-x.pem")
    assert broker_ca.remove_unused(tmp_path, keep=str(new)) == [old.name]
    assert new.exists() and by_hand.exists() and not old.exists()
    assert broker_ca.describe_file(str(new)) == {"subjects": ["CN=New CA"],
                                                 "not_after": second.not_after}
    assert broker_ca.describe_file(str(tmp_path / "missing.pem")) is None
