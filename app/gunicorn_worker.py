"""gunicorn's gthread worker, hardened for clients on an open network.

* A request is read in full (head and body) by the worker's event loop, without a thread,
  before a thread serves it: slow or stalled clients cost a socket, never a request thread.
  A request that is not complete `read_timeout` seconds after the connection opened (or, on
  a kept-alive connection, after its first byte) is answered 408 and closed; a connection
  that sent nothing is closed silently.
* Whatever gunicorn refuses itself (malformed request lines and headers, over-long request
  targets or header blocks, unsupported transfer codings, bad chunk framing) is answered in
  Tecton's JSON error envelope instead of gunicorn's HTML page.
* Under TLS the handshake and the request are read by the thread as gunicorn does, bounded
  by the same timeout per request.
"""

from __future__ import annotations

import contextlib
import errno
import re
import selectors
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

from gunicorn.http import errors as http_errors
from gunicorn.workers.gthread import TConn, ThreadWorker

from app.config import Settings
from app.errors import BadRequest, RequestTimeout, envelope_body

# A request head (request line and headers) longer than this is handed to gunicorn's parser
# unfinished: its limits (4 KiB request line, 8 KiB per field, 100 fields) answer 414 or 431.
MAX_HEAD_BYTES = 64 * 1024
# A chunk-size line (hex digits plus extensions) or a trailer section longer than this is
# handed to the parser unfinished, which answers 400.
MAX_CHUNK_LINE_BYTES = 4 * 1024
MAX_TRAILER_BYTES = 8 * 1024
RECV_BYTES = 64 * 1024
# A closed connection's unread input is drained this long, at most this much, so that the
# kernel does not reset it before the client has read the last response (RFC 9112 9.6).
LINGER_SECONDS = 2.0
LINGER_BYTES = 64 * 1024
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")

# What gunicorn's parser refuses, as (status, reason, gRPC code); anything else is a 400.
_REFUSALS: tuple[tuple[type[Exception], int, str, int], ...] = (
    (http_errors.LimitRequestLine, 414, "URI Too Long", 3),
    (http_errors.LimitRequestHeaders, 431, "Request Header Fields Too Large", 8),
    (http_errors.ExpectationFailed, 417, "Expectation Failed", 9),
    (http_errors.UnsupportedTransferCoding, 501, "Not Implemented", 12),
    (http_errors.ForbiddenProxyRequest, 403, "Forbidden", 7),
)
_CLIENT_ERRORS = (http_errors.ParseException, OSError)


def _status_line(status: int, reason: str) -> bytes:
    return b"HTTP/1.1 %d %s\r\n" % (status, reason.encode("ascii"))


