"""Request heads bounded under either HTTP parser uvicorn runs: httptools (installed with
relunet, so uvicorn's choice) and h11.

uvicorn bounds neither on httptools: its protocol appends each URL piece to the URL and
httptools keeps a header's name and value whole until the header ends, so one 200 MB
header line was read whole (870 MB to 1.16 GB resident, 20 s, answered 200). On h11,
uvicorn passes `h11_max_incomplete_event_size` (16 KiB by default), and an overflow is a
plain-text 400. Here the protocol itself counts the bytes of each head it feeds its
parser and never feeds more than the limit: the request line, each header and the whole
head are parts of the head, so none can exceed it. A head over the limit is answered in
JSON, as the server's other errors, and the connection closed: 414 while the request
line has not ended, 431 after. The rest of what the client sends is read and dropped
(up to LINGER_BYTES, for LINGER_SECONDS), so a client that sends its whole request
before it reads, as urllib and http.client do, reads the answer rather than a reset.

The bytes of a head that begins in the same read as the previous request's end
(pipelining) are counted from the next read: such a head may pass the limit by one
read (at most 256 KiB, asyncio's).
"""

from __future__ import annotations

import asyncio
import http
import json
import time
from collections.abc import Callable

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

LINGER_BYTES = 64 << 20  # after a refusal, read and drop this much more, at most ...
LINGER_SECONDS = 10.0  # ... for this long, then close
READ_BYTES = 256 << 10  # the most one read brings (asyncio's selector loop, uvloop)
REASONS = {414: "request_line_too_long", 431: "request_head_too_large"}

# refused(code, reason, method or "", seconds since the head began): metrics, access log
Refused = Callable[[int, str, str, float], None]


def bounded_protocol(limit: int, refused: Refused, parser: str = "httptools") -> type:
    """uvicorn's HTTP protocol class for `parser` ("httptools", relunet's and so uvicorn's
    choice, or "h11"), its request heads bounded to `limit` bytes."""
    base = {"httptools": _HttpTools, "h11": _H11}[parser]
    fields = {"limit": limit, "refused": staticmethod(refused)}
    return type(f"Bounded{base.__name__}", (base,), fields)


def h11_event_limit(limit: int) -> int:
    """uvicorn's h11_max_incomplete_event_size for heads bounded to `limit`: past what
    this module feeds h11, so that its plain-text 400 never answers first, and still a
    bound where a pipelined head's first read is not counted."""
    return limit + READ_BYTES


class _Bounded:
    """The counting, over a parser's protocol: `_head` is the bytes of the current head
    fed so far, or None while a request's body (or the answer to it) is under way."""

    limit: int
    refused: Refused

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)
        self._lingering = 0
        self._start_head()

    def _start_head(self) -> None:
        self._head, self._line_ended, self._began = 0, False, time.perf_counter()

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            self._linger(len(data))
            return
        while data:
            if self._head is None:
                super().data_received(data)
                return
            room = self.limit - self._head
            if room <= 0:
                self._refuse()
                return
            piece = data if len(data) <= room else data[:room]
            data = data[len(piece) :]
            self._line_ended = self._line_ended or b"\n" in piece
            self._head += len(piece)
            super().data_received(piece)
            if self.transport.is_closing():
                return
            self._fed()

    def _fed(self) -> None:
        """After bytes of a head were fed: has the head ended?"""

    def _refuse(self) -> None:
        code = 431 if self._line_ended else 414
        what = "request head" if self._line_ended else "request line"
        message = (
            f"The {what} is longer than {self.limit:,} bytes, the most this server reads "
            "(--max-request-head-bytes)."
        )
        body = json.dumps({"error": message}).encode()
        lines = [f"HTTP/1.1 {code} {http.HTTPStatus(code).phrase}".encode()]
        lines += [name + b": " + value for name, value in self.server_state.default_headers]
        lines += [
            b"content-type: application/json",
            b"content-length: " + str(len(body)).encode(),
            b"connection: close",
        ]
        self.transport.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        self.refused(code, REASONS[code], self._method(), time.perf_counter() - self._began)
        self._lingering = 1  # read and drop the rest, so the client reads the answer
        self.loop.call_later(LINGER_SECONDS, self.transport.close)
        if self.transport.can_write_eof():
            self.transport.write_eof()

    def _linger(self, size: int) -> None:
        self._lingering += size
        if self._lingering > LINGER_BYTES:
            self.transport.close()

    def _method(self) -> str:
        return ""


class _HttpTools(_Bounded, HttpToolsProtocol):
    """uvicorn's httptools protocol, bounded: httptools says when a head ends."""

    def on_headers_complete(self) -> None:
        self._head = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._start_head()

    def _method(self) -> str:
        try:
            return self.parser.get_method().decode("ascii", "replace")
        except Exception:  # no method parsed yet
            return ""


class _H11(_Bounded, H11Protocol):
    """uvicorn's h11 protocol, bounded: a head has ended once h11 has left IDLE."""

    def _fed(self) -> None:
        if self.conn.their_state is not h11.IDLE:
            self._head = None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE and self._head is None:
            self._start_head()
