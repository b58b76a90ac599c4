"""Typed settings: the library takes them as parameters; only the edge (CLI, server start-up,
benchmark scripts) reads them from the environment, once, with :meth:`Settings.from_env`.

``Settings()`` is the library default (nothing read from the environment):

>>> s = Settings(home=Path("/tmp/kq"))
>>> s.database_url, str(s.model_cache), s.reader_backend
('sqlite:////tmp/kq/koqa.db', '/tmp/kq/models', 'auto')
>>> s = Settings.from_env({"KOQA_HOME": "/tmp/kq", "KOQA_READER_BACKEND": "torch", "HF_HUB_OFFLINE": "1"})
>>> s.reader_backend, s.hub_offline    # "torch" is the older name of torch-fp32
('torch-fp32', True)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

DEFAULT_READER = "koqa:reader-small"
DEFAULT_EMBEDDER = "koqa:e5-small-ko"
# auto: the fastest backend whose F1 stays within 0.3 of fp32 on this machine (koqa.reader.backend)
READER_BACKENDS = ("auto", "torch-fp32", "torch-bf16", "onnx", "onnx-int8")
_BACKEND_ALIASES = {"torch": "torch-fp32"}  # the name from before torch-bf16 existed
# development and benchmark data (models, KorQuAD ...): ../shared beside the checkout
DEFAULT_SHARED = Path(__file__).resolve().parents[2] / "shared"
_TRUE = {"1", "true", "yes", "on"}


def _default_home() -> Path:
    return Path.home() / ".cache" / "koqa"
VECTOR_STORES = ("files", "pgvector")  # files: FAISS + BM25 files beside SQL; pgvector: all in PostgreSQL
DEFAULT_EF_SEARCH, EF_SEARCH_RANGE = 100, (1, 1000)  # hnsw.ef_search within pgvector's own bounds


@dataclass(frozen=True)
class Settings:
    """Where koqa keeps its files and which models and backends it uses.

    ``database_url`` None means the SQLite file in ``home`` (filled in at construction).
    ``builtin_models`` None means the tracked deltas beside the code (``<checkout>/models``).
    ``hub_offline`` / ``hub_cache`` mirror the Hugging Face variables (``HF_HUB_OFFLINE``,
    ``HF_HUB_CACHE``/``HF_HOME``) so that hub names resolve the way the HF libraries will load them.
    """

    home: Path = field(default_factory=_default_home)
    database_url: str | None = None
    reader: str = DEFAULT_READER
    embedder: str = DEFAULT_EMBEDDER
    api_key: str | None = None
    reader_backend: str = "auto"  # one of READER_BACKENDS (ONNX: exported once into the model cache)
    cors_origins: tuple[str, ...] = ()  # web origins allowed to call the HTTP API from a browser ("*": any)
    builtin_models: Path | None = None
    shared: Path = DEFAULT_SHARED
    hub_offline: bool = False
    hub_cache: Path | None = None
    vector_store: str = "files"  # one of VECTOR_STORES; pgvector needs a postgresql database_url
    pg_ef_search: int = DEFAULT_EF_SEARCH  # pgvector HNSW candidate list: recall vs speed on large collections

    def __post_init__(self):
        object.__setattr__(self, "home", Path(self.home).expanduser())
        if self.database_url is None:
            object.__setattr__(self, "database_url", f"sqlite:///{self.home / 'koqa.db'}")
        object.__setattr__(self, "reader_backend", reader_backend_name(self.reader_backend, "reader_backend"))
        if self.vector_store not in VECTOR_STORES:
            from koqa.errors import InvalidInput

            raise InvalidInput("vector_store", self.vector_store, f"must be one of {', '.join(VECTOR_STORES)}")
        _check_range("pg_ef_search", self.pg_ef_search, EF_SEARCH_RANGE)

    @property
    def model_cache(self) -> Path:
        return self.home / "models"

    @property
    def index_dir(self) -> Path:
        """FAISS and BM25 files live beside the default SQLite database."""
        return self.home / "indexes"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Settings from ``env`` (default: ``os.environ``); unset variables keep the defaults."""
        env = os.environ if env is None else env
        return cls(
            home=Path(env.get("KOQA_HOME") or _default_home()),
            database_url=env.get("KOQA_DATABASE_URL") or None,
            reader=env.get("KOQA_READER") or DEFAULT_READER,
            embedder=env.get("KOQA_EMBEDDER") or DEFAULT_EMBEDDER,
            api_key=env.get("KOQA_API_KEY") or None,
            reader_backend=reader_backend_name(env.get("KOQA_READER_BACKEND") or "auto", "KOQA_READER_BACKEND"),
            cors_origins=tuple(o.strip().rstrip("/") for o in (env.get("KOQA_CORS_ORIGINS") or "").split(",") if o.strip()),
            builtin_models=_path(env.get("KOQA_BUILTIN_MODELS")),
            shared=_path(env.get("KOQA_SHARED")) or DEFAULT_SHARED,
            hub_offline=any(env.get(k, "").strip().lower() in _TRUE for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")),
            hub_cache=_path(env.get("HF_HUB_CACHE")) or (_path(env.get("HF_HOME")) / "hub" if env.get("HF_HOME") else None),
            vector_store=_env_choice(env, "KOQA_VECTOR_STORE", VECTOR_STORES),
            pg_ef_search=_env_int(env, "KOQA_PG_EF_SEARCH", DEFAULT_EF_SEARCH, EF_SEARCH_RANGE),
        )


def reader_backend_name(value: str, field_name: str = "backend") -> str:
    """``value`` as one of READER_BACKENDS (older spellings accepted), else InvalidInput naming ``field_name``.

    >>> reader_backend_name("torch"), reader_backend_name("onnx-int8")
    ('torch-fp32', 'onnx-int8')
    """
    value = _BACKEND_ALIASES.get(value, value)
    if value not in READER_BACKENDS:
        from koqa.errors import InvalidInput

        raise InvalidInput(field_name, value, f"must be one of {', '.join(READER_BACKENDS)}")
    return value


def _path(value: str | None) -> Path | None:
    return Path(value).expanduser() if value else None


def _env_choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    value = env.get(name) or choices[0]
    if value not in choices:
        from koqa.errors import InvalidInput

        raise InvalidInput(name, value, f"must be one of {', '.join(choices)}")
    return value


def _env_int(env: Mapping[str, str], name: str, default: int, bounds: tuple[int, int]) -> int:
    value = env.get(name) or str(default)
    try:
        number = int(value)
    except ValueError:
        from koqa.errors import InvalidInput

        raise InvalidInput(name, value, "must be a whole number") from None
    return _check_range(name, number, bounds)


def _check_range(name: str, value: int, bounds: tuple[int, int]) -> int:
    if not bounds[0] <= value <= bounds[1]:
        from koqa.errors import InvalidInput

        raise InvalidInput(name, value, f"must be between {bounds[0]} and {bounds[1]}")
    return value
