"""Events to an owner's MQTT broker, with Home Assistant discovery (docs/design/mqtt.md)."""
