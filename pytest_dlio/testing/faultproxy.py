"""A loopback HTTP proxy that injects a bounded number of storage faults, then passes everything through.

Put it in front of moto or Azurite (or any HTTP object store on 127.0.0.1) and point the store at the
proxy's ``endpoint`` (S3: ``storage_options.endpoint_url``; Azure: the connection string's
``BlobEndpoint``)::

    with FaultProxy("http://127.0.0.1:5000", [Fault("status", 5, method="GET", status=503)]) as proxy:
        ...  # the next 5 GETs get a 503, every other request goes to the server
    assert proxy.injected == {"status": 5}

Faults (each with a required ``count``, matched in order; a request takes the first rule with count left):

- ``status``: answer ``status`` (503, 500, 429, …) with an S3/Azure-style XML error; the server never
  sees the request.
- ``reset``: read the request, then reset the connection (TCP RST) without answering.
- ``truncate``: forward, then send the server's headers (its Content-Length) with only part of the body
  and close the connection.
- ``stall``: forward, then hold the response ``seconds`` before sending it.

``every=2`` injects into every other matching request, so a retry of a faulted request goes through.
Note that aiohttp (under aiobotocore and azure-core) re-sends an idempotent request once by itself when
its connection resets, unseen by the clients' retry counters: of two consecutive resets of one GET, the
store counts one retry.

Only 127.0.0.1 is served and proxied to; the proxy stops on ``close``/``with`` exit and by itself after
``lifetime`` seconds. It speaks just enough HTTP/1.1 for object-store clients (Content-Length and chunked
bodies, ``Expect: 100-continue``, keep-alive towards the client, one upstream connection per request).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Self
from urllib.parse import urlsplit

KINDS = ("status", "reset", "truncate", "stall")
_REASONS = {
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_CODES = {429: "SlowDown", 500: "InternalError", 502: "BadGateway", 503: "SlowDown", 504: "GatewayTimeout"}


@dataclass(frozen=True)
class Fault:
    """Inject ``kind`` into the next ``count`` requests matching ``method`` (None: any) and ``path``
    (a substring of the request target; None: any)."""

    kind: str
    count: int
    method: str | None = None
    path: str | None = None
    status: int = 503
    seconds: float = 1.0
    #: ``truncate``: the fraction of the body sent before the connection closes.
    keep: float = 0.5
    #: Inject into one matching request of every ``every`` (2: fault, pass, fault, … so each retry of a
    #: faulted request goes through).
    every: int = 1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"fault kind {self.kind!r}: expected one of {', '.join(KINDS)}")
        if not 0 <= self.count <= 10_000:
            raise ValueError(f"fault count {self.count}: must be between 0 and 10000 (faults are bounded)")
        if not 0 <= self.seconds <= 600:
            raise ValueError(f"stall of {self.seconds} s: must be between 0 and 600 s")
        if self.every < 1:
            raise ValueError(f"every={self.every}: must be >= 1")

    def matches(self, method: str, target: str) -> bool:
        return (self.method is None or self.method == method) and (self.path is None or self.path in target)


@dataclass
class _Armed:
    fault: Fault
    left: int
    seen: int = 0


@dataclass
class _Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


class FaultProxy:
    """The proxy, served from a thread of its own on ``127.0.0.1:port`` (0: any free port)."""

    def __init__(
        self,
        upstream: str,
        faults: list[Fault] | tuple[Fault, ...] = (),
        *,
        port: int = 0,
        lifetime: float = 300.0,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.hostname not in ("127.0.0.1", "localhost") or parts.port is None:
            raise ValueError(f"upstream {upstream!r}: the fault proxy only forwards to 127.0.0.1:PORT")
        self.upstream = ("127.0.0.1", parts.port)
        self._rules = [_Armed(f, f.count) for f in faults]
        self._lock = threading.Lock()
        self.injected: Counter[str] = Counter()
        self.requests = 0
        self._port, self._lifetime = port, lifetime
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, *faults: Fault) -> None:
        """Arm more faults (e.g. after the dataset was written through the proxy)."""
        with self._lock:
            self._rules += [_Armed(f, f.count) for f in faults]

    def disarm(self) -> None:
        """Drop every fault not injected yet (e.g. before cleaning up through the proxy)."""
        with self._lock:
            self._rules = []

    def remaining(self) -> int:
        """Faults armed and not yet injected."""
        with self._lock:
            return sum(r.left for r in self._rules)

    # ---- lifecycle ----
    def start(self) -> Self:
        self._thread = threading.Thread(target=self._serve_thread, name="dlio-fault-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or not self.port:
            raise RuntimeError("the fault proxy did not start")
        return self

    def close(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _serve_thread(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        server = await asyncio.start_server(self._client, "127.0.0.1", self._port)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._lifetime)
            server.close()

    # ---- one client connection ----
    def _take(self, req: _Request) -> Fault | None:
        with self._lock:
            self.requests += 1
            for rule in self._rules:
                if rule.left > 0 and rule.fault.matches(req.method, req.target):
                    rule.seen += 1
                    if (rule.seen - 1) % rule.fault.every:
                        return None  # this one passes
                    rule.left -= 1
                    self.injected[rule.fault.kind] += 1
                    return rule.fault
        return None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                req = await _read_request(reader, writer)
                if req is None:
                    return
                fault = self._take(req)
                if fault is not None and fault.kind == "reset":
                    _reset(writer)
                    return
                if fault is not None and fault.kind == "status":
                    writer.write(_error_response(fault.status, req))
                    await writer.drain()
                    continue
                head, body = await self._forward(req)
                if fault is not None and fault.kind == "stall":
                    await asyncio.sleep(fault.seconds)
                if fault is not None and fault.kind == "truncate" and body:
                    writer.write(head + body[: int(len(body) * fault.keep)])
                    await writer.drain()
                    _reset(writer)
                    return
                writer.write(head + body)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _forward(self, req: _Request) -> tuple[bytes, bytes]:
        """The server's answer to ``req`` as (status line + headers re-framed with Content-Length, body)."""
        up_r, up_w = await asyncio.open_connection(*self.upstream)
        try:
            headers = [
                (k, v)
                for k, v in req.headers
                if k.lower() not in ("connection", "expect", "transfer-encoding", "content-length")
            ]
            headers += [("Content-Length", str(len(req.body))), ("Connection", "close")]
            up_w.write(_head(f"{req.method} {req.target} {req.version}", headers) + req.body)
            await up_w.drain()
            while True:
                status_line, resp_headers = await _read_head(up_r)
                if not status_line.split(" ")[1].startswith("1"):
                    break
            code = int(status_line.split(" ")[1])
            body = b""
            if req.method != "HEAD" and code not in (204, 304):
                body = await _read_body(up_r, resp_headers, until_eof=True)
            length = next((v for k, v in resp_headers if k.lower() == "content-length"), None)
            kept = [
                (k, v)
                for k, v in resp_headers
                if k.lower() not in ("connection", "transfer-encoding", "content-length", "keep-alive")
            ]
            if req.method == "HEAD" and length is not None:
                kept.append(("Content-Length", length))
            elif req.method != "HEAD":
                kept.append(("Content-Length", str(len(body))))
            return _head(status_line, kept), body
        finally:
            up_w.close()


