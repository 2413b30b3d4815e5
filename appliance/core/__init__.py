"""Shared foundations: clock, errors, logging, systemd notification."""
