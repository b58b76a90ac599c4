"""Retrieval contracts.

An :class:`Embedder` may also carry a ``tokenizer`` attribute (a
:class:`koqa.ingest.chunking.Tokenizer`); the indexer then sizes passages with it.
"""

from __future__ import annotations

from typing import Literal, Mapping, Protocol, Sequence, get_args, runtime_checkable

import numpy as np

from koqa.errors import InvalidInput
from koqa.types import Hit

Mode = Literal["hybrid", "dense", "bm25"]
MODES: tuple[str, ...] = get_args(Mode)  # the one declaration of the retrieval modes


def check_mode(mode: object) -> str:
    if mode not in MODES:
        raise InvalidInput("mode", mode, f"must be one of {', '.join(MODES)}")
    return mode


@runtime_checkable
class Embedder(Protocol):
    """Text → L2-normalised float32 vectors. ``name`` and ``dim`` are recorded in the index."""

    name: str
    dim: int

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...


@runtime_checkable
class Retriever(Protocol):
    def retrieve(self, query: str, k: int = 10, *, collection: str = "default", mode: Mode = "hybrid",
                 filters: Mapping | None = None) -> list[Hit]:
        """The ``k`` best passages; ``filters`` (see :mod:`koqa.store.filters`) keeps matching documents only."""
        ...