def error_response(status: int, reason: str, code: int, message: str) -> bytes:
    """A complete HTTP/1.1 response carrying Tecton's error envelope; the connection closes."""
    body = envelope_body(message, code)
    return (
        _status_line(status, reason)
        + b"Content-Type: application/json\r\nConnection: close\r\n"
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


def refusal(exc: BaseException) -> tuple[int, str, int, str]:
    """(status, reason, gRPC code, message) for a request gunicorn's parser refused."""
    for error_class, status, reason, code in _REFUSALS:
        if isinstance(exc, error_class):
            return status, reason, code, f"{reason}: {exc}"
    if isinstance(exc, http_errors.ParseException):
        return 400, "Bad Request", BadRequest.code, f"Bad Request: {exc}"
    return 500, "Internal Server Error", 13, "Internal error"


@dataclass(slots=True)
class _Scan:
    """How far the event loop has read one request; resumes where the last recv() ended."""

    head_end: int = -1  # index just past the blank line ending the head
    chunked: bool = False
    content_length: int = 0
    expects_continue: bool = False
    pos: int = 0  # chunked: start of the next chunk-size line
    body_bytes: int = 0  # chunked: data bytes seen so far
    complete: bool = False
    # Handed to the thread before its end (oversized or malformed): serve it, then close.
    cut_short: bool = False


class _Conn(TConn):  # type: ignore[misc]  # gunicorn ships no type information
    """A connection with the bytes the event loop read ahead and a per-request deadline."""

    def __init__(self, cfg: Any, sock: socket.socket, client: Any, server: Any) -> None:
        super().__init__(cfg, sock, client, server)
        self.read_timeout: float = 5.0
        self.deadline = 0.0
        self.prefetched = bytearray()
        self.scan = _Scan()
        self.sent_continue = False
        self.linger: Callable[[_Conn], None] | None = None
        self.drained = 0

    def init(self) -> None:
        """Runs in the thread before each request: bounded reads, read-ahead bytes first."""
        self.deadline = time.monotonic() + self.read_timeout
        self.sock.settimeout(self.read_timeout)  # bounds the TLS handshake too
        super().init()
        self.sock.settimeout(self.read_timeout)
        unreader = getattr(self.parser, "unreader", None)  # None: HTTP/2 (off by default)
        if unreader is None:
            return
        if not isinstance(getattr(unreader, "sock", None), _DeadlineSocket):
            unreader.sock = _DeadlineSocket(self.sock, self)
        if self.prefetched:
            unreader.unread(bytes(self.prefetched))
            self.prefetched = bytearray()

    def close(self, graceful: bool = False) -> None:
        """A graceful close lingers in the event loop, not blocking it as gunicorn's does."""
        if graceful and self.linger is not None:
            self.linger(self)
        else:
            super().close(graceful)


class _DeadlineSocket:
    """The socket as the parser reads it: each recv() waits only until the request's deadline."""

    def __init__(self, sock: socket.socket, conn: _Conn) -> None:
        self._sock = sock
        self._conn = conn

    def recv(self, size: int) -> bytes:
        remaining = self._conn.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the request was not received in time")
        self._sock.settimeout(remaining)
        try:
            return self._sock.recv(size)
        finally:  # writes keep the whole timeout
            self._sock.settimeout(self._conn.read_timeout)

    def gettimeout(self) -> float | None:
        return self._sock.gettimeout()

    def settimeout(self, value: float | None) -> None:
        self._sock.settimeout(value)


class _Body:
    """wsgi.input whose framing errors are the client's fault: 400 (or 408), never a 500."""

    # Reads never wait past the read timeout (the request is buffered, or its socket bounded).
    bounded = True

    def __init__(self, body: Any) -> None:
        self._body = body

    def _call(self, method: Callable[..., Any], *args: Any) -> Any:
        try:
            return method(*args)
        except TimeoutError:
            raise RequestTimeout("Timed out reading the request body.") from None
        except _CLIENT_ERRORS as exc:
            raise BadRequest(f"Unable to read the request body: {exc}") from None

    def read(self, size: int | None = None) -> bytes:
        data: bytes = self._call(self._body.read, size)
        return data

    def readline(self, size: int | None = None) -> bytes:
        line: bytes = self._call(self._body.readline, size)
        return line

    def readlines(self, hint: int | None = None) -> list[bytes]:
        lines: list[bytes] = self._call(self._body.readlines, hint)
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line


class TectoniteWorker(ThreadWorker):  # type: ignore[misc]  # gunicorn ships no type information
    """gthread with requests read by the event loop first; see the module docstring.

    `GunicornServer` subclasses it with the settings below filled in; run by hand
    (`gunicorn -k app.gunicorn_worker.TectoniteWorker wsgi:app`) it reads the environment.
    """

    read_timeout: ClassVar[float | None] = None
    max_body_bytes: ClassVar[int | None] = None
    wsgi: Callable[..., Iterable[bytes]]  # set by gunicorn's load_wsgi()

    def init_process(self) -> None:
        self.timeout_s: float
        self.body_limit: int
        if self.read_timeout is None or self.max_body_bytes is None:
            settings = Settings.from_env()
            self.timeout_s, self.body_limit = settings.read_timeout_s, settings.max_body_bytes
        else:
            self.timeout_s, self.body_limit = self.read_timeout, self.max_body_bytes
        # Connections being read, oldest first (all share one timeout, so deadlines ascend).
        self.reading: dict[_Conn, float] = {}
        # Closed connections draining what the client still sends, oldest first.
        self.lingering: dict[_Conn, float] = {}
        super().init_process()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        app = self.wsgi

        def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            environ["wsgi.input"] = _Body(environ["wsgi.input"])
            return app(environ, start_response)

        self.wsgi = wsgi

    # ----------------------------------------------------------------- reading in the loop

    def accept(self, listener: socket.socket) -> None:
        try:
            client_sock, client_addr = listener.accept()
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                return
            raise
        self.nr_conns += 1
        conn = _Conn(self.cfg, client_sock, client_addr, listener.getsockname())
        conn.read_timeout = self.timeout_s
        conn.deadline = time.monotonic() + self.timeout_s
        if self.cfg.is_ssl:
            # The handshake needs a blocking socket: the thread reads, bounded by the deadline.
            self.enqueue_req(conn)
        else:
            conn.linger = self._linger
            self._start_reading(conn)

    def on_client_socket_readable(self, conn: _Conn, client: socket.socket) -> None:
        """A kept-alive connection starts its next request: read it before a thread serves it."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        conn.deadline = time.monotonic() + self.timeout_s
        if self.cfg.is_ssl:
            self.enqueue_req(conn)
        else:
            self._start_reading(conn)

    def _start_reading(self, conn: _Conn) -> None:
        conn.sock.setblocking(False)
        conn.prefetched = bytearray()
        conn.scan = _Scan()
        conn.sent_continue = False
        # Most requests have arrived whole by now: no poller round trip for them.
        if self._read_some(conn, registered=False):
            return
        self.reading[conn] = conn.deadline
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))

    def _stop_reading(self, conn: _Conn) -> None:
        del self.reading[conn]
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)

    def _on_readable(self, conn: _Conn, _sock: socket.socket) -> None:
        self._read_some(conn, registered=True)

    def _read_some(self, conn: _Conn, *, registered: bool) -> bool:
        """Read what has arrived; True once the connection left the reading stage (its request
        went to a thread, or the client went away)."""
        try:
            data = conn.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            data = b""
        if data:
            conn.prefetched += data
            self._advance(conn)
            if not conn.scan.complete:
                return False
        if registered:
            self._stop_reading(conn)
        if not data:  # the client went away before its request was complete
            self.nr_conns -= 1
            conn.sock.close()
            return True
        conn.data_ready = True
        self.enqueue_req(conn)
        return True

    def murder_pending(self) -> None:
        """Also close the connections whose request did not arrive in time (408), and end
        lingering closes."""
        super().murder_pending()
        now = time.monotonic()
        while self.reading:
            conn, deadline = next(iter(self.reading.items()))
            if deadline > now:
                break
            self._stop_reading(conn)
            self.nr_conns -= 1
            if not conn.prefetched:
                conn.sock.close()
                continue
            message = f"The request was not received within {self.timeout_s:g} s."
            response = error_response(408, "Request Timeout", RequestTimeout.code, message)
            with contextlib.suppress(OSError):
                conn.sock.send(response)
            self._linger(conn)
        while self.lingering:
            conn, deadline = next(iter(self.lingering.items()))
            if deadline > now:
                break
            self._end_linger(conn)

    def _linger(self, conn: _Conn) -> None:
        """Half-close, then drain the client's input from the event loop until EOF or limits."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
            conn.sock.setblocking(False)
            self.poller.register(
                conn.sock, selectors.EVENT_READ, partial(self._on_linger_readable, conn)
            )
        except (OSError, ValueError, KeyError):
            conn.sock.close()
            return
        conn.drained = 0
        self.lingering[conn] = time.monotonic() + LINGER_SECONDS

    def _on_linger_readable(self, conn: _Conn, _sock: socket.socket) -> None:
        try:
            data = conn.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        conn.drained += len(data)
        if not data or conn.drained > LINGER_BYTES:
            self._end_linger(conn)

    def _end_linger(self, conn: _Conn) -> None:
        self.lingering.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)
        conn.sock.close()

    # ----------------------------------------------------------------- is the request complete?

    def _advance(self, conn: _Conn) -> None:
        """Update `conn.scan` with the bytes read so far; `complete` once a thread should serve.

        Anything this scan cannot follow (a malformed head, conflicting lengths, an unknown
        transfer coding, bad chunk framing, too many bytes) is handed over at once: gunicorn's
        parser then refuses it with the right status.
        """
        scan, buf = conn.scan, conn.prefetched
        if scan.head_end < 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD_BYTES or b"\n\n" in buf:
                    scan.complete = scan.cut_short = True
                return
            scan.head_end = end + 4
            if not self._read_head(conn, bytes(buf[:end])):
                scan.complete = scan.cut_short = True
                return
            scan.pos = scan.head_end
        if scan.chunked:
            self._advance_chunks(scan, buf)
        elif len(buf) >= scan.head_end + scan.content_length:
            scan.complete = True
        if not scan.complete and scan.expects_continue and not conn.sent_continue:
            conn.sent_continue = True
            with contextlib.suppress(OSError):
                conn.sock.send(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _read_head(self, conn: _Conn, head: bytes) -> bool:
        """Fill in how the body is framed; False when the head is not one this scan follows."""
        scan = conn.scan
        request_line, *lines = head.split(b"\r\n")
        lengths: set[bytes] = set()
        codings: list[bytes] = []
        for line in lines:
            name, colon, value = line.partition(b":")
            if not colon:
                return False
            name, value = name.strip().lower(), value.strip()
            if name == b"content-length":
                lengths.add(value)
            elif name == b"transfer-encoding":
                codings.extend(part.strip().lower() for part in value.split(b","))
            elif name == b"expect":
                scan.expects_continue = value.lower() == b"100-continue"
        if not request_line.endswith(b"HTTP/1.1"):
            scan.expects_continue = False
        if codings:
            if lengths or codings != [b"chunked"]:
                return False
            scan.chunked = True
            return True
        if len(lengths) > 1:
            return False
        if lengths:
            value = lengths.pop()
            if not value.isdigit() or int(value) > self.body_limit:
                return False  # the app answers 413 without reading a byte of it
            scan.content_length = int(value)
        return True

    def _advance_chunks(self, scan: _Scan, buf: bytearray) -> None:
        while True:
            line_end = buf.find(b"\r\n", scan.pos)
            if line_end < 0:
                if len(buf) - scan.pos > MAX_CHUNK_LINE_BYTES:
                    scan.complete = scan.cut_short = True
                return
            size_text = bytes(buf[scan.pos : line_end]).split(b";", 1)[0].strip()
            if not _CHUNK_SIZE.fullmatch(size_text):
                scan.complete = scan.cut_short = True  # InvalidChunkSize: 400
                return
            size = int(size_text, 16)
            if size == 0:
                trailers = line_end + 2
                if buf[trailers : trailers + 2] == b"\r\n" or buf.find(b"\r\n\r\n", trailers) >= 0:
                    scan.complete = True
                elif len(buf) - trailers > MAX_TRAILER_BYTES:
                    scan.complete = scan.cut_short = True
                return
            scan.body_bytes += size
            if scan.body_bytes > self.body_limit:
                scan.complete = scan.cut_short = True  # the app answers 413
                return
            next_line = line_end + 2 + size + 2
            if next_line > len(buf):
                scan.body_bytes -= size  # counted again once the chunk has arrived
                return
            scan.pos = next_line

    # ----------------------------------------------------------------- serving in the thread

    def handle_request(self, req: Any, conn: _Conn) -> bool:
        if conn.sent_continue:
            # The event loop already told the client to send its body.
            req._expected_100_continue = False
            conn.sent_continue = False
        keepalive: bool = super().handle_request(req, conn)
        return keepalive

    def _keepalive_after(self, conn: _Conn, keepalive: bool) -> bool:
        if conn.scan.cut_short:
            return False  # the rest of that request was never read: the connection closes
        result: bool = super()._keepalive_after(conn, keepalive)
        return result

    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: BaseException) -> None:
        """gunicorn's own refusals as Tecton's JSON envelope instead of an HTML page."""
        status, reason, code, message = refusal(exc)
        if status == 500:
            self.log.error("Error handling request", exc_info=exc)
        else:
            self.log.warning("Invalid request from ip=%s: %s", (addr or ("",))[0], exc)
        try:
            client.settimeout(1.0)
            client.sendall(error_response(status, reason, code, message))
        except OSError:
            self.log.debug("Failed to send error message.")
