"""PEP 3333: request fields → environ; the app's status, headers and body → a sink.

Transport-free: the worker runner passes a :class:`ResponseSink` that turns
calls into frames.  Everything constant for the worker (``wsgi.*`` keys,
``SERVER_PROTOCOL``) is built once; each request copies that dict and adds
its own keys.

Error handling: an exception before the response starts becomes a 500 and a
logged traceback; after it started, the sink is told to abort (the reactor
closes the connection, the only honest signal left).  ``close()`` of the
app's iterable is always called.
"""

from __future__ import annotations

import io
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, BinaryIO, Final, Protocol
from urllib.parse import unquote_to_bytes

from swserve.errors import ClientDisconnected
from swserve.net.proxy import Frontend
from swserve.protocol import response_headers, serializer
from swserve.protocol.head_checks import origin_form
from swserve.protocol.request import RequestHead
from swserve.static.handoff import file_length

log = logging.getLogger("swserve.error")

_ERROR_BODY: Final = b"500 Internal Server Error\n"
_ERROR_HEADERS: Final = b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n" % len(
    _ERROR_BODY
)

StartResponse = Callable[..., Callable[[bytes], None]]
Body = bytes | BinaryIO  # in memory, or a spooled file (reactor/spool.py)
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class ResponseSink(Protocol):
    @property
    def paused(self) -> bool:
        """The client is behind and the sink cannot block to wait for it (base
        mode's loop): the adapter pauses the app's iteration."""
        ...

    def send_start(
        self, status: int, flags: int, headers: bytes, body: bytes, end: bool
    ) -> None: ...
    def send_body(self, data: bytes, end: bool) -> None: ...
    def send_abort(self) -> None: ...


class FileWrapper:
    """``wsgi.file_wrapper``: iterate a file in blocks (PEP 3333 optional extension)."""

    def __init__(self, filelike: IO[bytes], blksize: int = 65536) -> None:
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        while block := read(self.blksize):
            yield block


_PROTOCOLS: Final = {b"1.1": "HTTP/1.1", b"1.0": "HTTP/1.0"}

_HEADER_KEYS: dict[bytes, str] = {
    b"content-type": "CONTENT_TYPE",
    b"content-length": "CONTENT_LENGTH",
}


def _environ_key(name: bytes) -> str | None:
    """``x-forwarded-for`` → ``HTTP_X_FORWARDED_FOR``; None for a name with ``_``.

    ``X_Forwarded_For`` would land in the same key as ``X-Forwarded-For``, and a
    proxy that strips or checks the dashed spelling would not see it: such
    headers are dropped, as gunicorn and nginx do.
    """
    key = _HEADER_KEYS.get(name)
    if key is None:
        if b"_" in name:
            return None
        key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
        if len(_HEADER_KEYS) < 1024:  # bounded cache: header names are attacker-chosen
            _HEADER_KEYS[name] = key
    return key


def split_target(target: bytes) -> tuple[bytes, bytes]:
    """Request target → (path, query) for origin-form, absolute-form and '*'."""
    path, _, query = origin_form(target).partition(b"?")
    return path, query


