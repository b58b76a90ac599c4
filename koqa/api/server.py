"""Running the app with uvicorn: in the foreground (``koqa serve``) or in a thread (tests, notebooks).

>>> from koqa.settings import Settings
>>> from koqa.pipeline.fakes import FakeReader, MemoryRetriever
>>> import httpx
>>> app = create_app(Settings.from_env({"KOQA_HOME": "/tmp/kq"}), reader=FakeReader(), store=MemoryRetriever({}))
>>> with serve_in_thread(app) as url:
...     httpx.get(url + "/health").json()["status"]
'ok'
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import uvicorn

from koqa.api.app import create_app  # noqa: F401  (re-exported for the example above)


@contextmanager
def serve_in_thread(app, host: str = "127.0.0.1", port: int = 0, *, timeout: float = 30.0) -> Iterator[str]:
    """Serve ``app`` on ``host`` (a free port when 0) until the block ends; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))  # bound before the server starts: no race for the port
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="koqa-uvicorn")
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the server did not start (see the log above)")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
