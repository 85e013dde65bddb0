"""Exit codes of the ``babelwatch`` command and the one-line errors behind them.

A command that needs the broker, Redis or Triton checks it can reach them before it starts
(:func:`preflight`: a TCP connect, or a PING for Redis, a few seconds at most), and the top level
turns a connection failure raised later into the same one line (:func:`classify`): never a traceback
for a server that is down or misaddressed.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

OK = 0
FAILED = 1        # the work failed, or the API said no
USAGE = 2         # bad arguments or input (argparse uses 2 too)
BROKER = 3        # the Kafka broker cannot be reached (BABELWATCH_BROKER_URL)
REDIS = 4         # Redis cannot be reached (BABELWATCH_REDIS_URL)
TRITON = 5        # Triton cannot be reached (BABELWATCH_TRITON_URL)
INTERRUPTED = 130  # Ctrl-C

EXIT_CODES = {OK: "success", FAILED: "failure (the work failed, or the API answered an error)",
              USAGE: "usage error (bad arguments or input)", BROKER: "the Kafka broker cannot be reached",
              REDIS: "Redis cannot be reached", TRITON: "Triton cannot be reached", INTERRUPTED: "interrupted (Ctrl-C)"}

CONNECT_TIMEOUT_S = 3.0


@dataclass
class Unreachable(Exception):
    what: str  # broker | redis | triton
    address: str
    reason: str

    @property
    def code(self) -> int:
        return {"broker": BROKER, "redis": REDIS, "triton": TRITON}[self.what]

    def __str__(self) -> str:
        name = {"broker": "the Kafka broker", "redis": "Redis", "triton": "Triton"}[self.what]
        setting = {"broker": "BABELWATCH_BROKER_URL", "redis": "BABELWATCH_REDIS_URL",
                   "triton": "BABELWATCH_TRITON_URL"}[self.what]
        return f"cannot reach {name} at {self.address} ({self.reason}); check {setting}"


def _hostport(text: str, default_port: int) -> tuple[str, int]:
    text = text.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
    host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    if not port.isdigit():
        return text.strip("[]"), default_port
    return host.strip("[]"), int(port)


def _connect(what: str, host: str, port: int) -> None:
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise Unreachable(what, f"{host}:{port}", e.strerror or type(e).__name__) from None


def check_broker(settings) -> None:
    """Any one bootstrap server answering TCP is enough (the client finds the others)."""
    failures = []
    for part in settings.bootstrap.split(","):
        host, port = _hostport(part.strip(), 9092)
        try:
            _connect("broker", host, port)
            return
        except Unreachable as e:
            failures.append(e)
    if failures:
        raise failures[0]


def check_redis(settings) -> None:
    import redis

    url = urlsplit(settings.redis_url)
    where = f"{url.hostname or '127.0.0.1'}:{url.port or 6379}"  # never the password
    try:
        from workers.redis_client import sync_redis  # TLS and the ACL user from Settings

        client = sync_redis(settings, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=CONNECT_TIMEOUT_S)
        try:
            client.ping()
        finally:
            client.close()
    except redis.exceptions.AuthenticationError:
        raise Unreachable("redis", where, "authentication failed") from None
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as e:
        raise Unreachable("redis", where, _short(e)) from None


def check_triton(settings, url: str | None = None) -> None:
    host, port = _hostport(url or settings.triton_url, 8001)
    _connect("triton", host, port)


CHECKS = {"broker": check_broker, "redis": check_redis, "triton": check_triton}


def preflight(settings, needs: tuple[str, ...]) -> None:
    for what in needs:
        CHECKS[what](settings)


def _short(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text[:160]


def classify(exc: BaseException, settings) -> Unreachable | None:
    """A connection failure raised inside a command, as the :class:`Unreachable` it means; else None."""
    mod = type(exc).__module__ or ""
    name = type(exc).__name__
    if mod.startswith(("kafka", "aiokafka")) and ("Connection" in name or "NoBrokers" in name
                                                  or "NodeNotReady" in name or name == "KafkaTimeoutError"):
        return Unreachable("broker", settings.bootstrap, name)
    if mod.startswith("redis") and name in ("ConnectionError", "TimeoutError", "BusyLoadingError"):
        url = urlsplit(settings.redis_url)
        return Unreachable("redis", f"{url.hostname or '127.0.0.1'}:{url.port or 6379}", _short(exc))
    if mod.startswith("tritonclient") and "unavailable" in str(exc).lower():
        return Unreachable("triton", settings.triton_url, "unavailable")
    return None
