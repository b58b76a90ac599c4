"""Typed settings, read once at the edge (CLI, server start-up) from the environment.

>>> s = Settings.from_env({"KOQA_HOME": "/tmp/kq"})
>>> str(s.home), str(s.model_cache)
('/tmp/kq', '/tmp/kq/models')
>>> s.database_url, s.reader_backend, s.vector_store
('sqlite:////tmp/kq/koqa.db', 'torch', 'files')
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

DEFAULT_READER = "koqa:reader-small"
DEFAULT_EMBEDDER = "koqa:e5-small-ko"
READER_BACKENDS = ("torch", "torch-bf16", "onnx", "onnx-int8")
VECTOR_STORES = ("files", "pgvector")  # files: FAISS + BM25 files beside SQL; pgvector: all in PostgreSQL


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    reader: str = DEFAULT_READER
    embedder: str = DEFAULT_EMBEDDER
    api_key: str | None = None
    reader_backend: str = "torch"  # one of READER_BACKENDS (ONNX: exported once into the model cache)
    cors_origins: tuple[str, ...] = ()  # web origins allowed to call the HTTP API from a browser ("*": any)
    vector_store: str = "files"  # one of VECTOR_STORES; pgvector needs a postgresql database_url

    @property
    def model_cache(self) -> Path:
        return self.home / "models"

    @property
    def index_dir(self) -> Path:
        """FAISS and BM25 files live beside the default SQLite database."""
        return self.home / "indexes"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        home = Path(env.get("KOQA_HOME") or Path.home() / ".cache" / "koqa").expanduser()
        return cls(
            home=home,
            database_url=env.get("KOQA_DATABASE_URL") or f"sqlite:///{home / 'koqa.db'}",
            reader=env.get("KOQA_READER") or DEFAULT_READER,
            embedder=env.get("KOQA_EMBEDDER") or DEFAULT_EMBEDDER,
            api_key=env.get("KOQA_API_KEY") or None,
            reader_backend=_choice(env, "KOQA_READER_BACKEND", READER_BACKENDS),
            cors_origins=tuple(o.strip().rstrip("/") for o in (env.get("KOQA_CORS_ORIGINS") or "").split(",") if o.strip()),
            vector_store=_choice(env, "KOQA_VECTOR_STORE", VECTOR_STORES),
        )


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    value = env.get(name) or choices[0]
    if value not in choices:
        from koqa.errors import InvalidInput

        raise InvalidInput(name, value, f"must be one of {', '.join(choices)}")
    return value
