"""The owner's MQTT settings (mqtt.json) and the broker's login."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from appliance.cameras.credentials import Credentials
from appliance.config.reference import markdown_rows
from appliance.core.errors import DataLoss
from appliance.mqtt.settings import (MqttSettings, delete_credentials, load_credentials,
                                     load_settings, save_credentials, topic_safe)


def write(tmp_path, **values):
    path = tmp_path / "mqtt.json"
    path.write_text(json.dumps({"format": 1, **values}))
    return path


def test_no_file_means_off(tmp_path):
    settings = load_settings(tmp_path / "mqtt.json")
    assert settings.enabled is False and settings.tls is True


def test_a_good_file_with_the_defaults_filled_in(tmp_path):
    settings = load_settings(write(tmp_path, enabled=True, host="mqtt.example.lan"))
    assert settings.host == "mqtt.example.lan" and settings.effective_port == 8883
    assert settings.discovery and settings.discovery_prefix == "homeassistant"
    assert settings.prefix("nvr-shop") == "vigil/nvr-shop"
    plain = load_settings(write(tmp_path, enabled=True, host="10.0.0.5", tls=False))
    assert plain.effective_port == 1883
    custom = load_settings(write(tmp_path, enabled=True, host="::1", port=18883,
                                 topic_prefix="shops/berlin/nvr1"))
    assert custom.effective_port == 18883 and custom.prefix("x") == "shops/berlin/nvr1"


@pytest.mark.parametrize("values, words", [
    ({"enabled": True}, "mqtt.host: give the broker's host name"),
    ({"host": "mqtt broker"}, "is not a host name or IP address"),
    ({"host": "-bad.example"}, "is not a host name"),
    ({"host": "mqtt.lan\n"}, "is not a host name"),       # "$" would match before "\n"
    ({"host": "10.1"}, "is not a host name"),             # numbers, not names: the C
    ({"host": "2130706433"}, "is not a host name"),       # resolver reads them as IPv4
    ({"topic_prefix": "vigil\n"}, "levels joined by '/'"),
    ({"port": 70000}, "mqtt.port: 70000 is above the maximum 65535"),
    ({"port": "1883"}, "mqtt.port: expected a number"),
    ({"tls": "yes"}, "mqtt.tls: expected true or false"),
    ({"tls": False, "ca_file": "/persist/config/ca.pem"}, "only used with TLS"),
    ({"ca_file": "ca.pem"}, "give an absolute path"),
    ({"topic_prefix": "vigil/+/box"}, "no wildcards"),
    ({"topic_prefix": "vigil/#"}, "no wildcards"),
    ({"topic_prefix": "vigil//box"}, "no empty level"),
    ({"topic_prefix": "/vigil"}, "no empty level"),
    ({"topic_prefix": "$SYS/x"}, "levels joined by '/'"),
    ({"discovery_prefix": ""}, "mqtt.discovery_prefix"),
    ({"queue_max_events": 10}, "mqtt.queue_max_events: 10 is below the minimum 100"),
    ({"retry_max_s": float("nan")}, "mqtt.retry_max_s"),
    ({"password": "secret"}, "unknown setting(s) password"),
])
def test_bad_values_are_refused_naming_the_file_and_the_setting(tmp_path, values, words):
    path = write(tmp_path, **values)
    with pytest.raises(DataLoss) as caught:
        load_settings(path)
    assert str(path) in str(caught.value) and words in str(caught.value)


def test_another_format_or_garbage_is_refused(tmp_path):
    path = tmp_path / "mqtt.json"
    path.write_text('{"format": 2}')
    with pytest.raises(DataLoss, match="format 1"):
        load_settings(path)
    path.write_text("{not json")
    with pytest.raises(DataLoss, match="cannot be read"):
        load_settings(path)


def test_a_host_name_becomes_one_topic_level():
    assert topic_safe("nvr-shop.lan") == "nvr-shop.lan"
    assert topic_safe("a b/c+#") == "a-b-c"
    assert topic_safe("///") == "box"


def test_the_login_is_kept_private_and_never_printed(tmp_path):
    secrets = tmp_path / "secrets" / "mqtt"
    assert load_credentials(secrets) is None
    save_credentials(secrets, Credentials("vigil", "s3cret-Passw0rd"))
    assert load_credentials(secrets) == Credentials("vigil", "s3cret-Passw0rd")
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in secrets.iterdir())
    assert "s3cret" not in repr(load_credentials(secrets))
    delete_credentials(secrets)
    assert load_credentials(secrets) is None


def test_the_design_notes_settings_table_is_the_model():
    doc = (Path(__file__).resolve().parents[3] / "docs/design/mqtt.md").read_text()
    assert "\n".join(markdown_rows(MqttSettings)) in doc
