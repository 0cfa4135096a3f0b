"""The ``ip`` scheme, as ZooKeeper's IPAuthenticationProvider.

An ACL id is an address or ``address/bits``. IPv4 is ZooKeeper 3.8's dotted quad (each part
parsed by Java's Integer.parseInt, 0..255); IPv6 follows 3.9.4+ (ZOOKEEPER-4240): eight hex
segments of at most four characters, or one ``::`` with fewer than eight explicit segments; no
embedded IPv4, no ``%scope``. Anything else never matches and is not a valid ACL id. An IPv4
ACL never matches an IPv6 client and vice versa.
"""

from __future__ import annotations

import ipaddress
import socket
import unicodedata

from core.interfaces import PeerInfo
from core.records import Id


def _java_digit(ch: str, radix: int) -> int:
    """Java's Character.digit for one UTF-16 unit (-1 when not a digit of `radix`)."""
    cp = ord(ch)
    if cp > 0xFFFF:  # a surrogate pair in Java: neither half is a digit
        return -1
    value = unicodedata.decimal(ch, -1)  # Unicode decimal digits (Nd) count, as in Java
    if value < 0:
        if ch.isascii() and ch.isalpha():
            value = ord(ch.lower()) - ord("a") + 10
        elif 0xFF21 <= cp <= 0xFF3A:  # fullwidth A-Z
            value = cp - 0xFF21 + 10
        elif 0xFF41 <= cp <= 0xFF5A:  # fullwidth a-z
            value = cp - 0xFF41 + 10
    return value if 0 <= value < radix else -1


def _java_parse_int(s: str, radix: int = 10) -> int | None:
    """Java's Integer.parseInt: an optional '+'/'-', then at least one digit; None on failure
    (NumberFormatException). No spaces, no underscores, no int overflow."""
    body, sign = s, 1
    if s[:1] in ("+", "-"):
        sign = -1 if s[0] == "-" else 1
        body = s[1:]
    if not body:
        return None
    value = 0
    for ch in body:
        d = _java_digit(ch, radix)
        if d < 0:
            return None
        value = value * radix + d
    value *= sign
    if not -(2**31) <= value < 2**31:
        return None
    return value


def _v4_bytes(addr: str) -> bytearray | None:
    parts = addr.split(".")
    if len(parts) != 4:
        return None
    out = bytearray(4)
    for i, part in enumerate(parts):
        v = _java_parse_int(part)
        if v is None or not 0 <= v <= 255:
            return None
        out[i] = v
    return out


def _v6_segments(text: str) -> list[str]:
    return text.split(":") if text else []


def _v6_bytes(addr: str) -> bytearray | None:
    halves = addr.split("::")
    if len(halves) == 1:
        head, tail = halves[0].split(":"), []
        if len(head) != 8:
            return None
    elif len(halves) == 2:
        head, tail = _v6_segments(halves[0]), _v6_segments(halves[1])
        if len(head) + len(tail) >= 8:
            return None
    else:
        return None
    out = bytearray(16)
    for start, segments in ((0, head), (16 - 2 * len(tail), tail)):
        for n, seg in enumerate(segments):
            if not seg or len(seg.encode("utf-16-le", "surrogatepass")) > 8:  # > 4 UTF-16 units
                return None
            v = _java_parse_int(seg, 16)
            if v is None:
                return None
            out[start + 2 * n] = (v >> 8) & 0xFF  # "-1" is 0xffff, as in Java
            out[start + 2 * n + 1] = v & 0xFF
    return out


def _addr_bytes(addr: str) -> bytearray | None:
    """ZooKeeper's addr2Bytes: IPv6 when there is a ':', else IPv4 when there is a '.'."""
    if ":" in addr:
        return _v6_bytes(addr)
    if "." in addr:
        return _v4_bytes(addr)
    return None


def _mask(b: bytearray, bits: int) -> None:
    start = bits // 8
    keep = ~((1 << (8 - bits % 8)) - 1) & 0xFF
    while start < len(b):
        b[start] &= keep
        keep = 0
        start += 1


def _parse_acl(acl_id: str) -> tuple[bytearray, int] | None:
    """(address bytes, prefix bits) of an ACL id, or None when ZooKeeper rejects it."""
    parts = acl_id.split("/", 1)
    addr = _addr_bytes(parts[0])
    if addr is None:
        return None
    bits = len(addr) * 8
    if len(parts) == 2:
        parsed = _java_parse_int(parts[1])
        if parsed is None or not 0 <= parsed <= len(addr) * 8:
            return None
        bits = parsed
    return addr, bits


def host_address(host: str) -> str:
    """The client address as Java's InetAddress.getHostAddress would print it: IPv4-mapped
    IPv6 addresses become IPv4 (Java accepts them as Inet4Address), other IPv6 addresses are
    eight uncompressed lowercase hex groups (``::1`` -> ``0:0:0:0:0:0:0:1``) with a numeric
    ``%scope`` kept. Anything unparseable is returned unchanged."""
    addr_text, pct, scope = host.partition("%")
    try:
        addr = ipaddress.ip_address(addr_text)
    except ValueError:
        return host
    if isinstance(addr, ipaddress.IPv4Address):
        return str(addr)
    if addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    packed = addr.packed
    text = ":".join(f"{(packed[i] << 8) | packed[i + 1]:x}" for i in range(0, 16, 2))
    if pct and scope:
        if not scope.isdigit():
            try:
                scope = str(socket.if_nametoindex(scope))
            except OSError:
                pass
        text += "%" + scope
    return text


class IpProvider:
    """The ``ip`` AuthProvider: ids are client addresses, ACL ids addresses or CIDR blocks."""

    scheme = "ip"
    is_authenticated = False

    def authenticate(self, peer: PeerInfo, auth: bytes) -> list[Id] | None:
        """The connection's own address (the credential is ignored), as ZooKeeper does."""
        return [Id(self.scheme, host_address(peer.host))]

    def matches(self, id: str, acl_id: str) -> bool:
        """Whether client address `id` lies in `acl_id` (``addr`` or ``addr/bits``)."""
        acl = _parse_acl(acl_id)
        if acl is None:
            return False
        acl_addr, bits = acl
        remote = _addr_bytes(id)
        if remote is None or len(remote) != len(acl_addr):
            return False
        _mask(acl_addr, bits)
        _mask(remote, bits)
        return remote == acl_addr

    def is_valid(self, acl_id: str) -> bool:
        """Whether `acl_id` is an address or ``address/bits`` with 0 <= bits <= address size."""
        return _parse_acl(acl_id) is not None
