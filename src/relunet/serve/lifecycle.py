"""A server's life as an operator sees it: loading, ready, draining.

The HTTP server answers from its first moment: `/healthz` is 200 while the process
serves, `/readyz` 503 until the versions on disk have loaded in the background and
each signature of each has run once on a warm-up input (relunet.serve.models), 200
then, and 503 again once a SIGTERM (or Ctrl-C) starts the drain. Draining, the server
stops accepting connections, lets the requests in flight finish for up to
`--drain-seconds`, and exits 0; a second signal ends it at once. uvicorn's own
handler would re-raise the signal once it is done (exiting by it, not with 0), so
`DrainingServer` replaces it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from relunet.base.errors import RelunetError


@dataclass
class Life:
    """Where the server is: its models once loaded, whether it drains, why it failed."""

    models: Any = None  # relunet.serve.models.ModelFolder once loaded and warmed up
    draining: bool = False
    failed: RelunetError | None = None
    loaded: threading.Event = field(default_factory=threading.Event)

    def not_ready(self) -> str | None:
        """Why /readyz answers 503, or None when ready."""
        if self.draining:
            return "draining: finishing the requests in flight before it stops"
        if self.models is None:
            return "loading: the model's versions are loading and warming up"
        return None


class DrainingServer(uvicorn.Server):
    """uvicorn's server, draining on the first signal and stopping on the second."""

    def __init__(self, config: uvicorn.Config, life: Life):
        super().__init__(config)
        self.life = life

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self.should_exit:  # a second signal: at once
            self.force_exit = True
            return
        self.life.draining = True  # /readyz answers 503 from now on
        self.should_exit = True


def load_in_background(life: Life, load: Callable[[], Any], server: DrainingServer) -> None:
    """Run `load` on a thread of its own; its result becomes `life.models`. A failure to
    load anything stops the server, its error kept for the command to report."""

    def loading() -> None:
        try:
            life.models = load()
        except RelunetError as error:
            life.failed = error
            server.should_exit = True
        except Exception as error:  # reported as the command's one line
            life.failed = RelunetError(f"{type(error).__name__}: {error}")
            server.should_exit = True
        finally:
            life.loaded.set()

    threading.Thread(target=loading, name="relunet-load", daemon=True).start()
