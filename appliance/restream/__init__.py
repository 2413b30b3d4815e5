"""RTSP restream: the box serves each camera's main and sub stream on the LAN.

A VMS on the LAN (Milestone, Frigate, Blue Iris...) cannot reach the cameras on the box's
isolated PoE network; it takes them from the box instead, at
rtsp://<box>:8554/<camera>/main and /<camera>/sub, behind one restream login. The relay
is gst-rtsp-server copying RTP payloads (no decoding, no re-encoding), one upstream
connection per stream however many clients watch (docs/design/restream.md).

* `plan`: which mounts, their pipelines and the spec the relay reads (pure Python).
* `login`: the restream user and password, made at first use, kept 0600.
* `supervisor`: runs `rtsp_relay.py` and restarts it when the cameras change.
* `rtsp_relay.py`: the relay itself, run by Debian's /usr/bin/python3 (it needs `gi`).
* `cli`: `nvr restream urls|run`.
"""
