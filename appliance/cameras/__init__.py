"""Cameras: discovery and onboarding (ONVIF), identity, credentials and the registry of
the cameras this box records."""
