"""A real `babelwatch api` process for API tests: a free port, the machine's Redis under its own key
prefix, a tokens file; plus raw-socket helpers for requests no HTTP client would send."""
from __future__ import annotations

import os
import socket
import sys
import time
import urllib.request
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from babelwatch.localstack.process import ManagedProcess, free_port, wait_until

REPO = Path(__file__).resolve().parents[1]
REDIS_URL = "redis://127.0.0.1:6379/0"

WRITE_TOKEN = "w-" + "0123456789abcdef" * 2  # the env token (scope write)
OPS_TOKEN = "ops-" + "fedcba9876543210" * 2  # tokens file, scope write
READ_TOKEN = "r-" + "00112233445566778899" * 2  # tokens file, scope read


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class ApiServer:
    base: str
    port: int
    prefix: str
    tokens_file: Path
    process: ManagedProcess

    @property
    def pid(self) -> int:
        return self.process.pid  # type: ignore[return-value]

    def log_text(self) -> str:
        return self.process.log_path.read_text(errors="replace")


@contextmanager
def api_server(run_dir: Path, **env: str):
    """`babelwatch api` with WRITE_TOKEN in the environment and OPS_TOKEN (write) and READ_TOKEN
    (read) in a tokens file; ``env``: more BABELWATCH_* settings."""
    prefix = f"bwtest-apih-{uuid.uuid4().hex[:8]}"
    port = free_port()
    tokens_file = run_dir / "tokens"
    tokens_file.write_text(f"# test tokens\nops write {OPS_TOKEN}\ndash read {READ_TOKEN}\n")
    full_env = {**os.environ, "BABELWATCH_REDIS_URL": REDIS_URL, "BABELWATCH_REDIS_PREFIX": prefix,
                "BABELWATCH_API_TOKEN": WRITE_TOKEN, "BABELWATCH_API_TOKENS_FILE": str(tokens_file),
                "PYTHONUNBUFFERED": "1", **env}
    proc = ManagedProcess("api", [sys.executable, "-m", "babelwatch", "api", "--host", "127.0.0.1", "--port",
                                  str(port)], run_dir, env=full_env, cwd=REPO)
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        with urllib.request.urlopen(base + "/health", timeout=2) as resp:
            return resp.status == 200

    proc.start()
    try:
        wait_until(answers, 60, interval=0.1, what="babelwatch api answering", process=proc)
        yield ApiServer(base, port, prefix, tokens_file, proc)
    finally:
        proc.stop()
        import redis

        r = redis.Redis.from_url(REDIS_URL)
        keys = list(r.scan_iter(f"{prefix}:*"))
        if keys:
            r.delete(*keys)
        r.close()


def rss_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


@dataclass
class RawAnswer:
    status: int | None
    head: bytes
    body: bytes
    sent: int  # body bytes the client managed to hand to the kernel before the answer
    seconds: float  # from the first byte sent to the answer read
    closed: bool  # the server closed the connection after answering


def send_big_body(port: int, head: bytes, body_size: int, chunk: int = 1 << 20, chunked: bool = False,
                  timeout_s: float = 20.0) -> RawAnswer:
    """Send ``head`` then up to ``body_size`` bytes of body (raw, or as chunked encoding), reading the
    answer as soon as one comes; stops sending then. Never buffers the body (one chunk reused)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 16)
    s.setblocking(False)
    piece = b"x" * chunk
    if chunked:
        piece = f"{chunk:x}\r\n".encode() + piece + b"\r\n"
    pending = memoryview(head)
    sent = 0
    got = b""
    t0 = time.monotonic()
    deadline = t0 + timeout_s
    closed = False
    import select

    while time.monotonic() < deadline:
        want_write = len(pending) > 0 or sent < body_size
        r, w, _ = select.select([s], [s] if want_write else [], [], 0.05)
        if r:
            try:
                data = s.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                closed = True
                break
            if not data:
                closed = True
                break
            got += data
            if b"\r\n\r\n" in got and _complete(got):
                # answered: see whether the server closes (it should, for an unread body)
                s.setblocking(True)
                s.settimeout(2.0)
                try:
                    closed = s.recv(65536) == b""
                except (ConnectionResetError, BrokenPipeError):
                    closed = True
                except socket.timeout:
                    closed = False
                break
        if w:
            if not len(pending):
                if sent >= body_size:
                    continue
                pending = memoryview(piece)
            try:
                n = s.send(pending)
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                # the answer may still be readable
                try:
                    s.setblocking(True)
                    s.settimeout(1.0)
                    got += s.recv(65536)
                except OSError:
                    pass
                break
            except BlockingIOError:
                continue
            if pending.obj is piece:
                sent += n
            pending = pending[n:]
    seconds = time.monotonic() - t0
    s.close()
    head_part, _, body_part = got.partition(b"\r\n\r\n")
    status = int(head_part.split()[1]) if head_part.startswith(b"HTTP/") else None
    return RawAnswer(status, head_part, body_part, sent, seconds, closed)


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            return len(body) >= int(v)
    return True
