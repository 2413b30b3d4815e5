"""The Integrations page in a real headless Chromium at phone size, against the real app
and vigil-hwd's fleet commands on a real control socket (test_integrations_api's rig,
systemctl recorded): the MQTT form saves the broker and its login (the password field
empties and the login shows as stored), its connection test says why a closed port
failed; the scrape token shows, a new one replaces it after a confirmation, the allowed
networks save; the restream switches on after a confirmation, shows it starting and then
serving (the page asks again by itself), shows the camera's URLs with the user and no
password, and switches off again; a relay that failed after its start is said so."""

from __future__ import annotations

import json
import socket

import pytest

from appliance.metrics.access import ScrapeToken, load_networks, settings_path, token_path
from appliance.mqtt.settings import load_credentials, load_settings
from tests.integration.web.cdp import Chromium, PHONE, admin_phone_browser, needs_chromium
from tests.integration.web.test_integrations_api import (PASSWORD, RUNNING, START, STOP,
                                                         IntegrationsRig)

pytestmark = [
    needs_chromium(),
    pytest.mark.timeout(180),
]


@pytest.fixture
def rig(tmp_path):
    r = IntegrationsRig(tmp_path / "box")
    yield r
    r.close()


@pytest.fixture
def browser(tmp_path, rig):
    chrome = admin_phone_browser(tmp_path / "chromium-profile", rig.site)
    yield chrome
    chrome.close()


def js(value) -> str:
    return json.dumps(value)


def text_of(browser: Chromium, element_id: str) -> str:
    return browser.evaluate(f"document.getElementById({js(element_id)}).textContent")


def tap(browser: Chromium, selector: str) -> None:
    browser.click(*browser.center_of(selector))


def type_into(browser: Chromium, element_id: str, text: str) -> None:
    """Replace the field's text as a person would: focus, select all, type."""
    browser.evaluate(f"(() => {{ const e = document.getElementById({js(element_id)}); "
                     "e.focus(); e.select(); })()")
    browser.send("Input.insertText", text=text)


def checked(browser: Chromium, element_id: str) -> bool:
    return browser.evaluate(f"document.getElementById({js(element_id)}).checked")


def wait_text(browser: Chromium, element_id: str, start: str, timeout: float = 20) -> str:
    return browser.wait_for(f"document.getElementById({js(element_id)}).textContent", timeout,
                            check=lambda text: bool(text) and text.startswith(start))


def fits_the_phone(browser: Chromium) -> bool:
    return browser.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def exceptions(browser: Chromium) -> list[str]:
    return [line for line in browser.console() if line.startswith("exception")]


def open_page(browser: Chromium, rig: IntegrationsRig) -> None:
    browser.navigate(rig.site.base + "/integrations")
    browser.wait_for("window.vigilIntegrations && window.vigilIntegrations.loaded", 20)


def test_the_mqtt_form_saves_the_broker_and_tests_a_connection(rig, browser, tmp_path):
    open_page(browser, rig)
    assert "Integrations" in browser.evaluate(
        "document.querySelector('nav [aria-current=page]').textContent")
    assert text_of(browser, "mqtt-login-state").startswith("No login stored")
    tap(browser, "#mqtt-enabled")
    type_into(browser, "mqtt-host", "mqtt.home.lan")
    tap(browser, "#mqtt-tls")                                    # TLS off: port 1883
    type_into(browser, "mqtt-username", "vigil-box")
    type_into(browser, "mqtt-password", PASSWORD)
    tap(browser, "#mqtt-save")
    browser.wait_for("document.querySelector('#mqtt-form .form-status').textContent", 20,
                     check=lambda text: text == "Saved. The box connects within seconds.")
    settings = load_settings(rig.config_dir / "mqtt.json")
    assert (settings.enabled, settings.host, settings.tls) == (True, "mqtt.home.lan", False)
    assert load_credentials(rig.mqtt_secrets).password == PASSWORD
    assert browser.evaluate("document.getElementById('mqtt-password').value") == ""
    assert text_of(browser, "mqtt-login-state").startswith("Stored: user vigil-box.")
    assert browser.evaluate("document.getElementById('mqtt-port').placeholder") == "1883"
    assert PASSWORD not in browser.evaluate("document.body.innerText")
    assert fits_the_phone(browser)
    browser.screenshot(tmp_path / "integrations-mqtt-saved.png")

    with socket.socket() as closed:                              # nothing listens there
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    type_into(browser, "mqtt-host", "127.0.0.1")
    type_into(browser, "mqtt-port", str(port))
    tap(browser, "#mqtt-test")
    result = wait_text(browser, "mqtt-test-result", "Not connected")
    assert result.startswith(f"Not connected (connect): nothing accepts connections on "
                             f"127.0.0.1:{port}"), result
    assert browser.evaluate("document.getElementById('mqtt-test-result').className") == \
        "banner bad"
    assert load_settings(rig.config_dir / "mqtt.json").host == "mqtt.home.lan"  # not saved
    browser.screenshot(tmp_path / "integrations-mqtt-test.png")
    assert exceptions(browser) == []


