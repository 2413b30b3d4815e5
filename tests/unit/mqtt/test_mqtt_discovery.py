"""Home Assistant discovery: the config topics and payloads, and their templates rendered
(with Jinja2, Home Assistant's template engine) against the state payloads we publish."""

from __future__ import annotations

import json
import re
import time

import jinja2

from appliance.core.files import atomic_write
from appliance.mqtt.discovery import BoxIdentity, discovery_messages
from appliance.mqtt.state import (box_health, camera_states, health_topic, state_messages)
from appliance.recorder.index import Event, RecordingIndex

IDENTITY = BoxIdentity(serial="10000000ABCDEF12", hostname="nvr-shop", model="Raspberry Pi 5",
                       sw_version="1.4.0")
PREFIX = "vigil/nvr-shop"
CONFIG_TOPIC = re.compile(r"^homeassistant/(binary_sensor|sensor)/vigil_10000000abcdef12/"
                          r"[A-Za-z0-9_-]+/config$")


def configs(cameras=("door", "yard"), has_poe=True) -> dict[str, dict]:
    messages = discovery_messages(IDENTITY, "homeassistant", PREFIX, list(cameras), has_poe)
    return {topic: json.loads(payload) for topic, payload in messages.items()}


def render(template: str, payload: dict) -> str:
    return jinja2.Environment().from_string(template).render(value_json=payload)


def test_every_camera_and_the_box_appear_with_valid_topics_and_unique_ids():
    found = configs()
    assert all(CONFIG_TOPIC.match(topic) for topic in found)
    unique = [c["unique_id"] for c in found.values()]
    assert len(unique) == len(set(unique)) == 4 * 2 + 5
    assert {t.split("/")[3] for t in found} >= {
        "door_recording", "door_state", "door_motion", "door_last_motion", "yard_recording",
        "disk_free", "disk_free_percent", "raid_state", "poe_power", "poe_budget"}
    for config in found.values():
        assert config["availability_topic"] == f"{PREFIX}/status"
        assert (config["payload_available"], config["payload_not_available"]) == \
            ("online", "offline")


def test_the_device_blocks_carry_the_board_serial_model_and_version():
    found = configs()
    box = found["homeassistant/sensor/vigil_10000000abcdef12/disk_free/config"]["device"]
    assert box == {"identifiers": ["vigil_10000000abcdef12"], "name": "Vigil NVR nvr-shop",
                   "manufacturer": "Vigil", "model": "Raspberry Pi 5", "sw_version": "1.4.0",
                   "serial_number": "10000000ABCDEF12"}
    door = found["homeassistant/binary_sensor/vigil_10000000abcdef12/door_recording/config"]
    assert door["device"]["via_device"] == "vigil_10000000abcdef12"
    assert door["device"]["identifiers"] == ["vigil_10000000abcdef12_door"]
    assert door["state_topic"] == f"{PREFIX}/camera/door/state"


def test_no_poe_entities_on_a_board_without_poe():
    assert not [t for t in configs(has_poe=False) if "/poe_" in t]


def test_camera_templates_read_the_published_camera_state(tmp_path):
    index = RecordingIndex(tmp_path)
    now_us = int(time.time() * 1e6)
    index.write_status("door", "recording", "h264 1920x1080", now_us, {})
    index.write_status("yard", "unreachable", "connection refused", now_us, {})
    index.add_event(Event("door", "motion", now_us - 5_000_000, now_us - 4_000_000))
    index.open_event("door", "motion", now_us - 1_000_000)
    index.add_event(Event("yard", "tamper", now_us - 1_000_000, None))
    states = camera_states(tmp_path, now_us)
    index.close()
    messages = state_messages(PREFIX, states, {"disk_free_gb": None})
    found = configs()
    door_state = json.loads(messages[f"{PREFIX}/camera/door/state"])
    yard_state = json.loads(messages[f"{PREFIX}/camera/yard/state"])
    base = "homeassistant/{}/vigil_10000000abcdef12/{}/config"

    def value(component, object_id, state):
        return render(found[base.format(component, object_id)]["value_template"], state)

    assert value("binary_sensor", "door_recording", door_state) == "ON"
    assert value("binary_sensor", "yard_recording", yard_state) == "OFF"
    assert value("sensor", "yard_state", yard_state) == "unreachable"
    assert value("binary_sensor", "door_motion", door_state) == "ON"
    assert value("binary_sensor", "yard_motion", yard_state) == "OFF"   # tamper is not motion
    assert value("sensor", "door_last_motion", door_state).startswith(
        door_state["last_motion"][:19])
    assert value("sensor", "yard_last_motion", yard_state) == "None"     # unknown in HA


def test_health_templates_read_disk_raid_and_poe(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    atomic_write(state / "storage.json", json.dumps({"time": time.time(), "raid": {
        "md0": {"state": "healthy", "detail": ""},
        "md1": {"state": "degraded", "detail": "one of two disks is missing"}}}).encode())
    atomic_write(state / "poe.json", json.dumps({"time": time.time(), "budget_w": 60.0,
                                                 "allocated_w": 25.5, "measured_w": 13.04,
                                                 "ports": []}).encode())
    health = box_health(tmp_path, state, allow_boot_media=True)
    assert health["raid_state"] == "degraded"
    assert health["raid_detail"] == "md1: one of two disks is missing"
    assert health["disk_free_gb"] > 0 and 0 < health["disk_free_percent"] <= 100
    payload = json.loads(state_messages(PREFIX, {}, health)[health_topic(PREFIX)])
    found = configs()
    base = "homeassistant/sensor/vigil_10000000abcdef12/{}/config"
    assert render(found[base.format("poe_power")]["value_template"], payload) == "13.0"
    assert render(found[base.format("poe_budget")]["value_template"], payload) == "60.0"
    assert render(found[base.format("raid_state")]["value_template"], payload) == "degraded"
    assert float(render(found[base.format("disk_free")]["value_template"], payload)) > 0


def test_no_data_disk_no_raid_no_poe_read_as_unknown(tmp_path):
    health = box_health(tmp_path / "not-a-disk", None, allow_boot_media=False)
    assert health == {"disk_free_gb": None, "disk_total_gb": None, "disk_free_percent": None,
                      "raid_state": "none", "raid_detail": "", "poe_budget_w": None,
                      "poe_allocated_w": None, "poe_measured_w": None}
    found = configs(has_poe=False)
    template = found["homeassistant/sensor/vigil_10000000abcdef12/disk_free/config"]
    assert render(template["value_template"], health) == "None"
