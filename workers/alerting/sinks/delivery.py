"""One HTTP POST with timeouts, retries with exponential backoff, guarded redirects, dead-letter.

Shared by the webhook and Alertmanager sinks. Each sink owns its own client (its own connection
pool), so a receiver that hangs cannot starve another of connections.

* retried: connection errors, timeouts, 408, 425, 429 (``Retry-After`` honoured up to the backoff
  cap) and 5xx;
* not retried: other 4xx, refused destinations (SSRF guard), redirects other than 307/308;
* 307/308 are followed (up to ``max_redirects``) after the SSRF guard has checked the new URL;
* after the last failed attempt (or a permanent failure) the delivery goes to ``dead_letter`` and
  :class:`DeliveryFailed` is raised.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Callable, Mapping

import httpx
import tenacity

from workers.alerting.sinks.base import DeadLetterFn, DeliveryFailed, FailedDelivery, Sink, call_dead_letter
from workers.alerting.sinks.netguard import (
    AddressGuard, BlockedDestination, TooManyRedirects, guarded_client, guarded_stream,
)

log = logging.getLogger("babelwatch.alerting.delivery")

RETRY_STATUS = frozenset({408, 425, 429})
USER_AGENT = "babelwatch-alerting/1"


@dataclass(frozen=True)
class RetryPolicy:
    timeout_s: float = 5.0
    retries: int = 3
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    jitter: bool = True

    def delay(self, retry: int) -> float:
        """Before retry number ``retry`` (0-based): backoff * 2^retry, capped; jitter in [d/2, d]."""
        d = min(self.max_backoff_s, self.backoff_s * (2 ** retry))
        return d * (0.5 + random.random() / 2) if self.jitter else d


class _Permanent(Exception):
    def __init__(self, msg: str, status: int | None = None) -> None:
        super().__init__(msg)
        self.status = status


class _Transient(Exception):
    def __init__(self, msg: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(msg)
        self.status = status
        self.retry_after = retry_after


class HttpDelivery:
    """POSTs bodies to one receiver's URLs; ``start``/``stop`` own the client."""

    def __init__(
        self,
        guard: AddressGuard,
        policy: RetryPolicy,
        *,
        receiver: str = "",
        receiver_type: str = "http",
        dead_letter: DeadLetterFn | None = None,
        max_redirects: int = 3,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], object] = asyncio.sleep,
    ) -> None:
        self.guard = guard
        self.policy = policy
        self.receiver = receiver
        self.receiver_type = receiver_type
        self.dead_letter = dead_letter
        self.max_redirects = max_redirects
        self.clock = clock
        self._sleep = sleep
        self.client: httpx.AsyncClient | None = None
        self.attempts_total = 0

    async def start(self) -> None:
        if self.client is None:
            self.client = guarded_client(self.guard, timeout=self.policy.timeout_s)

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    async def post(
        self,
        url: str,
        body: bytes,
        headers: Callable[[], Mapping[str, str]] | Mapping[str, str],
        *,
        group_key: str = "",
        event_id: str = "",
    ) -> int:
        """The HTTP status (2xx) once delivered, or raise :class:`DeliveryFailed` (after dead-lettering). ``headers`` may be a
        function, called per attempt (fresh timestamps and signatures)."""
        await self.start()
        retrying = tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception_type(_Transient),
            stop=tenacity.stop_after_attempt(self.policy.retries + 1),
            wait=self._wait, sleep=self._sleep, before_sleep=self._log_retry, reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    self.attempts_total += 1
                    return await self._attempt(url, body, headers() if callable(headers) else headers)
        except (_Permanent, _Transient) as e:
            attempts, last_error, last_status = attempt.retry_state.attempt_number, str(e), e.status
        log.warning("%s %s: giving up after %d attempt(s): %s", self.receiver_type, self.receiver, attempts,
                    last_error)
        await call_dead_letter(self.dead_letter, FailedDelivery(
            receiver=self.receiver, receiver_type=self.receiver_type, url=url, group_key=group_key,
            event_id=event_id, body=body, error=last_error, attempts=attempts, at=self.clock(), status=last_status,
        ))
        raise DeliveryFailed(f"{self.receiver_type} {self.receiver}: {last_error}")

    def _wait(self, state: tenacity.RetryCallState) -> float:
        """The policy's backoff; a ``Retry-After`` longer than that is honoured up to the cap."""
        delay = self.policy.delay(state.attempt_number - 1)
        retry_after = state.outcome.exception().retry_after
        return delay if retry_after is None else max(delay, min(retry_after, self.policy.max_backoff_s))

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        log.info("%s %s: attempt %d failed (%s); retrying in %.2fs", self.receiver_type, self.receiver,
                 state.attempt_number, state.outcome.exception(), state.next_action.sleep)

    async def _attempt(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        assert self.client is not None
        try:
            # streamed and never read: a receiver cannot make us buffer a huge response
            async with guarded_stream(self.client, "POST", url, check=self.guard.check_url, follow=(307, 308),
                                      max_redirects=self.max_redirects, content=body,
                                      headers={"User-Agent": USER_AGENT, **headers}) as resp:
                status, resp_headers = resp.status_code, resp.headers
        except TooManyRedirects as e:
            raise _Permanent(str(e)) from None
        except BlockedDestination as e:
            raise _Permanent(f"destination refused: {e}") from None
        except httpx.TimeoutException as e:
            raise _Transient(f"timeout ({type(e).__name__})") from None
        except httpx.TransportError as e:
            raise _Transient(f"transport error: {type(e).__name__}: {e}") from None
        if 200 <= status < 300:
            return status
        if 300 <= status < 400:
            raise _Permanent(f"HTTP {status}: redirect not followed", status)
        if status in RETRY_STATUS or status >= 500:
            raise _Transient(f"HTTP {status}", status, _retry_after(resp_headers.get("retry-after")))
        raise _Permanent(f"HTTP {status}", status)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class HttpSink(Sink):
    """A sink that POSTs over :class:`HttpDelivery` with the receiver's retry policy; subclasses
    say how a notification becomes a body (``send``)."""

    receiver_type = "http"

    def __init__(self, receiver, guard: AddressGuard, *, dead_letter: DeadLetterFn | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.receiver = receiver
        self.name = receiver.name
        self.dead_letter = dead_letter
        self.clock = clock
        self.http = HttpDelivery(
            guard,
            RetryPolicy(receiver.timeout_s, receiver.retries, receiver.backoff_s, receiver.max_backoff_s),
            receiver=receiver.name, receiver_type=self.receiver_type, dead_letter=dead_letter, clock=clock,
        )

    async def start(self) -> None:
        await self.http.start()

    async def stop(self) -> None:
        await self.http.stop()
