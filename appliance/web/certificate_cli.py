"""`nvr web-certificate`: the web server's certificate for the owner at the console.

show        what is served: subject, names, SHA-256 fingerprint (compare it with what the
            browser shows on the first visit), validity, generated or owner-supplied
install     CERT KEY: serve the owner's PEM chain and key (checked first; a bad pair is
            refused with the reason and the current certificate stays)
regenerate  a new key and self-signed certificate for this box

The running web server uses the new certificate for new connections without a restart.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from appliance.core.errors import InvalidConfig

READ_LIMIT = 1024 * 1024  # an upload larger than this is not a certificate (tls.py limits)


def register(sub: argparse._SubParsersAction) -> None:
    cert = sub.add_parser("web-certificate", help="the web server's HTTPS certificate: show, "
                          "install the owner's, regenerate")
    cert.add_argument("action", choices=["show", "install", "regenerate"])
    cert.add_argument("certificate", nargs="?", help="install: the PEM certificate chain "
                      "(server certificate first)")
    cert.add_argument("key", nargs="?", help="install: the PEM private key")
    cert.add_argument("--passphrase-file", help="install: the encrypted key's passphrase, "
                      "read from this file ('-' for stdin)")
    cert.add_argument("--tls-dir", default="/persist/tls")
    cert.add_argument("--hostname", default=None, help="regenerate: the box's name "
                      "[default: the system's hostname]")
    cert.add_argument("--addresses", default=None, metavar="IP[,IP...]",
                      help="regenerate: the box's addresses [default: its interfaces']")
    cert.add_argument("--json", action="store_true")
    cert.set_defaults(func=cmd_web_certificate)


def _read(path: str, what: str) -> str:
    try:
        with open(path, "rb") as handle:
            data = handle.read(READ_LIMIT + 1)
    except OSError as exc:
        raise InvalidConfig(f"cannot read the {what} {path}: {exc.strerror}") from None
    if len(data) > READ_LIMIT:
        raise InvalidConfig(f"the {what} {path} is too large to be one")
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidConfig(f"the {what} {path} is not PEM text (a DER file must be "
                            "converted with openssl first)") from None


def _print(status, as_json: bool) -> None:
    from appliance.web.tls import hsts_value

    if as_json:
        print(json.dumps({**status.to_json(), "hsts": hsts_value(status.source)}, indent=1))
        return
    kind = "generated on this box (self-signed)" if status.source == "generated" else \
        "owner-supplied" + (" (self-signed)" if status.self_signed else "")
    print(f"certificate:  {kind}")
    print(f"subject:      {status.subject}")
    if not status.self_signed:
        print(f"issuer:       {status.issuer}")
    print(f"names:        {', '.join(status.dns_names + status.ip_addresses) or '-'}")
    print(f"SHA-256:      {status.fingerprint_sha256}")
    print(f"valid:        {status.not_before:%Y-%m-%d} to {status.not_after:%Y-%m-%d} "
          f"({status.days_left()} days left)")
    print(f"key:          {status.key}, chain of {status.chain_length}")
    if status.missing_names:
        print(f"not named:    {', '.join(status.missing_names)} (browsers reaching the box "
              "by these see a name mismatch)")


def cmd_web_certificate(args: argparse.Namespace) -> int:
    from appliance.web.cli import device_identity
    from appliance.web.tls import TlsStore

    store = TlsStore(Path(args.tls_dir))
    if args.action == "show":
        if not store.served_path.exists():
            raise InvalidConfig(f"no certificate in {args.tls_dir} yet (the web server makes "
                                "one at its first start)")
        _print(store.status(), args.json)
        return 0
    if args.action == "install":
        if not (args.certificate and args.key):
            raise InvalidConfig("install: give the certificate file and the key file")
        passphrase = None
        if args.passphrase_file:
            passphrase = (sys.stdin.read() if args.passphrase_file == "-" else
                          _read(args.passphrase_file, "passphrase file")).rstrip("\r\n")
        status = store.install(_read(args.certificate, "certificate"),
                               _read(args.key, "key"), passphrase)
    else:
        status = store.use_generated(device_identity(args), fresh=True)
    _print(status, args.json)
    if not args.json:
        print("the web server uses it for new connections now (no restart needed)")
    return 0
