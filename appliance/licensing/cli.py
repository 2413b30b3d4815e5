"""`nvr license`: keygen and issue (vendor side), show and install (on the box)."""

from __future__ import annotations

import argparse
import json
import uuid
from datetime import date
from pathlib import Path

from appliance.core.errors import InvalidConfig

DEFAULT_LICENCE = "/persist/licence/licence.txt"
BOARD_FILE = Path("/etc/vigil/board")  # the image names its board profile here
DEFAULT_CHANNELS = 4


def default_board(board_file: Path = BOARD_FILE, root: Path = Path("/")) -> str:
    """The board profile's name: /etc/vigil/board names it, "auto" (the image) finds it from
    the device tree; without the file (development, tests) the simulated board."""
    from hw.board import detect_profile_name

    try:
        name = board_file.read_text(encoding="utf-8").strip() or "sim"
    except OSError:
        return "sim"
    return detect_profile_name(root) if name == "auto" else name


def add_licence_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--board", default=None,
                        help="board profile (default: /etc/vigil/board, else sim)")
    parser.add_argument("--licence", default=DEFAULT_LICENCE, help="the installed licence file")


def open_store(args: argparse.Namespace):
    from hw.board import load_profile
    from hw.identity import NoBoardSerial, board_serial

    from appliance.licensing.keys import trusted_keys
    from appliance.licensing.store import LicenceStore

    profile = load_profile(args.board or default_board())
    try:
        serial = board_serial(profile)
    except NoBoardSerial as exc:
        raise InvalidConfig(str(exc)) from None
    section = profile.get("licence", {})
    default = int(section.get("default_channels", DEFAULT_CHANNELS))
    return LicenceStore(Path(args.licence), serial, trusted_keys(section.get("trusted_keys", [])),
                        default)


def register(sub: argparse._SubParsersAction) -> None:
    lic = sub.add_parser("license", aliases=["licence"],
                         help="channel licence: show, install; keygen and issue for the vendor")
    lic.add_argument("action", choices=["show", "install", "keygen", "issue"])
    lic.add_argument("file", nargs="?", help="install: the licence file")
    add_licence_args(lic)
    lic.add_argument("--key", help="issue: the vendor's private key (PEM)")
    lic.add_argument("--serial", help="issue: the device serial the licence is bound to")
    lic.add_argument("--channels", type=int, help="issue: 8, 16 or 32")
    lic.add_argument("--edition", default="standard", help="issue: standard or pro")
    lic.add_argument("--expires", help="issue: last valid day (YYYY-MM-DD); default: never")
    lic.add_argument("--id", help="issue: licence id (default: a new UUID)")
    lic.add_argument("-o", "--out", help="keygen/issue: the file to write")
    lic.add_argument("--json", action="store_true")
    lic.set_defaults(func=cmd_license)


def cmd_license(args: argparse.Namespace) -> int:
    from appliance.licensing import keys
    from appliance.licensing.licence import Licence, sign
    from appliance.licensing.store import read_upload

    if args.action == "keygen":
        if not args.out:
            raise InvalidConfig("keygen: give -o FILE for the private key")
        public = keys.keygen(Path(args.out))
        print(f"private key {args.out} (keep it off the appliance), public key {public}")
        return 0
    if args.action == "issue":
        if not (args.key and args.serial and args.channels is not None and args.out):
            raise InvalidConfig("issue: give --key, --serial, --channels and -o")
        licence = Licence(args.id or str(uuid.uuid4()), args.serial, args.channels,
                          args.edition, date.today().isoformat(), args.expires)
        Path(args.out).write_bytes(sign(licence, keys.load_private(Path(args.key))))
        print(f"licence {licence.licence_id}: {licence.channels} channels for {licence.serial}")
        return 0
    store = open_store(args)
    if args.action == "install":
        if not args.file:
            raise InvalidConfig("install: give the licence file")
        licence = store.install(read_upload(Path(args.file)))
        print(f"licence installed: {licence.channels} channels ({licence.edition}), "
              f"id {licence.licence_id}")
        return 0
    status = store.status()
    if args.json:
        print(json.dumps({**status.to_json(), "serial": store.serial}, indent=1))
        return 0
    source = f"licence {status.licence.licence_id}" if status.licence else "board default"
    print(f"device {store.serial}: {status.channels} channels ({source})")
    if status.problem:
        print(f"the installed licence does not count: {status.problem}")
    return 0
