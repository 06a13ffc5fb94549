"""Pinned outbound connections for user-supplied URLs (the DNS-rebinding-proof half of the SSRF
guard; the address rules are `pytake.kit.ssrf`'s).

A host name is resolved once by the connector's resolver, every address is checked, and aiohttp
then connects to exactly those addresses while keeping the name for the Host header and TLS SNI.
So a name cannot pass the check with a public address and connect with a private one.
"""

from __future__ import annotations

import ipaddress
import socket

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from pytake.kit.ssrf import UnsafeUrl, check_url_syntax, is_public_address

__all__ = ["BlockedAddress", "GuardedResolver", "check_target", "guarded_session"]


class BlockedAddress(OSError):
    """A host resolved to a private, loopback or link-local address."""


class GuardedResolver(AbstractResolver):
    """Resolves with the system resolver, then refuses non-public answers (unless allowed)."""

    def __init__(self, allow_private: bool) -> None:
        self._inner = aiohttp.ThreadedResolver()
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if not self._allow_private:
            for result in results:
                if not is_public_address(result["host"]):
                    raise BlockedAddress(
                        f"{host!r} resolves to a non-public address ({result['host']})"
                    )
        return results

    async def close(self) -> None:
        await self._inner.close()


def check_target(url: str, *, allow_private: bool) -> None:
    """Refuse a malformed URL, or one whose host is a literal non-public IP address.

    aiohttp does not consult the resolver for IP literals, so they are checked here.
    """
    host, _ = check_url_syntax(url)
    if allow_private:
        return
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return  # a name: the resolver checks it at connect time
    if not is_public_address(host.strip("[]")):
        raise UnsafeUrl(f"{host} is not a public address")


def guarded_session(
    *, allow_private: bool, timeout_seconds: float, limit: int = 100
) -> aiohttp.ClientSession:
    """A client session whose every connection passes the guard (one per process, reused)."""
    connector = aiohttp.TCPConnector(
        resolver=GuardedResolver(allow_private), limit=limit, ttl_dns_cache=10
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout_seconds),
        auto_decompress=True,
    )