def test_the_scrape_token_and_the_allowed_networks(rig, browser, tmp_path):
    open_page(browser, rig)
    assert browser.evaluate("document.getElementById('metrics-token-box').hidden") is True
    tap(browser, "#metrics-show-token")
    shown = wait_text(browser, "metrics-token", "")
    old = ScrapeToken(token_path(rig.site.config)).read()["token"]
    assert shown.startswith(old) and f"Authorization: Bearer {old}" in shown

    tap(browser, "#metrics-new-token")
    tap(browser, ".confirm button.danger")                       # "New token"
    wait_text(browser, "metrics-token-note", "The new token")
    new = ScrapeToken(token_path(rig.site.config)).read()["token"]
    assert new != old and text_of(browser, "metrics-token").startswith(new)

    type_into(browser, "metrics-networks", "192.168.1.0/24 10.0.0.0/8")
    tap(browser, "#metrics-form button[type=submit]")
    browser.wait_for("document.querySelector('#metrics-form .form-status').textContent", 20,
                     check=lambda text: text == "Saved. It applies at the next scrape.")
    assert [str(n) for n in load_networks(settings_path(rig.site.config))] == [
        "192.168.1.0/24", "10.0.0.0/8"]
    type_into(browser, "metrics-networks", "0.0.0.0/0")          # "everyone" is refused
    tap(browser, "#metrics-form button[type=submit]")
    browser.wait_for("document.querySelector('#metrics-form .form-status').textContent", 20,
                     check=lambda text: "too broad" in text)
    assert len(load_networks(settings_path(rig.site.config))) == 2
    assert fits_the_phone(browser)
    browser.screenshot(tmp_path / "integrations-metrics.png")
    assert exceptions(browser) == []


def test_the_restream_switches_on_with_its_urls_and_off_again(rig, browser, tmp_path):
    open_page(browser, rig)
    assert text_of(browser, "restream-state") == "Off: nothing listens on port 8554."
    assert browser.evaluate("document.getElementById('restream-on').hidden") is True
    rig.systemctl.after_start = ("activating", "start-pre", "success")
    tap(browser, "#restream-switch")
    assert rig.systemctl.commands == []                          # a question first
    tap(browser, ".confirm button.danger")                       # "Switch on"
    wait_text(browser, "restream-state", "On: the restream is starting")
    assert rig.systemctl.commands == [START]
    rig.systemctl.unit = RUNNING                                 # the page asks again by itself
    wait_text(browser, "restream-state", "On: the box serves the cameras on port 8554.")
    urls = browser.evaluate("[...document.querySelectorAll('#restream-urls li')]"
                            ".map(li => li.textContent)")
    assert urls == ["door main: rtsp://restream@127.0.0.1:8554/door/main",
                    "door sub: rtsp://restream@127.0.0.1:8554/door/sub"]
    assert text_of(browser, "restream-user") == "restream"
    assert text_of(browser, "restream-password") == "hidden"
    rig.restream_login.path.parent.mkdir(parents=True, exist_ok=True)   # the relay's first start
    rig.restream_login.path.write_text(json.dumps({"username": "restream",
                                                   "password": "vms-login-secret"}))
    tap(browser, "#restream-password-show")
    wait_text(browser, "restream-password", "vms-login-secret")
    assert fits_the_phone(browser)
    browser.screenshot(tmp_path / "integrations-restream-on.png")

    tap(browser, "#restream-switch")                             # off needs no question
    wait_text(browser, "restream-state", "Off:")
    assert rig.systemctl.commands == [START, STOP]
    assert browser.evaluate("document.getElementById('restream-on').hidden") is True
    assert exceptions(browser) == []


def test_a_restream_that_failed_after_its_start_says_so(rig, browser):
    rig.systemctl.after_start = ("failed", "failed", "exit-code")
    open_page(browser, rig)
    tap(browser, "#restream-switch")
    tap(browser, ".confirm button.danger")
    wait_text(browser, "restream-state", "On, but the restream is not running.")
    assert "stopped with an error (exit-code)" in text_of(browser, "restream-status")
    assert browser.evaluate("document.getElementById('restream-status')"
                            ".classList.contains('error')") is True
    assert exceptions(browser) == []


def test_the_brokers_ca_is_chosen_as_a_file_and_forgotten_again(rig, browser, tmp_path):
    from tests.integration.test_mqtt_events import make_certificates

    ca, _, key = make_certificates(tmp_path)
    rig.site.admin.json("PUT", "/api/v1/mqtt/settings", {"host": "mqtt.home.lan"})
    open_page(browser, rig)
    assert text_of(browser, "mqtt-ca-state") == "The usual public CAs (as a browser)."

    browser.choose_files("#mqtt-ca-upload", key)                 # the wrong file first
    tap(browser, "#mqtt-save")
    browser.wait_for("document.querySelector('#mqtt-form .form-status').textContent", 20,
                     check=lambda text: "never a private key" in (text or ""))
    assert list(rig.config_dir.glob("mqtt-ca-*.pem")) == []

    browser.choose_files("#mqtt-ca-upload", ca)
    tap(browser, "#mqtt-save")
    wait_text(browser, "mqtt-ca-state", "Your CA: CN=Vigil test broker CA, valid until")
    stored = load_settings(rig.config_dir / "mqtt.json").ca_file
    assert open(stored, "rb").read() == ca.read_bytes()
    assert browser.evaluate("document.getElementById('mqtt-ca-upload').value") == ""

    tap(browser, "#mqtt-ca-public")
    assert browser.evaluate("document.getElementById('mqtt-ca-upload').disabled") is True
    tap(browser, "#mqtt-save")
    wait_text(browser, "mqtt-ca-state", "The usual public CAs")
    assert load_settings(rig.config_dir / "mqtt.json").ca_file == ""
    assert list(rig.config_dir.glob("mqtt-ca-*.pem")) == []
    assert fits_the_phone(browser)
    browser.screenshot(tmp_path / "integrations-mqtt-ca.png")
    assert exceptions(browser) == []
