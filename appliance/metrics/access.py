"""Who may scrape: the holder of the box's scrape token, or an address in the owner's
allowed networks (none by default: token only).

Prometheus has no session, so `/metrics` cannot sit behind the login. The token is 256
random bits made at first use and kept beside the appliance TOML in
`metrics-token.json` (0600, written atomically: a power cut leaves the old token or the
new one); an admin reads it, or replaces it, through the web API. It is compared in
constant time (as SHA-256 digests, so not even its length shows in the timing). The
allowed networks live in `metrics.json` beside it, an owner settings file like
retention.json.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from appliance.config.owner_file import read_owner_file, write_owner_file
from appliance.core.errors import DataLoss, InvalidConfig
from appliance.core.files import atomic_write

TOKEN_NAME = "metrics-token.json"
SETTINGS_NAME = "metrics.json"
SETTINGS_FORMAT = 1
MAX_NETWORKS = 32
# No broader than this: "everyone" is not a network limit (use the token instead).
MIN_PREFIX = {4: 8, 6: 32}

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_token_lock = threading.Lock()   # the web server is one process; its threads take turns


def token_path(config_path: Path) -> Path:
    """Where the scrape token lives: beside the appliance TOML (/persist/config)."""
    return Path(config_path).with_name(TOKEN_NAME)


def settings_path(config_path: Path) -> Path:
    return Path(config_path).with_name(SETTINGS_NAME)


# --- the token ----------------------------------------------------------------------------------

class ScrapeToken:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def read(self) -> dict[str, Any] | None:
        """{"token", "created"}, or None before the first use; DataLoss when damaged."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise DataLoss(f"{self.path}: the scrape token cannot be read ({exc})") from None
        if not isinstance(data, dict) or not isinstance(data.get("token"), str) or \
                len(data["token"]) < 32:
            raise DataLoss(f"{self.path}: not a scrape token file")
        return data

    def ensure(self) -> dict[str, Any]:
        """The token, made at the first use."""
        with _token_lock:
            return self.read() or self._write_new()

    def regenerate(self) -> dict[str, Any]:
        """A new token; the old one stops working at once."""
        with _token_lock:
            return self._write_new()

    def _write_new(self) -> dict[str, Any]:
        data = {"token": secrets.token_urlsafe(32), "created": time.time()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(data).encode(), mode=0o600)
        return data

    def matches(self, authorization: str | None) -> bool:
        """Whether an `Authorization: Bearer <token>` header carries the token."""
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return False
        try:
            stored = self.read()
        except DataLoss:
            return False
        if stored is None:
            return False
        return hmac.compare_digest(hashlib.sha256(given.strip().encode()).digest(),
                                   hashlib.sha256(stored["token"].encode()).digest())


# --- the allowed networks ----------------------------------------------------------------------

def check_networks(values: Any) -> list[Network]:
    """The owner's list, each entry a network (CIDR) or one address; InvalidConfig with
    the reason for anything else, host bits set included (192.168.1.5/24 is a typo for
    one of two things, and guessing would widen or narrow what the owner meant)."""
    if not isinstance(values, list) or len(values) > MAX_NETWORKS:
        raise InvalidConfig(f"allowed_networks: a list of at most {MAX_NETWORKS} networks")
    networks = []
    for value in values:
        if not isinstance(value, str) or len(value) > 64:
            raise InvalidConfig("allowed_networks: each entry is a network such as "
                                "192.168.1.0/24, or one address")
        try:
            network = ipaddress.ip_network(value, strict=True)
        except ValueError:
            raise InvalidConfig(f"allowed_networks: {value[:64]!r} is not a network "
                                "(such as 192.168.1.0/24) with its host bits zero") from None
        if network.prefixlen < MIN_PREFIX[network.version]:
            raise InvalidConfig(f"allowed_networks: {network} is too broad (at least "
                                f"/{MIN_PREFIX[network.version]}); scrape with the token "
                                "instead")
        networks.append(network)
    return networks


def load_networks(path: Path) -> list[Network]:
    """The allowed networks (none when there is no settings file); DataLoss if damaged."""
    data = read_owner_file(path, "the metrics settings", SETTINGS_FORMAT)
    if data is None:
        return []
    try:
        return check_networks(data.get("allowed_networks", []))
    except InvalidConfig as exc:
        raise DataLoss(f"{path}: the metrics settings are damaged ({exc})") from None


def save_networks(path: Path, values: Any) -> list[Network]:
    networks = check_networks(values)
    write_owner_file(path, {"format": SETTINGS_FORMAT,
                            "allowed_networks": [str(n) for n in networks]})
    return networks


def address_allowed(address: str, networks: list[Network]) -> bool:
    """Whether a client address (an IPv4-mapped IPv6 one as its IPv4) is in a network."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in networks)
