"""The live parts of one server, shared by the app factory and the routes.

Its own module so that the routes (which read it) and :mod:`koqa.api.app` (which builds
it and includes the routes) both import it from below, not from each other.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any, Callable

from fastapi import Request

from koqa.api.batcher import MicroBatcher
from koqa.api.config import ServerConfig
from koqa.pipeline.qa import QAPipeline
from koqa.settings import Settings


@dataclass
class ServerState:
    """The live parts of one server, built in the lifespan and read by the routes."""

    settings: Settings
    config: ServerConfig
    store: Any
    reader: Any
    pipeline: QAPipeline
    batcher: MicroBatcher
    write_lock: threading.Lock
    asks_in_flight: int = 0  # admitted POST /ask requests (changed only on the event loop)

    async def in_store(self, fn: Callable, *args, write: bool = False, **kwargs):
        """Run a blocking store call in a thread. The store serves readers during a write
        (SQLite WAL, its own index lock); writes of this server go one at a time."""
        if not write:
            return await asyncio.to_thread(fn, *args, **kwargs)

        def locked():
            with self.write_lock:
                return fn(*args, **kwargs)

        return await asyncio.to_thread(locked)


def state(request: Request) -> ServerState:
    """The routes' dependency: this app's state, set by the lifespan before any request."""
    return request.app.state.koqa