def _head(first: str, headers: list[tuple[str, str]]) -> bytes:
    return (first + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n").encode("latin-1")


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, list[tuple[str, str]]]:
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    headers = [(k.strip(), v.strip()) for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)]
    return lines[0], headers


async def _read_body(reader: asyncio.StreamReader, headers: list[tuple[str, str]], until_eof: bool) -> bytes:
    values = {k.lower(): v for k, v in headers}
    if "chunked" in values.get("transfer-encoding", "").lower():
        out = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers from object stores
                return bytes(out)
            out += await reader.readexactly(size)
            await reader.readexactly(2)
    if "content-length" in values:
        return await reader.readexactly(int(values["content-length"]))
    return await reader.read() if until_eof else b""


async def _read_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> _Request | None:
    try:
        first, headers = await _read_head(reader)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    method, target, version = first.split(" ", 2)
    if any(k.lower() == "expect" and v.lower() == "100-continue" for k, v in headers):
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()
    body = await _read_body(reader, headers, until_eof=False)
    return _Request(method, target, version, headers, body)


def _error_response(status: int, req: _Request) -> bytes:
    code = _CODES.get(status, "InternalError")
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
        f"<Message>injected by the fault proxy</Message></Error>"
    ).encode()
    headers = [("Content-Type", "application/xml"), ("x-ms-error-code", code)]
    if req.method != "HEAD":
        headers.append(("Content-Length", str(len(body))))
    else:
        headers.append(("Content-Length", "0"))
        body = b""
    return _head(f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}", headers) + body


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0), as a crashed or overloaded server does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
