"""MLLP (Minimal Lower Layer Protocol) over TCP, optionally TLS: the server and a client.

A frame is 0x0B, the message, 0x1C 0x0D. The server reads frames one at a time per
connection and answers each before reading the next, so a sender's order is kept. It
never answers for a frame it has not handed to its handler: a frame cut off by a closed
connection, an oversized frame or an idle timeout gets no ACK, and the sender resends it.
A misbehaving peer is closed and logged; no other connection notices.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

log = logging.getLogger("clarion.listener")

START = b"\x0b"
END = b"\x1c"
END_FRAME = b"\x1c\x0d"

Handler = Callable[[bytes, str], Awaitable[bytes]]


def frame(payload: bytes) -> bytes:
    """Wrap a message in MLLP framing."""
    return START + payload + END_FRAME


@dataclass(slots=True)
class ServerLimits:
    """What a peer may do before it is disconnected."""

    max_message_bytes: int = 16 * 1024 * 1024
    idle_timeout_s: float = 300.0
    max_connections: int = 64
    allowed_senders: tuple[str, ...] = ()
    shutdown_grace_s: float = 5.0


@dataclass(slots=True)
class _Connection:
    peer: str
    writer: asyncio.StreamWriter
    task: asyncio.Task[None] | None = None
    busy: bool = False  # a frame is with the handler; its ACK is owed
    frames: int = 0


@dataclass(slots=True)
class ServerStats:
    """Counters for the status line and `clarion listen`."""

    connections_total: int = 0
    connections_refused: int = 0
    frames: int = 0
    frames_abandoned: int = 0
    active: dict[int, _Connection] = field(default_factory=dict)


class MllpServer:
    """An asyncio MLLP server. `handler(payload, peer)` returns the ACK bytes to send."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 2575,
                 limits: ServerLimits | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self._handler = handler
        self.host = host
        self.port = port
        self.limits = limits or ServerLimits()
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None
        self._stopping = False
        self.stats = ServerStats()
        self._networks = [ipaddress.ip_network(n, strict=False)
                          for n in self.limits.allowed_senders]

    @property
    def bound_port(self) -> int:
        """The port actually bound (useful with port 0)."""
        assert self._server is not None and self._server.sockets
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        # The stream limit bounds one readuntil(): the largest frame plus its framing.
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, ssl=self._ssl,
            limit=self.limits.max_message_bytes + 2, reuse_address=True)
        log.info("listening for MLLP on %s:%d%s", self.host, self.bound_port,
                 " (TLS)" if self._ssl else "")

    async def stop(self) -> None:
        """Stop accepting; let in-flight frames get their ACK (within the grace); close."""
        self._stopping = True
        if self._server is not None:
            self._server.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.shutdown_grace_s
        for conn in list(self.stats.active.values()):
            if not conn.busy and conn.task is not None:
                conn.task.cancel()
        while any(c.busy for c in self.stats.active.values()) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        tasks = [c.task for c in self.stats.active.values() if c.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
        log.info("listener stopped (%d frames answered, %d abandoned)",
                 self.stats.frames, self.stats.frames_abandoned)

    def _allowed(self, peer_ip: str) -> bool:
        if not self._networks:
            return True
        try:
            address = ipaddress.ip_address(peer_ip.split("%")[0])
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername") or ("?", 0)
        peer = f"{peername[0]}:{peername[1]}"
        if self._stopping:
            writer.close()
            return
        if not self._allowed(str(peername[0])):
            self.stats.connections_refused += 1
            log.warning("refused connection from %s: not in listener.allowed_senders", peer)
            writer.close()
            return
        if len(self.stats.active) >= self.limits.max_connections:
            self.stats.connections_refused += 1
            log.warning("refused connection from %s: %d connections open "
                        "(listener.max_connections)", peer, len(self.stats.active))
            writer.close()
            return
        conn = _Connection(peer=peer, writer=writer, task=asyncio.current_task())
        self.stats.connections_total += 1
        self.stats.active[id(conn)] = conn
        log.info("connection from %s", peer)
        try:
            await self._serve(conn, reader)
        except asyncio.CancelledError:
            if conn.busy:
                self.stats.frames_abandoned += 1
                log.warning("%s: shutdown abandoned a frame in flight; the sender will resend",
                            peer)
        except Exception:  # one connection's failure must never reach the others
            log.exception("%s: connection failed; closing it", peer)
        finally:
            self.stats.active.pop(id(conn), None)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            log.info("%s: closed after %d frame(s)", peer, conn.frames)

    async def _serve(self, conn: _Connection, reader: asyncio.StreamReader) -> None:
        idle = self.limits.idle_timeout_s
        while not self._stopping:
            try:
                async with asyncio.timeout(idle) as deadline:
                    junk = await reader.readuntil(START)
                    if junk[:-1].strip():
                        log.warning("%s: skipped %d bytes outside any frame", conn.peer,
                                    len(junk) - 1)
                    deadline.reschedule(asyncio.get_running_loop().time() + idle)
                    body = await reader.readuntil(END)
            except asyncio.IncompleteReadError as exc:
                if exc.partial.strip():
                    log.warning("%s: connection closed mid-frame (%d bytes unanswered; "
                                "the sender must resend)", conn.peer, len(exc.partial))
                return
            except asyncio.LimitOverrunError:
                log.warning("%s: frame larger than listener.max_message_bytes (%d); closing",
                            conn.peer, self.limits.max_message_bytes)
                return
            except TimeoutError:
                log.info("%s: idle for %.0f s; closing", conn.peer, idle)
                return
            except (ConnectionError, ssl.SSLError) as exc:
                log.warning("%s: connection error: %s", conn.peer, exc)
                return
            payload = body[:-1]
            restart = payload.rfind(START)
            if restart >= 0:
                # A new start block inside a frame: the earlier frame was never finished.
                log.warning("%s: frame restarted before its end block; %d bytes of an "
                            "unfinished frame dropped unanswered", conn.peer, restart)
                payload = payload[restart + 1:]
            if len(payload) > self.limits.max_message_bytes:
                log.warning("%s: frame of %d bytes exceeds listener.max_message_bytes; "
                            "closing", conn.peer, len(payload))
                return
            conn.busy = True
            try:
                ack = await self._handler(payload, conn.peer)
                conn.writer.write(frame(ack))
                await conn.writer.drain()
            finally:
                conn.busy = False
            conn.frames += 1
            self.stats.frames += 1


class ListenerThread:
    """Runs an `MllpServer` on its own asyncio loop in a background thread (for the app)."""

    def __init__(self, server_factory: Callable[[], MllpServer]) -> None:
        self._factory = server_factory
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.server: MllpServer | None = None

    def start(self, timeout: float = 10.0) -> MllpServer:
        self._thread = threading.Thread(target=self._run, name="clarion-listener", daemon=True)
        self._thread.start()
        self._ready.wait(timeout)
        if self._error is not None:
            raise self._error
        assert self.server is not None
        return self.server

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self.server = self._factory()
        try:
            self._loop.run_until_complete(self.server.start())
        except BaseException as exc:  # noqa: BLE001 - handed to start()'s caller
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    def stop(self, timeout: float = 30.0) -> None:
        if self._loop is None or self.server is None or self._error is not None:
            return
        future = asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop)
        with contextlib.suppress(Exception):
            future.result(timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout)


