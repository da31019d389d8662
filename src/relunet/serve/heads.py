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

Under h11 the count is exact (h11 says what it holds unparsed). Under httptools, a
head that begins in the same read as the previous request's body ends (pipelining) is
counted from the next read, so it may pass the limit by that read (at most 256 KiB,
asyncio's), and it is answered 431 (its request line was not seen).
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
        self._lingering, self._refuse_later = 0, False
        self._start_head()

    def _start_head(self) -> None:
        self._head, self._line_ended, self._began = 0, False, time.perf_counter()

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            self._linger(len(data))
            return
        while data:
            piece = data
            if self._head is not None:  # a head: at most what the limit leaves
                room = self.limit - self._head
                if room <= 0:
                    self._refuse()
                    return
                piece = data[:room]
                self._line_ended = self._line_ended or b"\n" in piece
                self._head += len(piece)
            data = data[len(piece) :]
            super().data_received(piece)
            if self.transport.is_closing():
                return
            self._fed()
            if self._head is not None and self._head > self.limit:
                self._refuse()
                return

    def _fed(self) -> None:
        """After bytes were fed: where the parser says a head stands, if it says."""

    def _refuse(self) -> None:
        if self._lingering:  # refused already
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head: the answer in progress goes first, then the refusal.
            self._refuse_later = True
            self.transport.pause_reading()
            return
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

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._refuse_later and not self.transport.is_closing():
            self._refuse_later = False
            self._refuse()

    def _linger(self, size: int) -> None:
        self._lingering += size
        if self._lingering > LINGER_BYTES:
            self.transport.close()

    def _method(self) -> str:
        return ""


class _HttpTools(_Bounded, HttpToolsProtocol):
    """uvicorn's httptools protocol, bounded: httptools says when a head ends."""

    def data_received(self, data: bytes) -> None:
        self._ended_in_feed = False
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._ended_in_feed:  # a pipelined head, begun in bytes already fed: its
            self._line_ended = True  # request line unseen, it is answered 431

    def on_headers_complete(self) -> None:
        self._head = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._start_head()
        self._ended_in_feed = True

    def _method(self) -> str:
        try:
            return self.parser.get_method().decode("ascii", "replace")
        except Exception:  # no method parsed yet
            return ""


class _H11(_Bounded, H11Protocol):
    """uvicorn's h11 protocol, bounded: what h11 holds unparsed while it waits for a
    request (IDLE) or has one and waits for its answer (DONE) is the next head so far."""

    def _fed(self) -> None:
        if self.conn.their_state in (h11.IDLE, h11.DONE):
            if self._head is None:  # a head begins
                self._began = time.perf_counter()
            pending, _ = self.conn.trailing_data
            self._head, self._line_ended = len(pending), b"\n" in pending
        else:
            self._head = None

    def on_response_complete(self) -> None:
        super().on_response_complete()  # h11 may parse the next request now
        if not self.transport.is_closing():
            self._fed()
            if self._head is not None and self._head > self.limit:
                self._refuse()
