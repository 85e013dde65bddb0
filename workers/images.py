"""Fetching events' ``image_url`` (``BABELWATCH_FETCH_IMAGE_URLS``): one concurrent round per batch.

Image URLs come from whoever produces events, so every fetch goes through the alerting SSRF guard
(:mod:`workers.alerting.sinks.netguard`, with its own allowances ``image_fetch_allow_private`` /
``image_fetch_allowed_networks``): http(s) only, every address the host resolves to must be public,
checked before each request and again when connecting, redirects followed (at most
``max_redirects``) only after the new URL passed the same check. A body is read up to
``max_bytes`` and no further; a declared ``Content-Type`` that is not an image is refused (none,
or ``application/octet-stream``, is left to the model's decoder).

:meth:`ImageFetcher.fetch_all` never raises for a URL and never outlasts ``timeout_s``: one deadline
covers the whole batch (queued fetches included), and a URL not fetched by then fails with
``timeout``. Identical URLs of a batch are fetched once. Nothing is cached across batches.
Failures are short strings, ``<kind>: <detail>`` (kinds: ``bad_url``, ``blocked``, ``timeout``,
``too_large``, ``http_error``, ``not_image``, ``too_many_redirects``, ``transport``).
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Iterable
from urllib.parse import urlsplit

import httpx
import mode

from workers.alerting.sinks.netguard import (
    AddressGuard, BlockedDestination, TooManyRedirects, guarded_client, guarded_stream,
)

log = logging.getLogger("babelwatch.images")

# identity: the size limit applies to the bytes as sent, and no decompression bomb
HEADERS = {"User-Agent": "babelwatch-image-fetch/1", "Accept": "image/*", "Accept-Encoding": "identity"}
REDIRECTS = (301, 302, 303, 307, 308)
UNDECLARED_TYPES = ("", "application/octet-stream", "binary/octet-stream")


@dataclass(frozen=True)
class Fetched:
    data: bytes | None = None
    error: str | None = None  # why there is no data


class FetchFailed(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")


def parse_networks(csv: str) -> list[str]:
    """``"10.0.0.0/8, 192.168.1.0/24"`` -> the CIDRs, as the settings spell them."""
    return [n.strip() for n in csv.split(",") if n.strip()]


def content_type_allowed(value: str | None) -> bool:
    """An image type, or none declared (the model's decoder decides); never text/html and the like."""
    media = (value or "").split(";", 1)[0].strip().lower()
    return media.startswith("image/") or media in UNDECLARED_TYPES


class ImageFetcher(mode.Service):
    """A long-lived component (a ``mode.Service``) owning one guarded HTTP client."""

    def __init__(
        self,
        guard: AddressGuard,
        *,
        timeout_s: float = 2.0,
        concurrency: int = 16,
        max_bytes: int = 1_000_000,
        max_redirects: int = 3,
        **service_kwargs,
    ) -> None:
        super().__init__(**service_kwargs)
        self.guard = guard
        self.timeout_s = timeout_s
        self.concurrency = concurrency
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self._client: httpx.AsyncClient | None = None

    @classmethod
    def from_settings(cls, settings) -> "ImageFetcher":
        guard = AddressGuard(allow_private=settings.image_fetch_allow_private,
                             allowed_networks=parse_networks(settings.image_fetch_allowed_networks),
                             resolve_timeout_s=settings.image_fetch_timeout_s)
        return cls(guard, timeout_s=settings.image_fetch_timeout_s, concurrency=settings.image_fetch_concurrency,
                   max_bytes=settings.max_image_bytes)

    async def on_start(self) -> None:
        self._client = guarded_client(self.guard, timeout=self.timeout_s, max_connections=self.concurrency)

    async def on_stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def fetch_all(self, urls: Iterable[str]) -> dict[str, Fetched]:
        """Each distinct URL -> its bytes or why not; returns within ``timeout_s``."""
        unique = list(dict.fromkeys(urls))
        if not unique:
            return {}
        await self.maybe_start()  # usable without an explicit start (tests, the CLI)
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        slots = asyncio.Semaphore(self.concurrency)
        results = await asyncio.gather(*(self._one(url, deadline, slots) for url in unique))
        failed = sum(r.error is not None for r in results)
        if failed:
            log.info("image fetch: %d of %d URL(s) failed", failed, len(unique))
        return dict(zip(unique, results))

    async def _one(self, url: str, deadline: float, slots: asyncio.Semaphore) -> Fetched:
        try:
            async with asyncio.timeout_at(deadline):
                async with slots:
                    return Fetched(data=await self._fetch(url))
        except FetchFailed as e:
            return Fetched(error=str(e))
        except TimeoutError:
            return Fetched(error=f"timeout: not fetched within {self.timeout_s:g}s")
        except Exception as e:  # noqa: BLE001 - one URL's surprise must not fail the batch
            log.warning("image fetch of %.200s failed unexpectedly", url, exc_info=True)
            return Fetched(error=f"transport: {type(e).__name__}: {str(e)[:200]}")

    async def _fetch(self, url: str) -> bytes:
        assert self._client is not None
        try:
            async with guarded_stream(self._client, "GET", url, check=self._check, follow=REDIRECTS,
                                      max_redirects=self.max_redirects, headers=HEADERS) as resp:
                if not 200 <= resp.status_code < 300:
                    raise FetchFailed("http_error", f"HTTP {resp.status_code}")
                if not content_type_allowed(resp.headers.get("content-type")):
                    raise FetchFailed("not_image", f"content-type {resp.headers['content-type'][:100]!r}")
                return await self._read(resp)
        except TooManyRedirects:
            raise FetchFailed("too_many_redirects", f"more than {self.max_redirects}") from None
        except BlockedDestination as e:  # the connect-time check (a name re-resolved differently)
            raise FetchFailed("blocked", str(e)) from None
        except httpx.TimeoutException:
            raise TimeoutError from None
        except httpx.HTTPError as e:
            raise FetchFailed("transport", f"{type(e).__name__}: {str(e)[:200]}") from None

    async def _check(self, url: str) -> None:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError on a bad port
            httpx.URL(url)
        except (ValueError, httpx.InvalidURL) as e:
            raise FetchFailed("bad_url", f"{str(e)[:100]}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchFailed("bad_url", f"only http(s) URLs with a host: {url[:100]!r}")
        try:
            await self.guard.check_url(url)
        except BlockedDestination as e:
            raise FetchFailed("blocked", str(e)) from None

    async def _read(self, resp: httpx.Response) -> bytes:
        declared = resp.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise FetchFailed("too_large", f"{declared} bytes > {self.max_bytes}")
        body = bytearray()
        async for chunk in resp.aiter_bytes():
            body += chunk
            if len(body) > self.max_bytes:  # stop reading: leaving the stream closes the connection
                raise FetchFailed("too_large", f"more than {self.max_bytes} bytes")
        return bytes(body)

