"""The System page's HTTPS certificate card in a real headless Chromium on a phone-sized
screen, against a real `nvr serve` over HTTPS: the card shows the fingerprint of the
certificate the server really presents; a wrong key is refused with the reason and
nothing changes; the owner's chain and key chosen as files are installed and served at
once; going back serves the box's own certificate with its old fingerprint."""

from __future__ import annotations

import types

import pytest

from tests.integration.web.cdp import PHONE, Chromium, admin_phone_browser, needs_chromium
from tests.integration.web.test_https import (HOSTNAME, handshake, owner_certificate, serve,
                                               sha256, trusting)
from tests.integration.web.test_system_page import tap

__all__ = ["serve"]   # the fixture, used by name

pytestmark = [needs_chromium(), pytest.mark.timeout(240)]


def card_text(browser: Chromium, element_id: str) -> str:
    return browser.evaluate(f"document.getElementById('{element_id}').textContent")


def form_status(browser: Chromium, form: str, starts: str, timeout: float = 20) -> str:
    return browser.wait_for(f"document.querySelector('#{form} .form-status').textContent",
                            timeout, check=lambda text: (text or "").startswith(starts))


def test_the_certificate_card_shows_installs_and_reverts_on_a_phone(serve, tmp_path):
    box = serve()
    admin = box.client()
    presented = sha256(handshake(box.https_port, box.generated_context(), HOSTNAME)[0])
    browser = admin_phone_browser(tmp_path / "chromium-profile",
                                  types.SimpleNamespace(admin=admin, base=box.base))
    try:
        # The box's own certificate is self-signed: this browser was told to accept it, as
        # the owner does after comparing the fingerprint the card shows.
        browser.send("Security.setIgnoreCertificateErrors", ignore=True)
        browser.navigate(f"{box.base}/system")
        browser.wait_for("window.vigilCertificate && vigilCertificate.loaded", 20)
        assert card_text(browser, "cert-fingerprint") == presented
        assert card_text(browser, "cert-source") == "The box's own (self-signed)"
        assert HOSTNAME in card_text(browser, "cert-names")
        assert browser.evaluate("document.getElementById('cert-revert-form').hidden")

        ca, chain, key, fingerprint = owner_certificate("nvr.home.example")
        _, _, other_key, _ = owner_certificate("elsewhere.example")
        (tmp_path / "chain.pem").write_text(chain)
        (tmp_path / "key.pem").write_text(key)
        (tmp_path / "other.key").write_text(other_key)

        # A key of another certificate: refused with the reason, the old one still served.
        browser.choose_files("#cert-file", tmp_path / "chain.pem")
        browser.choose_files("#cert-key-file", tmp_path / "other.key")
        tap(browser, "#cert-form button[type=submit]")
        form_status(browser, "cert-form", "the private key does not belong to the certificate")
        # (the page, an error naming a long path included, stays as wide as the phone)
        assert browser.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        assert sha256(handshake(box.https_port, box.generated_context(), HOSTNAME)[0]) == \
            presented

        browser.choose_files("#cert-key-file", tmp_path / "key.pem")
        tap(browser, "#cert-form button[type=submit]")
        form_status(browser, "cert-form", "Installed")
        assert card_text(browser, "cert-fingerprint") == fingerprint
        assert card_text(browser, "cert-source") == "Yours (installed)"
        assert "Test Owner CA" in card_text(browser, "cert-subject")
        assert sha256(handshake(box.https_port, trusting(ca), "nvr.home.example")[0]) == \
            fingerprint

        # It does not name the box's own host name: the card says a browser will warn.
        assert not browser.evaluate("document.getElementById('cert-warning').hidden")
        assert HOSTNAME in card_text(browser, "cert-warning")

        tap(browser, "#cert-revert-form button[type=submit]")
        form_status(browser, "cert-form", "The box's own certificate is served again")
        assert card_text(browser, "cert-fingerprint") == presented
        assert browser.evaluate("document.getElementById('cert-revert-form').hidden")
        assert sha256(handshake(box.https_port, box.generated_context(), HOSTNAME)[0]) == \
            presented
        status, audit = admin.json("GET", "/api/v1/audit")
        assert status == 200
        assert {"certificate_installed", "certificate_generated_restored"} <= \
            {entry["what"] for entry in audit["entries"]}, audit
    finally:
        browser.close()