class MllpClient:
    """A blocking MLLP client: send one message, wait for its ACK."""

    def __init__(self, host: str, port: int, *, timeout: float = 30.0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        raw = socket.create_connection((host, port), timeout=timeout)
        self._sock = ssl_context.wrap_socket(raw, server_hostname=host) if ssl_context else raw
        self._buffer = b""

    def __enter__(self) -> MllpClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()

    def send(self, payload: bytes) -> bytes:
        """Send one message; return the payload of the answering frame."""
        self._sock.sendall(frame(payload))
        return self.receive()

    def receive(self) -> bytes:
        while True:
            start = self._buffer.find(START)
            end = self._buffer.find(END, start + 1) if start >= 0 else -1
            if start >= 0 and end >= 0:
                payload = self._buffer[start + 1:end]
                self._buffer = self._buffer[end + 1:].lstrip(b"\r")
                return payload
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed before the ACK arrived")
            self._buffer += chunk


def send_all(host: str, port: int, payloads: Iterable[bytes], *, timeout: float = 30.0,
             ssl_context: ssl.SSLContext | None = None) -> list[bytes]:
    """Send messages in order over one connection; return their ACK payloads."""
    with MllpClient(host, port, timeout=timeout, ssl_context=ssl_context) as client:
        return [client.send(p) for p in payloads]
