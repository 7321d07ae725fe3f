"""Where webhooks may go: public addresses only, unless ``webhook_allow_private`` is on.

Whoever holds a dispatcher token chooses a webhook's URL, and Menara POSTs to it from
inside the network it runs in; without this check that token could make Menara reach
the database, the metrics endpoint or a cloud metadata service (server-side request
forgery). The API checks a URL when it is registered (400), and the ``Deliverer``
checks again before every send, on the addresses the host name resolves to then.
``GuardedResolver`` hands aiohttp exactly the addresses it checked, so a name whose
answer changes between the check and the connection (DNS rebinding) gains nothing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

__all__ = [
    "ALLOW_SETTING",
    "AddressRefused",
    "GuardedResolver",
    "address_problem",
    "host_problem",
    "refusal",
    "resolved_problem",
    "url_refusal",
]

ALLOW_SETTING = "webhook_allow_private"
# Names and addresses of cloud instance metadata services (AWS, GCP, Azure, Alibaba,
# AWS ECS tasks); most are link-local or private anyway, listed so the reason is plain.
METADATA_HOSTS = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "instance-data",
     "instance-data.ec2.internal"}
)  # fmt: skip
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "fd00:ec2::254", "169.254.170.2", "100.100.100.200",
              "168.63.129.16")
)  # fmt: skip
_RESOLVE_TIMEOUT_S = 5.0

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressRefused(OSError):
    """A webhook's host is, or resolves to, an address webhooks may not reach."""


def address_problem(address: Address) -> str | None:
    """What kind of non-public address ``address`` is, or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    kinds = (
        (address in METADATA_ADDRESSES, "a cloud metadata address"),
        (address.is_loopback, "a loopback address"),
        (address.is_unspecified, "the unspecified address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "not a public address"),
    )
    return next((what for hit, what in kinds if hit), None)


def host_problem(host: str) -> str | None:
    """Why ``host`` (a URL's host) is refused before any lookup: a metadata service's
    name or a literal non-public address; None otherwise."""
    name = host.lower().rstrip(".")
    if name in METADATA_HOSTS:
        return f"{host} is a cloud metadata host"
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return None
    what = address_problem(address)
    return None if what is None else f"{host} is {what}"


def resolved_problem(host: str, addresses: Iterable[str]) -> str | None:
    """Why ``host`` is refused given what it resolved to (any non-public address)."""
    for text in addresses:
        what = address_problem(ipaddress.ip_address(text))
        if what is not None:
            return f"{host} resolves to {text}, {what}"
    return None


def refusal(problem: str) -> str:
    """The whole message: what is wrong and which setting allows it."""
    return (
        f"webhooks go to public addresses only: {problem}"
        f" (set {ALLOW_SETTING} = true to allow private addresses)"
    )


async def url_refusal(url: str) -> str | None:
    """Why webhooks may not go to ``url`` (a URL ``url_problem`` accepted), or None.

    A host name that does not resolve now is accepted: DNS may be down or answer only
    inside the receiver's network, and the ``Deliverer`` checks again at every send.
    """
    host = urlsplit(url).hostname or ""
    problem = host_problem(host)
    if problem is None:
        loop = asyncio.get_running_loop()
        lookup = loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        try:
            infos = await asyncio.wait_for(lookup, _RESOLVE_TIMEOUT_S)
        except (OSError, TimeoutError, UnicodeError):
            return None
        problem = resolved_problem(host, (str(info[4][0]) for info in infos))
    return None if problem is None else refusal(problem)


class GuardedResolver(AbstractResolver):
    """Resolves with ``inner`` (default: aiohttp's) and raises ``AddressRefused`` when
    any address of a name is not public; aiohttp then connects only to the addresses
    returned here, the ones checked. Literal addresses never reach a resolver: check
    them with ``host_problem``."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._owned = inner is None
        self._inner = DefaultResolver() if inner is None else inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        problem = host_problem(host)
        if problem is not None:
            raise AddressRefused(refusal(problem))
        results = await self._inner.resolve(host, port, family)
        problem = resolved_problem(host, (r["host"] for r in results))
        if problem is not None:
            raise AddressRefused(refusal(problem))
        return results

    async def close(self) -> None:
        if self._owned:
            await self._inner.close()
