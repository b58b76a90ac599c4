"""The HTTP API: ``create_app(settings, reader=..., store=...)`` and ``koqa serve``.

>>> from koqa.api import ServerConfig, create_app   # doctest: +SKIP
"""

from koqa.api.app import create_app
from koqa.api.config import ServerConfig

__all__ = ["create_app", "ServerConfig"]
