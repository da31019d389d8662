"""The server's listening socket, bound before anything is loaded: a port that another
process holds is answered in one line at once, not after seconds of loading models."""

from __future__ import annotations

import socket

from relunet.base.errors import RelunetError


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port), as uvicorn binds its own; RelunetError naming
    the address when it cannot be bound (in use, not this machine's, not allowed)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP by name: asyncio turns Nagle's algorithm off only on sockets that say
    # so, and with it on, an answer's body waits for the client's delayed ACK (40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        reason = error.strerror or str(error)
        raise RelunetError(f"The address {host}:{port} cannot be listened on ({reason}).") from None
    except UnicodeError:  # a host name that is not one
        sock.close()
        raise RelunetError(f"The host {host!r} is not an address of this machine.") from None
    return sock