class WSGIAdapter:
    """Runs one WSGI app; one instance per worker, used by one or many threads."""

    def __init__(
        self,
        app: WSGIApp,
        *,
        multithread: bool,
        multiprocess: bool,
        frontend: Frontend | None = None,
    ) -> None:
        self.app = app
        self.frontend = frontend  # proxy headers and --root-path (swserve/net/proxy.py)
        self._connections: dict[tuple[bytes, ...], dict[str, Any]] = {}
        self.base: dict[str, Any] = {
            "SCRIPT_NAME": "",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.version": (1, 0),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": multithread,
            "wsgi.multiprocess": multiprocess,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
            "wsgi.file_wrapper": FileWrapper,
        }

    def _connection_environ(self, conn: tuple[bytes, ...]) -> dict[str, Any]:
        """The keys every request on one connection shares, decoded once per connection.

        Keep-alive clients send many requests per connection; environ() of a hello
        request went from 3.84 to 3.50 µs (best of 15 runs of 100k calls).
        """
        scheme, chost, cport, shost, sport = conn
        env = self.base.copy()
        env["SERVER_NAME"] = shost.decode("latin-1") or "localhost"
        env["SERVER_PORT"] = sport.decode("latin-1")
        env["REMOTE_ADDR"] = chost.decode("latin-1")
        env["REMOTE_PORT"] = cport.decode("latin-1")
        env["wsgi.url_scheme"] = scheme.decode("latin-1")
        cache = self._connections
        if len(cache) >= 1024:  # connections come and go: start afresh
            cache.clear()
        cache[conn] = env
        return env

    def environ(self, head: RequestHead, body: Body) -> dict[str, Any]:
        method, target, version, conn = head.method, head.target, head.version, head.conn
        shared = self._connections.get(conn)
        env = (shared if shared is not None else self._connection_environ(conn)).copy()
        path, query = split_target(target)
        if b"%" in path:
            path = unquote_to_bytes(path)
        env["REQUEST_METHOD"] = method.decode("latin-1")
        env["PATH_INFO"] = path.decode("latin-1")
        env["QUERY_STRING"] = query.decode("latin-1")
        env["RAW_URI"] = target.decode("latin-1")
        env["SERVER_PROTOCOL"] = _PROTOCOLS.get(version) or "HTTP/" + version.decode("latin-1")
        # wsgi.input: the fully received body (the reactor dispatches complete requests).
        # A plain BytesIO, not a subclass: a Python subclass of it costs 0.88 µs to create
        # against 0.12 µs (best of 7 x 200k), and mypyc cannot compile one.
        env["wsgi.input"] = io.BytesIO(body) if isinstance(body, bytes) else body
        for name, value in head.headers:
            key = _environ_key(name)
            if key is None:
                continue
            text = value.decode("latin-1")
            if key in env:
                # RFC 9110 §5.3: repeated fields combine with commas (cookies with ";")
                env[key] += ("; " if key == "HTTP_COOKIE" else ",") + text
            else:
                env[key] = text
        if "HTTP_HOST" in env:
            host = env["HTTP_HOST"]
            env["SERVER_NAME"] = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if "CONTENT_LENGTH" not in env:
            size = len(body) if isinstance(body, bytes) else os.fstat(body.fileno()).st_size
            if size:
                env["CONTENT_LENGTH"] = str(size)
        if self.frontend is not None:
            self.frontend.environ(env)
        return env

    def __call__(self, head: RequestHead, body: Body, sink: ResponseSink) -> Paused | None:
        """Run the app for one request and stream its response into ``sink``.

        Returns a :class:`Paused` run when the sink paused mid-stream (only a
        base-mode sink does: it cannot block its loop to wait for a slow client);
        the caller resumes it once the client has caught up.
        """
        env = self.environ(head, body)
        run = Paused(self.app, env, _Response(sink, env["REQUEST_METHOD"] == "HEAD"), body)
        return run.step(first=True)


