"""Home Assistant MQTT discovery: retained config messages that make the box and its
cameras appear in Home Assistant without hand configuration.

Topic: `<discovery prefix>/<component>/<node id>/<object id>/config`, node id
`vigil_<board serial>` (stable when the box is renamed). The box is one device
(identifiers from the board serial, model, software version); each camera is a device
of its own, connected through the box (`via_device`), with:

    binary_sensor <camera>_recording   on while the camera records
    sensor        <camera>_state       the recorder's state (recording, unreachable, ...)
    binary_sensor <camera>_motion      on while the camera reports motion
    sensor        <camera>_last_motion when motion last began (timestamp)

and the box has disk free (GB and %), RAID state and, on a board with PoE, the power
drawn and the budget. Every entity is available while `<prefix>/status` is "online".
A camera that leaves the recorder's list gets an empty retained config, which removes
it from Home Assistant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from appliance.mqtt.state import as_text, camera_topic, health_topic, status_topic

MANUFACTURER = "Vigil"


@dataclass(frozen=True)
class BoxIdentity:
    serial: str
    hostname: str
    model: str
    sw_version: str

    @property
    def node_id(self) -> str:
        return "vigil_" + re.sub(r"[^a-z0-9_-]", "_", self.serial.lower())


def value_of(key: str) -> str:
    """A template giving the field, or "None" (Home Assistant's unknown) when it is null."""
    return f"{{{{ value_json.{key} if value_json.{key} is not none else 'None' }}}}"


def on_off(key: str) -> str:
    return f"{{{{ 'ON' if value_json.{key} else 'OFF' }}}}"


@dataclass(frozen=True)
class Entity:
    component: str          # binary_sensor or sensor
    object_id: str
    name: str
    state_topic: str
    template: str
    options: tuple[tuple[str, Any], ...] = ()


def camera_entities(prefix: str, camera: str) -> list[Entity]:
    topic = camera_topic(prefix, camera)
    return [
        Entity("binary_sensor", f"{camera}_recording", "Recording", topic, on_off("recording"),
               (("device_class", "running"),)),
        Entity("sensor", f"{camera}_state", "State", topic, "{{ value_json.state }}",
               (("icon", "mdi:cctv"),)),
        Entity("binary_sensor", f"{camera}_motion", "Motion", topic, on_off("motion"),
               (("device_class", "motion"),)),
        Entity("sensor", f"{camera}_last_motion", "Last motion", topic,
               value_of("last_motion"), (("device_class", "timestamp"),)),
    ]


def box_entities(prefix: str, has_poe: bool) -> list[Entity]:
    topic = health_topic(prefix)
    entities = [
        Entity("sensor", "disk_free", "Disk free", topic, value_of("disk_free_gb"),
               (("device_class", "data_size"), ("unit_of_measurement", "GB"),
                ("state_class", "measurement"))),
        Entity("sensor", "disk_free_percent", "Disk free (%)", topic,
               value_of("disk_free_percent"),
               (("unit_of_measurement", "%"), ("state_class", "measurement"),
                ("icon", "mdi:harddisk"))),
        Entity("sensor", "raid_state", "RAID", topic, "{{ value_json.raid_state }}",
               (("icon", "mdi:database"),)),
    ]
    if has_poe:
        entities += [
            Entity("sensor", "poe_power", "PoE power", topic, value_of("poe_measured_w"),
                   (("device_class", "power"), ("unit_of_measurement", "W"),
                    ("state_class", "measurement"))),
            Entity("sensor", "poe_budget", "PoE budget", topic, value_of("poe_budget_w"),
                   (("device_class", "power"), ("unit_of_measurement", "W"))),
        ]
    return entities


def box_device(identity: BoxIdentity) -> dict[str, Any]:
    return {"identifiers": [identity.node_id], "name": f"Vigil NVR {identity.hostname}",
            "manufacturer": MANUFACTURER, "model": identity.model,
            "sw_version": identity.sw_version, "serial_number": identity.serial}


def camera_device(identity: BoxIdentity, camera: str) -> dict[str, Any]:
    return {"identifiers": [f"{identity.node_id}_{camera}"], "name": camera,
            "manufacturer": MANUFACTURER, "model": "camera recorded by Vigil NVR",
            "via_device": identity.node_id}


def config_topic(discovery_prefix: str, identity: BoxIdentity, entity: Entity) -> str:
    return f"{discovery_prefix}/{entity.component}/{identity.node_id}/{entity.object_id}/config"


def config_payload(identity: BoxIdentity, prefix: str, entity: Entity,
                   device: dict[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "name": entity.name,
        "unique_id": f"{identity.node_id}_{entity.object_id}",
        "state_topic": entity.state_topic,
        "value_template": entity.template,
        "availability_topic": status_topic(prefix),
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": device,
        "origin": {"name": "Vigil NVR", "sw_version": identity.sw_version},
    }
    if entity.component == "binary_sensor":
        payload.update(payload_on="ON", payload_off="OFF")
    payload.update(entity.options)
    return payload


def discovery_messages(identity: BoxIdentity, discovery_prefix: str, prefix: str,
                       cameras: list[str], has_poe: bool) -> dict[str, str]:
    """topic -> retained config payload for the box and every camera."""
    messages = {}
    device = box_device(identity)
    for entity in box_entities(prefix, has_poe):
        messages[config_topic(discovery_prefix, identity, entity)] = as_text(
            config_payload(identity, prefix, entity, device))
    for camera in cameras:
        device = camera_device(identity, camera)
        for entity in camera_entities(prefix, camera):
            messages[config_topic(discovery_prefix, identity, entity)] = as_text(
                config_payload(identity, prefix, entity, device))
    return messages
