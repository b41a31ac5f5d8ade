"""Which URLs a webhook may be sent to (server-side request forgery).

In production only ``https`` URLs, and only hosts whose every address is a public one: no loopback,
private, shared, link-local, multicast, reserved or unspecified address. The rule is checked when an
endpoint is made or changed, and again at each delivery: the host is resolved, every address checked, and
the request goes to the checked address (TLS still verifies the host name), so a name that resolves
elsewhere by then (DNS rebinding) reaches nothing it should not. In development any ``http(s)`` URL is
allowed (a local receiver).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from legetime.core.platform.errors import ValidationError

if TYPE_CHECKING:
    import httpx  # imported when an endpoint is checked or called: start-up loads no HTTP client

MAX_URL_LENGTH = 2000
Resolver = Callable[[str, int], Awaitable[list[str]]]


class AddressRefused(Exception):
    """The URL may not be called (its ``code`` says why: ``scheme``, ``unresolvable``, ``address``)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class Target:
    """Where to send: the URL with the checked address in place of the host, and the original host (the
    ``Host`` header and the name TLS verifies)."""

    url: httpx.URL
    host: str
    host_header: str


async def _resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


resolve: Resolver = _resolve
"""How host names are resolved (a test puts its own in place)."""


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def parse(url: str, *, production: bool) -> httpx.URL:
    """The URL if its form is allowed; a ``ValidationError`` on ``url`` otherwise (an operator's input)."""
    import httpx

    if len(url) > MAX_URL_LENGTH:
        raise ValidationError("URL-en er for lang.", field="url")
    try:
        parsed = httpx.URL(url)
    except Exception:
        raise ValidationError("Ugyldig URL.", field="url") from None
    allowed = ("https",) if production else ("https", "http")
    if parsed.scheme not in allowed or not parsed.host:
        message = "URL-en må bruke https." if production else "URL-en må bruke http eller https."
        raise ValidationError(message, field="url")
    if parsed.userinfo:
        raise ValidationError("URL-en kan ikke inneholde brukernavn eller passord.", field="url")
    if parsed.fragment:
        raise ValidationError("URL-en kan ikke ha et fragment (#).", field="url")
    return parsed


async def target(url: str, *, production: bool) -> Target:
    """Resolve the URL's host and check it (in production); raise ``AddressRefused`` if it may not be
    called. Its ``url`` names the checked address, so the request cannot go anywhere else."""
    try:
        parsed = parse(url, production=production)
    except ValidationError:
        raise AddressRefused("scheme") from None
    host = parsed.host
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        addresses = await resolve(host, port)
    except (OSError, UnicodeError):
        raise AddressRefused("unresolvable") from None
    if not addresses:
        raise AddressRefused("unresolvable")
    if production and not all(is_public(address) for address in addresses):
        raise AddressRefused("address")
    host_header = host if parsed.port is None else f"{host}:{parsed.port}"
    return Target(url=parsed.copy_with(host=addresses[0]), host=host, host_header=host_header)


async def check(url: str, *, production: bool) -> None:
    """An operator's URL, when an endpoint is made or changed: a ``ValidationError`` on ``url`` when it
    may not be called."""
    parse(url, production=production)
    try:
        await target(url, production=production)
    except AddressRefused as refused:
        if refused.code == "unresolvable":
            raise ValidationError("Fant ikke vertsnavnet i URL-en.", field="url") from None
        raise ValidationError(
            "URL-en peker til en lokal, privat eller reservert adresse.", field="url"
        ) from None