class Paused:
    """One request's app call and body iteration, resumable where the sink paused it.

    The app's iterable is an iterator: stopping between two parts and going
    on later is what a blocking ``write`` would have done, without blocking.
    """

    __slots__ = ("app", "body", "env", "it", "response", "result")

    def __init__(self, app: WSGIApp, env: dict[str, Any], response: _Response, body: Body):
        self.app = app
        self.env = env
        self.response = response
        self.body = body
        self.result: Iterable[bytes] | None = None
        self.it: Iterator[bytes] | None = None

    def step(self, first: bool = False) -> Paused | None:
        """Run until the response ends (→ None) or the sink pauses (→ self)."""
        response = self.response
        done = True
        try:
            if first:
                self.result = self.app(self.env, response.start_response)
                self.it = response.begin(self.result)
            if self.it is not None:
                done = response.iterate(self.it)
        except ClientDisconnected:
            env = self.env
            log.debug("client left during %s %s", env["REQUEST_METHOD"], env["RAW_URI"])
            response.fail()  # ends the response so the reactor frees the worker's slot
        except Exception:
            env = self.env
            log.exception("error in WSGI app handling %s %s", env["REQUEST_METHOD"], env["RAW_URI"])
            response.fail()
        finally:
            if done:
                self.close()
        if not done:
            return self
        # The response ends only after close(): the request is not done (and the
        # worker not idle) until the app has cleaned up (Swoole marks IDLE after
        # the callback returns).
        if not response.ended:
            response.end()
        return None

    def close(self) -> None:
        """``close()`` of the app's iterable (always called) and of a spooled body."""
        close = getattr(self.result, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                log.exception("error closing the WSGI app's iterable")
        if not isinstance(self.body, bytes):
            self.body.close()  # a spooled body's file (already unlinked)


# Validated status strings and header pairs, reused: an app sends the same few
# again and again.  Bounded, since both are the app's to choose.  With the
# per-connection environ below, WSGIAdapter.__call__ of a hello app (2 response
# headers, 3 request headers; best of 15 runs of 100k calls, process time) went
# from 7.97 to 6.01 µs on the 2-core development machine.
_STATUS_CODES: dict[str, int] = {}
HEADERS: Final = response_headers.Headers(text=True)


def _status_code(status: Any) -> int:
    if (
        not isinstance(status, str)
        or len(status) < 3
        or not status[:3].isdigit()
        or status[3:4] not in ("", " ")
    ):
        raise ValueError(f"invalid status {status!r}: expected '200 OK'")
    code = int(status[:3])
    if code < 200:
        raise ValueError(f"WSGI apps may not send a {code} interim response")
    if len(_STATUS_CODES) < response_headers.CACHE_LIMIT and type(status) is str:
        _STATUS_CODES[status] = code
    return code


class _Response:
    __slots__ = (
        "ended",
        "flags",
        "head",
        "headers",
        "headers_sent",
        "held",
        "length",
        "no_body",
        "sent",
        "sink",
        "status",
    )

    def __init__(self, sink: ResponseSink, head: bool) -> None:
        self.sink = sink
        self.head = head
        self.status = 0
        self.flags = 0
        self.headers = b""
        self.headers_sent = False
        self.no_body = head
        self.ended = False
        self.length = -1  # the app's Content-Length, which the body must match
        self.sent = 0  # body bytes sent, counted only when length is declared
        # The first part, when it is the whole declared body: it goes out with the end, in
        # one call (see iterate)
        self.held: bytes | None = None

    def start_response(
        self, status: Any, headers: Any, exc_info: Any = None
    ) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status:
            raise RuntimeError("start_response called a second time without exc_info")
        code = _STATUS_CODES.get(status) if type(status) is str else None
        if code is None:
            code = _status_code(status)
        self.headers, flags, length = HEADERS.encode(headers, code)
        self.status = code
        self.flags = flags
        self.length = length
        self.no_body = self.head or code in (204, 304)
        return self.write

    def _send_start(self, body: bytes, end: bool) -> None:
        if not self.status:
            raise RuntimeError("the app sent a body before calling start_response")
        self.headers_sent = True
        if self.no_body:
            body = b""
        elif self.length >= 0:
            body = self._bounded(body)
        self.sink.send_start(self.status, self.flags, self.headers, body, end)

    def _bounded(self, data: bytes) -> bytes:
        """The part of ``data`` that fits the app's Content-Length.

        More would be read by the client as the start of the next response
        on the connection; the rest is dropped (gunicorn does the same) and the
        app's mistake logged.
        """
        room = self.length - self.sent
        if len(data) > room:
            log.error(
                "the WSGI app sent more body than its Content-Length (%d): the rest is dropped",
                self.length,
            )
            data = data[:room]
        self.sent += len(data)
        return data

    def _body(self, data: bytes) -> None:
        if self.length >= 0:
            data = self._bounded(data)
            if not data:
                return
        self.sink.send_body(data, False)

    def write(self, data: bytes) -> None:
        if not isinstance(data, bytes):
            raise TypeError(f"write() takes bytes, not {type(data).__name__}")
        if not self.headers_sent:
            self._send_start(data, False)
        elif data and not self.no_body:
            self._body(data)

    def begin(self, result: Any) -> Iterator[bytes] | None:
        """Send a one-part response whole; else return the iterator to stream."""
        if isinstance(result, list | tuple) and len(result) == 1 and not self.headers_sent:
            # The common case (hello world, most frameworks' buffered responses):
            # one body part, so we know its length and send one frame.
            body = result[0]
            if not isinstance(body, bytes):
                raise TypeError(f"the app's iterable yielded {type(body).__name__}, not bytes")
            if not self.flags & serializer.HAS_CONTENT_LENGTH and self.status not in (204, 304):
                # a HEAD response gets the length its GET would have (RFC 9110 §9.3.2)
                self.headers += b"content-length: %d\r\n" % len(body)
                self.flags |= serializer.HAS_CONTENT_LENGTH
            elif self.length >= 0 and len(body) != self.length and not self.no_body:
                self._send_start(body, False)  # bounded to the declared length
                self.end()  # and closed, if it fell short
                return None
            self.ended = True
            self._send_start(body, True)
            return None
        if type(result) is FileWrapper and not self.headers_sent and self._hand_over(result):
            return None
        if isinstance(result, str | bytes):
            raise TypeError(
                f"the app returned {type(result).__name__}; it must return an iterable of bytes"
            )
        it: Iterator[bytes] = iter(result)
        return it

    def _hand_over(self, wrapper: FileWrapper) -> bool:
        """A ``wsgi.file_wrapper`` over a real file: its descriptor goes to the reactor,
        which sends the body (static/handoff.py); False: iterate it as usual."""
        send_file = getattr(self.sink, "send_file", None)
        if send_file is None or not self.status:
            return False
        try:
            fileno = wrapper.filelike.fileno()
            offset = wrapper.filelike.tell()
            length = file_length(fileno, offset, self.length)
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            return False
        if length < 0:
            return False
        if not self.flags & serializer.HAS_CONTENT_LENGTH and self.status not in (204, 304):
            self.headers += b"content-length: %d\r\n" % length
            self.flags |= serializer.HAS_CONTENT_LENGTH
        if self.no_body:
            self.ended = True
            self.headers_sent = True
            self.sink.send_start(self.status, self.flags, self.headers, b"", True)
            return True
        try:
            send_file(self.status, self.flags, self.headers, os.dup(fileno), offset, length)
        except OSError as exc:  # nothing was sent: the file goes the ordinary way
            log.warning("could not hand a file response to the reactor (%s): iterating it", exc)
            return False
        self.ended = True
        self.headers_sent = True
        return True

    def iterate(self, it: Iterator[bytes]) -> bool:
        """Stream parts until the iterator ends (→ True) or the sink pauses (→ False)."""
        sink = self.sink
        for data in it:
            if not isinstance(data, bytes):
                raise TypeError(f"the app's iterable yielded {type(data).__name__}, not bytes")
            if not data:
                continue
            if not self.headers_sent:
                if self.held is None and len(data) == self.length:
                    # The whole declared body in the first part (Flask's and Django's
                    # ClosingIterator of a buffered response): hold it and send it with the
                    # end, after close(), in one sink call instead of a start and an empty
                    # end: per Flask request, base mode makes 3 Python calls fewer
                    # (sys.setprofile), process mode one IPC frame and its send() fewer.
                    self.held = data
                    continue
                if self.held is not None:  # more than the declared length: send, then bound
                    self._send_start(self.held, False)
                    self._body(data)
                else:
                    self._send_start(data, False)
            elif not self.no_body:
                self._body(data)
            if sink.paused:
                return False
        return True

    def end(self) -> None:
        self.ended = True
        if not self.headers_sent:
            if self.held is not None:  # the whole declared body, held by iterate
                self._send_start(self.held, True)
                return
            if not self.flags & serializer.HAS_CONTENT_LENGTH and not self.no_body:
                self.headers += b"content-length: 0\r\n"
                self.flags |= serializer.HAS_CONTENT_LENGTH
            if self.length > 0 and not self.no_body:
                self._send_start(b"", False)
                self._short()
                return
            self._send_start(b"", True)
        elif self.length >= 0 and self.sent < self.length and not self.no_body:
            self._short()
        else:
            self.sink.send_body(b"", True)

    def _short(self) -> None:
        """The body ended before its Content-Length: only a close tells the client."""
        log.error(
            "the WSGI app sent %d bytes of body for a Content-Length of %d: closing the connection",
            self.sent,
            self.length,
        )
        self.sink.send_abort()

    def fail(self) -> None:
        self.ended = True
        if self.headers_sent:
            self.sink.send_abort()
        else:
            self.headers_sent = True
            self.sink.send_start(
                500,
                serializer.HAS_CONTENT_LENGTH,
                _ERROR_HEADERS,
                b"" if self.head else _ERROR_BODY,
                True,
            )
