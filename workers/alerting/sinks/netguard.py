"""SSRF guard for outbound HTTP: public addresses only, checked when resolving AND when connecting.

Every address a host resolves to must be globally routable (unless ``allow_private`` or
``allowed_networks``); :class:`GuardedBackend` re-checks at each connect and pins the checked IP,
:meth:`AddressGuard.vet_url` applies the same rule at configuration time.
Rules and why: docs/design.md#ssrf-guard
"""
from __future__ import annotations

from contextlib import asynccontextmanager

import asyncio
import ipaddress
import socket
from typing import AsyncIterator, Awaitable, Callable, Collection, Iterable, Sequence
from urllib.parse import urlsplit

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class BlockedDestination(Exception):
    """The destination is not allowed (private address, unresolvable, bad URL)."""


class UnresolvableDestination(BlockedDestination):
    """The host has no address now (refused at connect time; let through at configuration time)."""


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None:
            return is_public(inner)
    bad = (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
           or ip.is_unspecified)
    return ip.is_global and not bad


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         proto=socket.IPPROTO_TCP)
    out: list[str] = []
    for *_, sockaddr in infos:
        if sockaddr[0] not in out:
            out.append(sockaddr[0])
    return out


class AddressGuard:
    def __init__(
        self,
        allow_private: bool = False,
        allowed_networks: Iterable[str] = (),
        resolver: Resolver | None = None,
        resolve_timeout_s: float = 5.0,
    ) -> None:
        self.allow_private = allow_private
        self.allowed_networks = [ipaddress.ip_network(n, strict=False) for n in allowed_networks]
        self.resolver = resolver or system_resolver
        self.resolve_timeout_s = resolve_timeout_s

    @classmethod
    def from_settings(cls, allow_private: bool, allowed_networks: str, **kw) -> "AddressGuard":
        """From the settings' pair, e.g. ``alerting_allow_private`` / ``alerting_allowed_networks`` (CSV)."""
        return cls(allow_private=allow_private,
                   allowed_networks=[n.strip() for n in allowed_networks.split(",") if n.strip()], **kw)

    def allowed(self, ip: IPAddress) -> bool:
        if self.allow_private:
            return True
        if any(ip in net for net in self.allowed_networks if net.version == ip.version):
            return True
        return is_public(ip)

    async def check(self, host: str, port: int) -> list[str]:
        """The host's addresses, all allowed; else :class:`BlockedDestination`."""
        host = host.strip("[]")
        try:
            literal = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                addresses = list(await asyncio.wait_for(self.resolver(host, port), self.resolve_timeout_s))
            except (OSError, asyncio.TimeoutError, ValueError) as e:  # ValueError: IDNA-invalid, NUL
                raise UnresolvableDestination(f"cannot resolve {host!r}: {e}") from None
        if not addresses:
            raise UnresolvableDestination(f"{host!r} resolves to no address")
        for a in addresses:
            try:
                ip = ipaddress.ip_address(a.split("%", 1)[0])
            except ValueError:
                raise BlockedDestination(f"{host!r} resolved to a non-IP {a!r}") from None
            if not self.allowed(ip):
                raise BlockedDestination(f"{host!r} resolves to non-public address {ip} (refused)")
        return addresses

    async def check_url(self, url: str | httpx.URL) -> None:
        u = urlsplit(str(url))
        if u.scheme not in ("http", "https") or not u.hostname:
            raise BlockedDestination(f"only http(s) URLs with a host are allowed (scheme {u.scheme[:20]!r})")
        try:
            port = u.port or (443 if u.scheme == "https" else 80)
        except ValueError:
            raise BlockedDestination("invalid port") from None
        await self.check(u.hostname, port)

    async def vet_url(self, url: str) -> None:
        """Configuration-time check (module doc): :class:`BlockedDestination` for a refused address or
        a malformed URL; an unresolvable host passes (it is checked again at every connection)."""
        if self.allow_private:
            u = urlsplit(url)
            if u.scheme not in ("http", "https") or not u.hostname:
                raise BlockedDestination(f"only http(s) URLs with a host are allowed (scheme {u.scheme[:20]!r})")
            return  # every address is allowed: nothing to resolve
        try:
            await self.check_url(url)
        except UnresolvableDestination:
            pass


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses the guard allows, resolved and checked at connect time."""

    def __init__(self, guard: AddressGuard, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.guard = guard
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        addresses = await self.guard.check(host, port)
        error: Exception | None = None
        for ip in addresses:
            try:
                return await self.inner.connect_tcp(ip, port, timeout=timeout, local_address=local_address,
                                                    socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                error = e
        raise error  # type: ignore[misc]

    async def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise BlockedDestination("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def guarded_client(guard: AddressGuard, timeout: float | httpx.Timeout = 5.0,
                   max_connections: int = 10) -> httpx.AsyncClient:
    """An httpx client whose every connection goes through :class:`GuardedBackend`; no proxies,
    no environment configuration, no automatic redirects."""
    transport = httpx.AsyncHTTPTransport(trust_env=False, retries=0)
    # the transport's pool, rebuilt with our network backend (httpx has no public hook for it)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False),
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=30.0,
        network_backend=GuardedBackend(guard),
    )
    return httpx.AsyncClient(transport=transport, trust_env=False, follow_redirects=False, timeout=timeout)


class TooManyRedirects(Exception):
    pass


@asynccontextmanager
async def guarded_stream(client: httpx.AsyncClient, method: str, url: str, *, check: Callable[[str], Awaitable[None]],
                         follow: Collection[int], max_redirects: int, **request_kw) -> AsyncIterator[httpx.Response]:
    """``client.stream`` that follows the redirects in ``follow`` by hand, each new URL passing
    ``check`` (the SSRF guard) before it is requested; yields the first other response. Raises
    :class:`TooManyRedirects` after ``max_redirects``."""
    target = url
    for _ in range(max_redirects + 1):
        await check(target)
        async with client.stream(method, target, **request_kw) as resp:
            if resp.status_code in follow and "location" in resp.headers:
                target = str(resp.url.join(resp.headers["location"]))
                continue
            yield resp
            return
    raise TooManyRedirects(f"more than {max_redirects} redirects")
