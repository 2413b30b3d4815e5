"""SOAP 1.2 envelopes out, hardened XML in.

Parsing goes through defusedxml's expat parser with DTDs forbidden outright (no
entities, no external references, so no billion laughs and no `file:///etc/shadow`),
after a size check, with a depth and an element-count limit enforced while the tree is
built. Everything that reads camera XML goes through `parse_xml`.

Cameras differ in prefixes and in which namespace version they use (ver10 vs ver20
media, SOAP 1.1 vs 1.2, WS-Discovery 2005 vs 2009), so the readers below match elements
by local name within the expected structure, not by prefix or namespace.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Iterator
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from appliance.core.errors import FailedPrecondition

MAX_XML_BYTES = 1 << 20     # every response, and every discovery datagram (64 KiB there)
MAX_DEPTH = 64              # ONVIF responses nest about 12 deep
MAX_ELEMENTS = 20_000       # a GetProfiles answer with 8 profiles has about 600

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
NS = {
    "s": SOAP12,
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "trt": "http://www.onvif.org/ver10/media/wsdl",
    "tr2": "http://www.onvif.org/ver20/media/wsdl",
    "tt": "http://www.onvif.org/ver10/schema",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "wsu": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
    "wsa": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "wsd": "http://schemas.xmlsoap.org/ws/2005/04/discovery",
    "dn": "http://www.onvif.org/ver10/network/wsdl",
}
AUTH_SUBCODES = {"notauthorized", "failedauthentication", "invalidsecurity",
                 "invalidsecuritytoken", "failedcheck", "unauthorized"}
AUTH_WORDS = ("not authorized", "not authorised", "unauthorized", "authorization",
              "authentication", "authority failure", "sender not auth")


class BadResponse(FailedPrecondition):
    """A camera's answer is unusable: too big, too deep, not XML, hostile, or not the
    expected shape. Nothing from it was used."""


@dataclass(frozen=True)
class Fault:
    code: str              # local name of the Code/Value (Sender, Receiver, ...)
    subcodes: tuple[str, ...]
    reason: str

    @property
    def is_auth(self) -> bool:
        if any(s.lower() in AUTH_SUBCODES for s in self.subcodes):
            return True
        text = self.reason.lower()
        return any(word in text for word in AUTH_WORDS)

    def describe(self) -> str:
        codes = "/".join((self.code, *self.subcodes))
        return f"{self.reason or 'no reason given'} ({codes})"


class _LimitedBuilder(ET.TreeBuilder):
    def __init__(self, max_depth: int, max_elements: int) -> None:
        super().__init__()
        self.depth = 0
        self.count = 0
        self.max_depth = max_depth
        self.max_elements = max_elements

    def start(self, tag, attrs):  # noqa: ANN001 - TreeBuilder's signature
        self.depth += 1
        self.count += 1
        if self.depth > self.max_depth:
            raise BadResponse(f"the XML nests deeper than {self.max_depth} levels")
        if self.count > self.max_elements:
            raise BadResponse(f"the XML has more than {self.max_elements} elements")
        return super().start(tag, attrs)

    def end(self, tag):  # noqa: ANN001
        self.depth -= 1
        return super().end(tag)


def parse_xml(data: bytes, what: str = "the camera's answer", *,
              max_bytes: int = MAX_XML_BYTES, max_depth: int = MAX_DEPTH,
              max_elements: int = MAX_ELEMENTS) -> ET.Element:
    """Parse untrusted XML; raise BadResponse naming `what` for anything unsafe or broken."""
    if len(data) > max_bytes:
        raise BadResponse(f"{what} is larger than {max_bytes} bytes")
    parser = DefusedXMLParser(target=_LimitedBuilder(max_depth, max_elements),
                              forbid_dtd=True, forbid_entities=True, forbid_external=True)
    try:
        parser.feed(data)
        return parser.close()
    except BadResponse as exc:
        raise BadResponse(f"{what} was refused: {exc}") from None
    except DefusedXmlException as exc:
        kind = type(exc).__name__  # DTDForbidden, EntitiesForbidden, ...
        raise BadResponse(f"{what} was refused: it carries a DTD or entity declarations "
                          f"({kind}); nothing in it was expanded") from None
    except (ET.ParseError, ValueError, UnicodeError) as exc:
        raise BadResponse(f"{what} is not well-formed XML ({exc})") from None


def local(tag: str) -> str:
    """`{namespace}Name` -> `Name`."""
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def children(elem: ET.Element | None, name: str) -> Iterator[ET.Element]:
    """Direct children with this local name, whatever their namespace."""
    if elem is None:
        return iter(())
    return (child for child in elem if local(child.tag) == name)


def child(elem: ET.Element | None, *path: str) -> ET.Element | None:
    """The first element along a path of local names, or None."""
    for name in path:
        elem = next(children(elem, name), None)
        if elem is None:
            return None
    return elem


def text(elem: ET.Element | None, *path: str, limit: int = 512) -> str | None:
    """Stripped text at a path of local names (None when absent or empty), length-bounded
    and without control characters."""
    found = child(elem, *path) if path else elem
    if found is None or found.text is None:
        return None
    value = clean(found.text, limit)
    return value or None


def clean(value: str, limit: int = 512) -> str:
    """Text from a camera made safe to store and show: no C0/C1 control characters (no
    terminal escapes in `nvr discover`), bounded."""
    value = "".join(" " if ch < " " or "\x7f" <= ch <= "\x9f" else ch for ch in value)
    return value.strip()[:limit]


def integer(elem: ET.Element | None, *path: str) -> int | None:
    raw = text(elem, *path, limit=32)
    try:
        return int(float(raw)) if raw is not None else None
    except (ValueError, OverflowError):
        return None


def number(elem: ET.Element | None, *path: str) -> float | None:
    raw = text(elem, *path, limit=32)
    try:
        value = float(raw) if raw is not None else None
    except ValueError:
        return None
    return value if value is not None and value == value and abs(value) < 1e9 else None


def body_of(root: ET.Element, what: str) -> ET.Element:
    """The first element inside the SOAP Body (1.2 or 1.1 envelope)."""
    if local(root.tag) != "Envelope":
        raise BadResponse(f"{what} is not a SOAP envelope (root element {local(root.tag)!r})")
    body = child(root, "Body")
    first = next(iter(body), None) if body is not None else None
    if first is None:
        raise BadResponse(f"{what} has an empty SOAP body")
    return first


def fault_of(root: ET.Element) -> Fault | None:
    """The SOAP fault in an envelope (1.2 or 1.1 shape), or None."""
    body = child(root, "Body")
    fault = child(body, "Fault")
    if fault is None:
        return None
    code = child(fault, "Code")
    if code is not None:  # SOAP 1.2
        value = _qname_local(text(code, "Value", limit=128))
        subs: list[str] = []
        sub = child(code, "Subcode")
        while sub is not None and len(subs) < 8:
            subs.append(_qname_local(text(sub, "Value", limit=128)))
            sub = child(sub, "Subcode")
        reason = text(fault, "Reason", "Text", limit=300) or ""
        return Fault(value, tuple(s for s in subs if s), reason)
    value = _qname_local(text(fault, "faultcode", limit=128))  # SOAP 1.1
    reason = text(fault, "faultstring", limit=300) or ""
    parts = value.split(".")
    return Fault(parts[0], tuple(parts[1:]), reason)


def _qname_local(value: str | None) -> str:
    return (value or "").rpartition(":")[2]


def envelope(body: str, header: str = "") -> bytes:
    """A SOAP 1.2 envelope around a body (and an optional header) fragment."""
    head = f"<s:Header>{header}</s:Header>" if header else ""
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            f'<s:Envelope xmlns:s="{SOAP12}" xmlns:tds="{NS["tds"]}" xmlns:trt="{NS["trt"]}" '
            f'xmlns:tr2="{NS["tr2"]}" xmlns:tt="{NS["tt"]}">'
            f"{head}<s:Body>{body}</s:Body></s:Envelope>").encode("utf-8")


def xml_text(value: str) -> str:
    """Escape a value (e.g. a profile token the camera gave us) for element content."""
    return escape(value, {'"': "&quot;", "'": "&apos;"})
