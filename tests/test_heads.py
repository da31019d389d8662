"""Request heads bounded under both of uvicorn's HTTP parsers (relunet.serve.heads): a
trivial application served in this process, on httptools and on h11, sent heads by raw
sockets. The real server's answers, metrics and memory are tests/test_operations.py's."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import pytest
import uvicorn
from helpers import free_ports

from relunet.serve.heads import bounded_protocol, h11_event_limit

LIMIT = 8192


async def _ok(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    if scope["path"] == "/slow":
        await asyncio.sleep(0.3)
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(scope="module", params=["httptools", "h11"])
def served(request):
    """(port, refusals): the application behind heads bounded to LIMIT bytes."""
    refusals = []
    protocol = bounded_protocol(LIMIT, lambda *seen: refusals.append(seen), request.param)
    config = uvicorn.Config(
        _ok, http=protocol, h11_max_incomplete_event_size=h11_event_limit(LIMIT), log_level="error"
    )
    server = uvicorn.Server(config)
    port = free_ports()[0]
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield port, refusals
    server.should_exit = True
    thread.join(10)
    sock.close()


def _exchange(port: int, *requests: bytes) -> list[tuple[int, dict, bytes]]:
    """Send the requests on one connection, each after the last one's answer; the
    (status, headers, body) of each answer, until the server closes."""
    answers = []
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(30)
        reader = sock.makefile("rb")
        for request in requests:
            sock.sendall(request)
            status_line = reader.readline()
            if not status_line:
                break
            headers = {}
            while (line := reader.readline().rstrip(b"\r\n")) != b"":
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = reader.read(int(headers.get("content-length", 0)))
            answers.append((int(status_line.split()[1]), headers, body))
            if headers.get("connection") == "close":
                assert reader.read() == b""  # and the server closed the connection
                break
    return answers


def _get(path: str = "/", header: bytes = b"x") -> bytes:
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\nX-Big: " + header + b"\r\n\r\n"


def test_a_head_within_the_limit_is_answered_and_the_next_one_counts_afresh(served):
    port, _ = served
    near = b"y" * (LIMIT - 200)  # each head near the limit: together far over it
    answers = _exchange(port, _get(header=near), _get(header=near), _get(header=near))
    assert [a[0] for a in answers] == [200, 200, 200]


def test_a_header_over_the_limit_is_431_in_json_and_the_connection_closed(served):
    port, refusals = served
    refusals.clear()
    answers = _exchange(port, _get(header=b"y" * 100_000))
    [(status, headers, body)] = answers
    assert status == 431 and headers["connection"] == "close"
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"] == (
        "The request head is longer than 8,192 bytes, the most this server reads "
        "(--max-request-head-bytes)."
    )
    assert [r[:2] for r in refusals] == [(431, "request_head_too_large")]


def test_a_request_line_over_the_limit_is_414(served):
    port, refusals = served
    refusals.clear()
    [(status, _, body)] = _exchange(port, _get(path="/" + "a" * 10_000_000))
    assert status == 414 and "request line is longer than 8,192 bytes" in json.loads(body)["error"]
    assert [r[:2] for r in refusals] == [(414, "request_line_too_long")]


def test_many_headers_that_together_pass_the_limit_are_431(served):
    port, _ = served
    head = b"GET / HTTP/1.1\r\nHost: t\r\n" + b"X-A: 0123456789\r\n" * 1000 + b"\r\n"
    [(status, _, _)] = _exchange(port, head)
    assert status == 431


def test_after_a_body_the_next_head_on_the_connection_is_bounded_too(served):
    port, _ = served
    post = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n" + b"z" * 100_000
    answers = _exchange(port, post, _get(header=b"y" * 50_000))
    assert [a[0] for a in answers] == [200, 431]


def test_a_pipelined_head_over_the_limit_is_refused_after_the_answer_before_it(served):
    """Sent in one go behind a request still being answered: that answer first, whole,
    then the 431."""
    port, _ = served
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(30)
        sock.sendall(_get("/slow") + _get(header=b"y" * 100_000))
        answer = b""
        while chunk := sock.recv(1 << 16):
            answer += chunk
    first, second = answer.split(b"HTTP/1.1 ")[1:]
    assert first.startswith(b"200 ") and first.endswith(b"\r\n\r\nok")
    assert second.startswith(b"431 ")
