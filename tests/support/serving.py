"""Test servers that run on a daemon thread for the life of a `with` block."""

from __future__ import annotations

import socketserver
import threading
from types import TracebackType
from typing import Self


class ThreadedServer:
    """Subclasses set `_server` and `_thread` (targeting `_server.serve_forever`) in `__init__`."""

    _server: socketserver.BaseServer
    _thread: threading.Thread

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
