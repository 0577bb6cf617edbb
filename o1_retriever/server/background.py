"""Serve an already loaded embedder from a background thread of this process: a notebook or a test can share one
model over HTTP with other processes without starting `o1-retriever serve`.

    with BackgroundServer(emb) as server:            # port 0: the OS picks a free port
        remote = RemoteEmbedder(server.url)

It is the same uvicorn server and app as `o1-retriever serve` (sockets, lifespan, dynamic batching), in a thread.
"""
from __future__ import annotations

import threading
import time

from .deps import require


class BackgroundServer:
    """`start()` returns once the port accepts connections; `stop()` lets in-flight requests finish first, for up to
    `graceful_timeout` seconds (None: as long as they take), as `serve --graceful-timeout`."""

    def __init__(self, embedder, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning",
                 start_timeout: float = 60.0, graceful_timeout: float | None = None, **app_options):
        from .app import create_app
        uvicorn = require("uvicorn")
        self.app = create_app(embedder, **app_options)
        self.host, self.start_timeout = host, start_timeout
        self._server = uvicorn.Server(uvicorn.Config(self.app, host=host, port=port, log_level=log_level,
                                                     timeout_graceful_shutdown=graceful_timeout))
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        """The base URL (`http://127.0.0.1:PORT`); clients add `/v1` where they expect an OpenAI base URL."""
        if self.port is None:
            raise RuntimeError("the server is not running: call start() or use it as a context manager")
        return f"http://{self.host}:{self.port}"

    def start(self) -> "BackgroundServer":
        self._thread = threading.Thread(target=self._server.run, name="o1-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the server did not start on {self.host} (port taken, or the app failed: "
                                   "see the log above)")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not start within {self.start_timeout} s")
            time.sleep(0.02)
        # Read the bound port back: with port 0 the OS chose it, so no other process can race us for it.
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self, timeout: float = 60.0) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self.port = None

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
