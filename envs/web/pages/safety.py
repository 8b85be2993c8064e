"""Which URLs a model may make us fetch, and keeping secrets out of messages.

A learning model picks URLs; without a check it can point the trainer at the
cloud metadata service or an internal admin page (SSRF). Every URL is resolved
and *all* of its addresses are checked before any connection, and again on each
redirect hop; the fetcher then connects to the checked address only, so a DNS
answer that changes between check and connect (rebinding) cannot slip through.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data"})
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)


class UnsafeUrlError(ValueError):
    """The URL may not be fetched; ``reason`` (without the URL) and the message are safe to show the model."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"refused {shown_url(url)!r}: {reason}")
        self.url = url
        self.reason = reason


SHOWN_URL_CHARS = 200


def shown_url(url: str, limit: int = SHOWN_URL_CHARS) -> str:
    """``url`` for a message: long ones keep their start and end, so one URL cannot fill an observation."""
    if len(url) <= limit:
        return url
    tail = limit // 4
    return f"{url[: limit - tail - 1]}…{url[-tail:]}"


@dataclass(frozen=True, slots=True)
class CheckedTarget:
    """A URL that passed the policy and the one address the fetcher must connect to."""

    url: str
    scheme: str
    host: str
    port: int
    address: str


def system_resolver(host: str, port: int) -> list[str]:
    """All addresses the system resolver gives for ``host`` (TCP only)."""
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(info[4][0] for info in infos))


def _parse_allow_entry(entry: str) -> str | ipaddress.IPv4Network | ipaddress.IPv6Network:
    text = entry.strip().lower()
    if not text:
        raise ValueError("empty entry in the URL allow-list")
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return text.rstrip(".")


@dataclass(frozen=True)
class UrlPolicy:
    """Refuses non-public destinations unless explicitly allowed.

    ``allowlist`` holds host names (trusted whatever they resolve to) and IP
    addresses or networks (``"127.0.0.1"``, ``"10.0.0.0/8"``) that are permitted
    even though they are not public. ``allow_private`` turns the address check off
    entirely (metadata endpoints stay refused).
    """

    allow_private: bool = False
    allowlist: tuple[str, ...] = ()
    resolver: Resolver = field(default=system_resolver, repr=False)

    def __post_init__(self) -> None:
        entries = tuple(_parse_allow_entry(e) for e in self.allowlist)
        object.__setattr__(self, "_hosts", frozenset(e for e in entries if isinstance(e, str)))
        object.__setattr__(self, "_networks", tuple(e for e in entries if not isinstance(e, str)))

    def check(self, url: str) -> CheckedTarget:
        """Resolve and vet ``url``; raises ``UnsafeUrlError`` with a model-readable reason."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise UnsafeUrlError(url, "not a valid URL") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise UnsafeUrlError(url, "only http and https URLs can be browsed")
        host = (parts.hostname or "").rstrip(".").lower()
        if not host:
            raise UnsafeUrlError(url, "the URL has no host")
        if parts.username or parts.password:
            raise UnsafeUrlError(url, "URLs with credentials are not browsed")
        if host in METADATA_HOSTS:
            raise UnsafeUrlError(url, "cloud metadata endpoints are never browsed")
        port = port or (443 if scheme == "https" else 80)
        try:
            addresses = self.resolver(host, port)
        except (OSError, UnicodeError):
            raise UnsafeUrlError(url, f"could not resolve host {shown_url(host, 80)!r}") from None
        if not addresses:
            raise UnsafeUrlError(url, f"could not resolve host {shown_url(host, 80)!r}")
        trusted_host = host in self._hosts
        for text in addresses:
            for form in checked_forms(ipaddress.ip_address(text.split("%")[0])):
                self._check_address(url, form, trusted_host)
        return CheckedTarget(url=url, scheme=scheme, host=host, port=port, address=addresses[0])

    def _check_address(self, url: str, address: IPAddress, trusted_host: bool) -> None:
        if address in METADATA_ADDRESSES:
            raise UnsafeUrlError(url, "cloud metadata endpoints are never browsed")
        if trusted_host or self.allow_private or is_public(address):
            return
        if any(address in network for network in self._networks):
            return
        raise UnsafeUrlError(url, "it points to a private or reserved address")


NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")


def checked_forms(address: IPAddress) -> list[IPAddress]:
    """The addresses to vet for one resolved address: itself and any IPv4 address it embeds.

    ``::ffff:127.0.0.1`` is 127.0.0.1 to the kernel, so only the IPv4 form is checked.
    A 6to4 address (``2002:7f00:1::`` carries 127.0.0.1, ``2002:a9fe:a9fe::`` the metadata
    address) and a NAT64 one (``64:ff9b::7f00:1``) reach their embedded IPv4 address through
    a relay, so it must pass too: an address is refused whenever its embedded one is.
    """
    if not isinstance(address, ipaddress.IPv6Address):
        return [address]
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    embedded = address.sixtofour
    if embedded is None and address in NAT64_PREFIX:
        embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return [address] if embedded is None else [embedded, address]  # the embedded one first: its reason is the telling one


def is_public(address: IPAddress) -> bool:
    """Globally routable unicast: not private, loopback, link-local, multicast, reserved, or IPv6
    site-local (``fec0::/10``: deprecated, but still routed inside sites that use it)."""
    return (
        address.is_global
        and not address.is_multicast
        and not address.is_reserved
        and not address.is_unspecified
        and not address.is_link_local
        and not (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)
    )


_SECRET_PARAM = re.compile(r"(?i)\b((?:api[_-]?key|key|token|access_token|auth|apikey|secret)=)[^&\s'\"]+")


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Remove known secret values and credential-looking query parameters from ``text``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[REDACTED]")
    return _SECRET_PARAM.sub(r"\1[REDACTED]", text)
