"""Which addresses the box may connect to on a camera's (or a user's) word: the SSRF guard.

Every HTTP, HTTPS, RTSP or unicast WS-Discovery address that came from a camera, a
discovery answer or a form passes `AddressPolicy.check` first. The check resolves the host
once and returns a `Target` pinned to the checked IP address; the transport connects to
that address and no other, so a DNS answer that changes between check and connect (DNS
rebinding) cannot move the connection.

Refused, whatever the allowed networks say:
* link-local (169.254.0.0/16, fe80::/10: where cloud metadata services live) and the
  other well-known metadata addresses;
* multicast, unspecified (0.0.0.0, ::), limited broadcast, the broadcast and network
  address of an allowed IPv4 network, reserved (240.0.0.0/4);
* the appliance's own service ports on its own addresses (loopback always counts as own);
* loopback, unless the allowed list names a loopback network itself (127.0.0.0/8 or
  ::1/128): a network that merely contains loopback, such as 0.0.0.0/0, does not count.
  Tests that run a camera inside a private network namespace opt in this way.
Everything else must fall inside one of the allowed networks (the box's camera and LAN
networks, from its configuration).
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import logging
import re
import socket
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence
from urllib.parse import urlsplit, urlunsplit

from appliance.core.errors import InvalidConfig, Unavailable

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMES = {
    "onvif": ("http", "https"),      # ONVIF SOAP services
    "snapshot": ("http", "https"),   # GetSnapshotUri
    "stream": ("rtsp", "rtsps"),     # GetStreamUri, what the recorder opens
}
DEFAULT_PORTS = {"http": 80, "https": 443, "rtsp": 554, "rtsps": 322}
# The web UI (HTTP redirect and HTTPS) and SSH. The box's configuration adds the rest
# (RTSP restream, metrics) when it builds its policy.
DEFAULT_OWN_PORTS = frozenset({22, 80, 443})
LOOPBACK_NETS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
# Cloud metadata endpoints outside link-local (Alibaba, AWS over IPv6).
METADATA = (ipaddress.ip_network("100.100.100.200/32"), ipaddress.ip_network("fd00:ec2::254/128"))
HOSTNAME = re.compile(r"^(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?\Z")  # \Z: no "\n"
UNSAFE_CHARS = re.compile(r"[\x00-\x20\x7f\\]")
MAX_URL_LENGTH = 2048

Resolver = Callable[[str, int], Sequence[str]]


class AddressRefused(InvalidConfig):
    """The address may not be contacted (scheme, network or port); nothing was sent."""


@dataclass(frozen=True)
class Target:
    """A checked address: connect to `ip`, say `host` (Host header, TLS server name)."""

    url: str        # as checked, without credentials
    scheme: str
    host: str       # host name or IP literal from the URL
    ip: IPAddress   # the checked address to connect to
    port: int
    path: str       # path and query, at least "/"

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS.get(self.scheme) else f"{host}:{self.port}"


def parse_network(text: str | IPNetwork) -> IPNetwork:
    """A CIDR from the configuration or the command line, e.g. 192.168.1.0/24."""
    if isinstance(text, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return text
    try:
        return ipaddress.ip_network(str(text).strip(), strict=False)
    except ValueError:
        raise InvalidConfig(f"not a network in CIDR form: {text!r} (e.g. 192.168.1.0/24)") from None


def strip_credentials(url: str) -> str:
    """The URL without user name and password (cameras sometimes embed them)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _normal(ip: IPAddress) -> IPAddress:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def literal_ip(host: str) -> IPAddress | None:
    """The address a host string denotes without any lookup: IP literals, and the old
    numeric IPv4 forms the C resolver accepts (2130706433, 0x7f.1, 127.1), so that
    they cannot slip past as "host names"."""
    try:
        return _normal(ipaddress.ip_address(host.split("%")[0]))
    except ValueError:
        pass
    if re.fullmatch(r"[0-9a-fA-FxX.]+", host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


class AddressPolicy:
    """Allowed camera networks plus the fixed refusals listed in the module docstring."""

    def __init__(self, allowed_networks: Iterable[str | IPNetwork], *,
                 own_addresses: Iterable[str | IPAddress] = (),
                 own_ports: Iterable[int] = DEFAULT_OWN_PORTS,
                 resolver: Resolver = system_resolver) -> None:
        self.allowed: tuple[IPNetwork, ...] = tuple(parse_network(n) for n in allowed_networks)
        for net in self.allowed:
            addr = net.network_address
            if addr.is_link_local or addr.is_multicast or (addr.is_unspecified and net.prefixlen
                                                           == net.max_prefixlen):
                raise InvalidConfig(f"{net} cannot be an allowed camera network (link-local, "
                                    "multicast or unspecified addresses are always refused)")
        self.loopback_opt_in = tuple(net for net in self.allowed
                                     if any(net.version == lo.version and net.subnet_of(lo)
                                            for lo in LOOPBACK_NETS))
        self.own_addresses = frozenset(_normal(ipaddress.ip_address(str(a)))
                                       for a in own_addresses)
        self.own_ports = frozenset(int(p) for p in own_ports)
        self._resolve = resolver

    @classmethod
    def for_this_host(cls, allowed_networks: Iterable[str | IPNetwork] = (), *,
                      own_ports: Iterable[int] = DEFAULT_OWN_PORTS) -> "AddressPolicy":
        """A policy whose own addresses are this machine's interface addresses. Without
        allowed networks, the networks of its non-loopback, non-link-local interfaces
        (the LAN the box sits on) are allowed."""
        import psutil

        own: list[IPAddress] = []
        lans: list[IPNetwork] = []
        for addrs in psutil.net_if_addrs().values():
            for addr in addrs:
                if addr.family not in (socket.AF_INET, socket.AF_INET6):
                    continue
                try:
                    ip = ipaddress.ip_address(addr.address.split("%")[0])
                except ValueError:
                    continue
                own.append(ip)
                if addr.netmask and not (ip.is_loopback or ip.is_link_local):
                    try:
                        lans.append(ipaddress.ip_interface(f"{ip}/{addr.netmask}").network)
                    except ValueError:
                        continue
        nets = list(allowed_networks) or lans
        return cls(nets, own_addresses=own, own_ports=own_ports)

    def describe(self) -> str:
        return ", ".join(str(n) for n in self.allowed) or "no networks"

    # -- checks ---------------------------------------------------------------------------

    def refusal(self, ip: str | IPAddress, port: int | None = None) -> str | None:
        """Why this address (and port) may not be contacted, or None when it may."""
        addr = _normal(ipaddress.ip_address(str(ip).split("%")[0]))
        if addr.is_unspecified:
            return f"{addr} is the unspecified address"
        if addr.is_multicast:
            return f"{addr} is a multicast address"
        if addr.is_link_local:
            return f"{addr} is link-local (the range of cloud metadata services)"
        if any(addr in net for net in METADATA):
            return f"{addr} is a cloud metadata address"
        if isinstance(addr, ipaddress.IPv4Address):
            if addr == ipaddress.IPv4Address("255.255.255.255"):
                return f"{addr} is the broadcast address"
            for net in self.allowed:
                if (net.version == 4 and net.prefixlen <= 30 and addr in net
                        and addr in (net.broadcast_address, net.network_address)):
                    return f"{addr} is the broadcast or network address of {net}"
            if addr.is_reserved:
                return f"{addr} is a reserved address"
        loopback = addr.is_loopback
        if loopback and not any(addr in net for net in self.loopback_opt_in):
            return f"{addr} is a loopback address (this box itself)"
        if not loopback and not any(addr in net for net in self.allowed):
            return f"{addr} is outside the allowed camera networks ({self.describe()})"
        if port is not None and port in self.own_ports and (loopback or addr in self.own_addresses):
            return f"{addr}:{port} is one of this appliance's own services"
        return None

    def check_url(self, url: str, kind: str = "onvif", *, resolve_timeout: float = 2.0) -> Target:
        """Check a URL before any connection; raise AddressRefused with the reason.

        `kind` chooses the allowed schemes: "onvif" and "snapshot" (http, https) or
        "stream" (rtsp, rtsps). The host is resolved once, with a deadline; every address
        it resolves to must pass, and the first is the one to connect to."""
        scheme, host, port, path = self._split(url, kind)
        ips = self._addresses(host, port, resolve_timeout, url)
        for ip in ips:
            reason = self.refusal(ip, port)
            if reason:
                raise AddressRefused(f"refused {kind} address {_show(url)}: {reason}")
        return Target(_show(url), scheme, host, ips[0], port, path)

    def check_host(self, host: str, port: int, *, resolve_timeout: float = 2.0) -> IPAddress:
        """Check a bare host (a unicast WS-Discovery target) and return its address."""
        host = host.strip().strip("[]")
        self._check_host_syntax(host, host)
        ips = self._addresses(host, port, resolve_timeout, host)
        for ip in ips:
            reason = self.refusal(ip, port)
            if reason:
                raise AddressRefused(f"refused address {host}: {reason}")
        return ips[0]

    def url_refusal(self, url: str, kind: str = "onvif") -> str | None:
        """Why a URL would be refused, without resolving host names (for showing
        discovery suggestions); None when it looks acceptable so far."""
        try:
            scheme, host, port, path = self._split(url, kind)
        except AddressRefused as exc:
            return str(exc).split(": ", 1)[-1]
        ip = literal_ip(host)
        if ip is None:
            return None  # a host name: checked when it is resolved, before any fetch
        return self.refusal(ip, port)

    # -- helpers ----------------------------------------------------------------------------

    def _split(self, url: str, kind: str) -> tuple[str, str, int, str]:
        if kind not in SCHEMES:
            raise ValueError(f"unknown address kind {kind!r}")
        if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
            raise AddressRefused(f"refused {kind} address: empty or longer than "
                                 f"{MAX_URL_LENGTH} characters")
        if UNSAFE_CHARS.search(url):
            raise AddressRefused(f"refused {kind} address {_show(url)}: it contains spaces, "
                                 "control characters or backslashes")
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES[kind]:
            allowed = " or ".join(f"{s}://" for s in SCHEMES[kind])
            raise AddressRefused(f"refused {kind} address {_show(url)}: only {allowed} "
                                 "addresses are allowed here")
        if "@" in parts.netloc:
            raise AddressRefused(f"refused {kind} address {_show(url)}: it carries a user "
                                 "name or password; give credentials separately")
        try:
            port = parts.port or DEFAULT_PORTS[scheme]
        except ValueError:
            raise AddressRefused(f"refused {kind} address {_show(url)}: invalid port") from None
        host = parts.hostname or ""
        self._check_host_syntax(host, url)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return scheme, host, port, path

    @staticmethod
    def _check_host_syntax(host: str, url: str) -> None:
        if not host:
            raise AddressRefused(f"refused address {_show(url)}: no host")
        if literal_ip(host) is not None:
            return
        if not HOSTNAME.match(host):
            raise AddressRefused(f"refused address {_show(url)}: {host!r} is not a valid "
                                 "host name or IP address")

    def _addresses(self, host: str, port: int, timeout: float, url: str) -> list[IPAddress]:
        ip = literal_ip(host)
        if ip is not None:
            return [ip]
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        try:
            found = pool.submit(self._resolve, host, port).result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            raise Unavailable(f"{host} did not resolve within {timeout:g} s") from None
        except OSError as exc:
            raise Unavailable(f"{host} does not resolve ({exc.strerror or exc})") from None
        finally:
            pool.shutdown(wait=False)
        ips: list[IPAddress] = []
        for text in found:
            ip = _normal(ipaddress.ip_address(str(text).split("%")[0]))
            if ip not in ips:
                ips.append(ip)
        if not ips:
            raise Unavailable(f"{host} does not resolve")
        log.debug("resolved host=%s addresses=%s", host, ",".join(map(str, ips)))
        return ips


def _show(url: str) -> str:
    """A URL fit for a message or a log line: no credentials, bounded length."""
    shown = strip_credentials(url) if isinstance(url, str) else repr(url)
    shown = UNSAFE_CHARS.sub("?", shown)
    return shown if len(shown) <= 200 else shown[:200] + "..."
