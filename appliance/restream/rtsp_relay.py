#!/usr/bin/python3
"""The restream relay: gst-rtsp-server serving camera streams it takes from the cameras.

Runs under Debian's system interpreter (``/usr/bin/python3``, which has ``gi`` and
gst-rtsp-server), not the project virtualenv, and imports nothing from the project.
The supervisor (``appliance/restream/supervisor.py``) starts it::

    /usr/bin/python3 rtsp_relay.py --address 0.0.0.0 --port 8554 --exit-with-parent PID < spec.json

The spec (JSON on stdin: it holds passwords, so never on the command line)::

    {"user": "restream", "password": "...", "auth_methods": ["digest"],
     "mounts": [{"path": "/cam1/main", "launch": "( rtspsrc name=src ... ! rtph264pay name=pay0 )",
                 "upstream_user": "admin", "upstream_password": "..."}]}

* Every mount is shared: one pipeline, hence one connection to the camera, for all the
  clients of that stream. It is built when the first client asks and torn down after
  the last one leaves, so an unwatched camera costs nothing.
* The camera's login is set on the ``rtspsrc`` named ``src`` (``user-id``, ``user-pw``)
  when the media is built, never put into a launch line or a log line.
* Every mount needs the restream login (RTSP Digest and/or Basic); a client without it
  gets 401 with a challenge (there is no anonymous token, so nothing is open).
* TCP only (RTP interleaved in the RTSP connection): no UDP ports to open or filter.

Prints ``READY <port>`` once listening (the bound port: ``--port 0`` picks a free one),
logs to stderr, exits 0 on SIGTERM/SIGINT, 2 on a bad spec, 3 when it cannot listen,
and within a second of the process given to ``--exit-with-parent`` disappearing.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

# Run as a script, __name__ is "__main__"; name the logger after the module instead.
log = logging.getLogger("appliance.restream.rtsp_relay")

ROLE = "restream"
PARENT_CHECK_INTERVAL_S = 1
EXIT_BAD_SPEC = 2
EXIT_CANNOT_LISTEN = 3
SPEC_KEYS = {"user", "password", "auth_methods", "mounts"}
MOUNT_KEYS = {"path", "launch", "upstream_user", "upstream_password"}
AUTH_METHODS = {"basic": GstRtsp.RTSPAuthMethod.BASIC, "digest": GstRtsp.RTSPAuthMethod.DIGEST}


class SpecError(ValueError):
    """The spec on stdin is not one this relay can serve."""


def check_spec(spec: object) -> dict:
    """The spec as read, or SpecError naming what is wrong (never a password)."""
    if not isinstance(spec, dict) or set(spec) != SPEC_KEYS:
        raise SpecError(f"the spec must be an object with exactly the keys {sorted(SPEC_KEYS)}")
    if not isinstance(spec["user"], str) or not spec["user"] or \
            not isinstance(spec["password"], str) or not spec["password"]:
        raise SpecError("the spec needs a user and a password")
    methods = spec["auth_methods"]
    if not isinstance(methods, list) or not methods or set(methods) - set(AUTH_METHODS):
        raise SpecError(f"auth_methods: a non-empty subset of {sorted(AUTH_METHODS)}")
    if not isinstance(spec["mounts"], list):
        raise SpecError("mounts: a list")
    paths = []
    for mount in spec["mounts"]:
        if not isinstance(mount, dict) or set(mount) != MOUNT_KEYS:
            raise SpecError(f"each mount has exactly the keys {sorted(MOUNT_KEYS)}")
        if not isinstance(mount["path"], str) or not mount["path"].startswith("/"):
            raise SpecError("a mount path starts with /")
        paths.append(mount["path"])
    if len(set(paths)) != len(paths):
        raise SpecError(f"duplicate mount paths in {paths}")
    return spec


class RelayFactory(GstRtspServer.RTSPMediaFactory):
    """One relayed stream: a shared rtspsrc pipeline, admitting the restream role only."""

    def __init__(self, mount: dict):
        super().__init__()
        self.path = mount["path"]
        self.upstream_user = mount["upstream_user"]
        self.upstream_password = mount["upstream_password"]
        self.set_launch(mount["launch"])
        self.set_shared(True)
        self.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
        permissions = Gst.Structure.new_empty(ROLE)
        permissions.set_value("media.factory.access", True)
        permissions.set_value("media.factory.construct", True)
        self.add_role_from_structure(permissions)
        self.connect("media-configure", self.on_media_configure)

    def on_media_configure(self, _factory, media: GstRtspServer.RTSPMedia) -> None:
        source = media.get_element().get_by_name("src")
        if self.upstream_user is not None:
            source.set_property("user-id", self.upstream_user)
            source.set_property("user-pw", self.upstream_password or "")
        media.connect("unprepared", self.on_media_unprepared)
        log.info("upstream open mount=%s", self.path)

    def on_media_unprepared(self, _media: GstRtspServer.RTSPMedia) -> None:
        log.info("upstream closed mount=%s", self.path)


def token_for_role(role: str) -> GstRtspServer.RTSPToken:
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", role)
    return token


def build_auth(spec: dict) -> GstRtspServer.RTSPAuth:
    """The restream login, by the methods the spec names; no default (anonymous) token,
    so a request without credentials is answered 401 with a challenge."""
    auth = GstRtspServer.RTSPAuth()
    methods = GstRtsp.RTSPAuthMethod(0)
    for name in spec["auth_methods"]:
        methods |= AUTH_METHODS[name]
    auth.set_supported_methods(methods)
    token = token_for_role(ROLE)
    if "basic" in spec["auth_methods"]:
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(spec["user"], spec["password"]), token)
    if "digest" in spec["auth_methods"]:
        auth.add_digest(spec["user"], spec["password"], token)
    return auth


def build_server(spec: dict, address: str, port: int) -> GstRtspServer.RTSPServer:
    server = GstRtspServer.RTSPServer()
    server.set_address(address)
    server.set_service(str(port))
    server.set_auth(build_auth(spec))
    mount_points = server.get_mount_points()
    for mount in spec["mounts"]:
        mount_points.add_factory(mount["path"], RelayFactory(mount))
    return server


def watch_parent(parent_pid: int, loop: GLib.MainLoop) -> None:
    """Quit when the process that started us is gone (no orphaned relay holding the port)."""

    def check() -> bool:
        if os.getppid() != parent_pid:
            log.warning("parent process %d is gone, exiting", parent_pid)
            loop.quit()
            return False
        return True

    GLib.timeout_add_seconds(PARENT_CHECK_INTERVAL_S, check)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, required=True, help="RTSP port (0: any free one)")
    parser.add_argument("--exit-with-parent", type=int, metavar="PID", help="quit if PID dies")
    parser.add_argument("--log-level", default="INFO", help="Python logging level")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s restream %(levelname)s %(message)s")
    Gst.init(None)
    try:
        spec = check_spec(json.loads(sys.stdin.read()))
        server = build_server(spec, args.address, args.port)
    except (SpecError, ValueError, GLib.Error) as exc:
        log.error("invalid spec: %s", exc)
        return EXIT_BAD_SPEC
    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signum, loop.quit)
    if args.exit_with_parent:
        watch_parent(args.exit_with_parent, loop)
    if server.attach(None) == 0:
        log.error("cannot listen on %s:%d (port in use?)", args.address, args.port)
        return EXIT_CANNOT_LISTEN
    port = server.get_bound_port()
    log.info("listening address=%s port=%d mounts=%s", args.address, port,
             ",".join(m["path"] for m in spec["mounts"]) or "none")
    print(f"READY {port}", flush=True)
    loop.run()
    log.info("stopping port=%d", port)
    return 0


if __name__ == "__main__":
    status = main(sys.argv[1:])
    sys.stderr.flush()
    sys.stdout.flush()
    # Streaming threads of still-playing media can block interpreter shutdown; the
    # kernel closes every socket, so leave without running finalisers.
    os._exit(status)
