"""Vigil NVR appliance: recorder, storage, cameras, PoE, licensing, web UI."""

__version__ = "0.1.0"
