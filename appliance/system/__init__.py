"""The box's own settings: host name, time zone and clock, network, configuration
backup and restore, factory reset.

The settings live in /persist/config/system.json, written only by vigil-hwd (root);
applying them renders files that systemd reads from /run (the root filesystem is
read-only) and runs a few systemd tools with argument lists, never a shell. The OS side
sits behind `backends.SystemOS`: the host implementation, and a sandbox that writes the
same files under a directory and only records the commands. See docs/design/system.md.
"""
