"""The broker's CA uploaded on the Integrations page (PEM text through the API), on the
real app with vigil-hwd's fleet commands on a real control socket: kept beside mqtt.json
where vigil-mqtt reads it and named by ca_file, replaced by a new upload (the old file
removed), forgotten for the public CAs; and the connection test against a real TLS
broker (Debian's mosquitto on loopback, certificate from its own CA) fails at TLS
without the CA and connects with it. (A key or garbage given as the CA is refused with
nothing changed: test_integrations_api's bad settings.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.mqtt.settings import load_settings
from hw.camsim.server import free_port
from tests.integration.test_mqtt_events import (BOX_PASSWORD, BOX_USER, MOSQUITTO,
                                                MOSQUITTO_PASSWD, Broker, make_certificates)
from tests.integration.web.test_integrations_api import GOOD, IntegrationsRig

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def rig(tmp_path):
    r = IntegrationsRig(tmp_path / "box")
    yield r
    r.close()


def uploaded_cas(rig: IntegrationsRig) -> list[str]:
    return sorted(p.name for p in rig.config_dir.glob("mqtt-ca-*.pem"))


def test_an_uploaded_ca_is_kept_where_the_daemon_reads_it_and_replaced_whole(rig, tmp_path):
    ca, _, _ = make_certificates(tmp_path)
    status, view = rig.site.admin.json("PUT", "/api/v1/mqtt/settings",
                                       {**GOOD, "ca_certificate": ca.read_text()})
    assert status == 200, view
    stored = Path(load_settings(rig.config_dir / "mqtt.json").ca_file)
    assert stored.parent == rig.config_dir and stored.read_bytes() == ca.read_bytes()
    assert view["settings"]["ca_file"] == str(stored)
    assert view["ca"]["source"] == "uploaded" and view["ca"]["readable"] is True
    assert view["ca"]["subjects"] == ["CN=Vigil test broker CA"]
    assert f"ca_file '' -> '{stored}'" in rig.audit("mqtt_settings_changed")[0]

    other = tmp_path / "other"
    other.mkdir()
    new_ca, _, _ = make_certificates(other)
    status, view = rig.site.admin.json("PUT", "/api/v1/mqtt/settings",
                                       {"ca_certificate": new_ca.read_text()})
    assert status == 200, view
    replaced = Path(view["settings"]["ca_file"])
    assert replaced != stored and replaced.read_bytes() == new_ca.read_bytes()
    assert uploaded_cas(rig) == [replaced.name]                  # the old one is gone

    status, view = rig.site.admin.json("PUT", "/api/v1/mqtt/settings", {"ca_file": ""})
    assert status == 200 and view["ca"] == {"source": "system"}, view
    assert uploaded_cas(rig) == []


@pytest.mark.skipif(not (Path(MOSQUITTO).exists() and MOSQUITTO_PASSWD),
                    reason="Debian's mosquitto is not installed (Makefile DEBS: mosquitto)")
def test_the_connection_test_checks_the_broker_against_the_ca_given_with_it(rig, tmp_path):
    ca, cert, key = make_certificates(tmp_path)
    broker = Broker(tmp_path / "broker", free_port(), (ca, cert, key))
    broker.start()
    try:
        body = {"host": "127.0.0.1", "port": broker.port, "tls": True,
                "password_action": "set", "username": BOX_USER, "password": BOX_PASSWORD}
        status, answer = rig.site.admin.json("POST", "/api/v1/mqtt/test", body)
        assert status == 200 and answer["ok"] is False and answer["step"] == "tls", answer

        status, answer = rig.site.admin.json("POST", "/api/v1/mqtt/test",
                                             {**body, "ca_certificate": ca.read_text()})
        assert status == 200 and answer["ok"] is True, answer
        assert uploaded_cas(rig) == []                            # a test saves nothing
    finally:
        broker.stop()
