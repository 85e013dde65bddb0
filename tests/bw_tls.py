"""TLS test helpers (issue 12): a throwaway PKI made with the openssl CLI, and a real TLS
terminator (asyncio, its own thread) in front of a plaintext server such as the Tansu broker,
which speaks no TLS itself here (its --cert flag never completed a handshake, measured)."""
from __future__ import annotations

import asyncio
import ssl
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from babelwatch.localstack.process import free_port


@dataclass
class Pki:
    ca: Path              # the CA the clients trust
    server_cert: Path     # names localhost and 127.0.0.1
    server_key: Path
    client_cert: Path     # signed by the CA (mTLS)
    client_key: Path
    other_ca: Path        # a CA nobody used: trusting it must fail
    odd_cert: Path        # signed by the CA but for other.example only (host name check)
    odd_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ca(d: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt",
             "-days", "2", "-subj", f"/CN={name}", cwd=d)


def _leaf(d: Path, name: str, cn: str, san: str | None, ca: str = "ca") -> None:
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", f"/CN={cn}", cwd=d)
    ext = d / f"{name}.ext"
    ext.write_text(f"subjectAltName={san}\n" if san else "basicConstraints=CA:FALSE\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
             "-out", f"{name}.crt", "-days", "2", "-extfile", ext.name, cwd=d)


def make_pki(d: Path) -> Pki:
    d.mkdir(parents=True, exist_ok=True)
    _ca(d, "ca")
    _ca(d, "other-ca")
    _leaf(d, "server", "localhost", "DNS:localhost,IP:127.0.0.1")
    _leaf(d, "client", "babelwatch-worker", None)
    _leaf(d, "odd", "other.example", "DNS:other.example")
    for key in d.glob("*.key"):
        key.chmod(0o600)
    return Pki(d / "ca.crt", d / "server.crt", d / "server.key", d / "client.crt", d / "client.key",
               d / "other-ca.crt", d / "odd.crt", d / "odd.key")


class TlsProxy:
    """TLS on 127.0.0.1:``port`` in front of plaintext ``upstream`` (host, port); with
    ``client_ca`` a client certificate signed by it is required (mTLS)."""

    def __init__(self, upstream: tuple[str, int], cert: Path, key: Path, client_ca: Path | None = None,
                 port: int | None = None, alpn: list[str] | None = None) -> None:
        self.upstream = upstream
        self.port = port or free_port()
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        if alpn:  # gRPC clients insist on negotiating "h2"
            self.ctx.set_alpn_protocols(alpn)
        if client_ca is not None:
            self.ctx.verify_mode = ssl.CERT_REQUIRED
            self.ctx.load_verify_locations(client_ca)
        self.handshakes_failed = 0
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name=f"tls-proxy-{self.port}")
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    def start(self) -> "TlsProxy":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, ssl=self.ctx,
                                                  ssl_handshake_timeout=5)
        self._loop.set_exception_handler(self._on_loop_error)

    def _on_loop_error(self, loop, context) -> None:
        # a refused handshake (wrong CA, no client certificate) surfaces here, not in _handle
        self.handshakes_failed += 1

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._tasks.add(asyncio.current_task())
        try:
            up_r, up_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, ConnectionError, ssl.SSLError):
                pass
            finally:
                try:
                    dst.close()
                except Exception:
                    pass

        try:
            await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))
        finally:
            self._tasks.discard(asyncio.current_task())

    def stop(self) -> None:
        async def _stop() -> None:
            if self._server is not None:
                self._server.close()
            for t in list(self._tasks):
                t.cancel()
            await asyncio.sleep(0)

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()
