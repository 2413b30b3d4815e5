"""The owner-facing settings reference, generated from the settings models (README.md)."""

from __future__ import annotations

from appliance.config.cameras import CameraSettings
from appliance.config.model import describe
from appliance.config.recorder import RecorderSettings
from appliance.config.storage import StorageSettings
from appliance.poe.settings import PoeSettings

SECTIONS = {"recorder": RecorderSettings, "storage": StorageSettings, "cameras": CameraSettings,
            "poe": PoeSettings}


def markdown_rows(cls: type = RecorderSettings) -> list[str]:
    return [f"| `{name}` | `{default}` | {text} |" for name, default, text in describe(cls)]
