"""The one place that loads the parts named in :class:`koqa.settings.Settings` (models load here).

``QAPipeline.from_settings``, the HTTP server's lifespan and the CLI all call these, so a
setting means the same everywhere.
"""

from __future__ import annotations

from koqa.settings import Settings

__all__ = ["load_corpus", "load_reader", "open_corpus"]


def open_corpus(settings: Settings, **kwargs):
    """The corpus of ``settings`` with ``kwargs`` (embedder, chunker): a
    :class:`~koqa.pipeline.pgcorpus.PgCorpus` when ``vector_store`` is ``pgvector``, else the
    embedded :class:`~koqa.pipeline.corpus.Corpus`."""
    if settings.vector_store == "pgvector":
        from koqa.pipeline.pgcorpus import PgCorpus as cls

        kwargs.setdefault("ef_search", settings.pg_ef_search)
    else:
        from koqa.pipeline.corpus import Corpus as cls
    return cls.from_settings(settings, **kwargs)


def load_corpus(settings: Settings, *, with_embedder: bool = True, embedder_backend: str | None = None):
    """The :class:`~koqa.pipeline.corpus.Corpus` of ``settings`` (storage and BM25 only when
    ``with_embedder`` is False: no model loads)."""
    embedder = None
    if with_embedder:
        from koqa.ingest.embedders import load_embedder

        kwargs = {"backend": embedder_backend} if embedder_backend else {}
        embedder = load_embedder(settings.embedder, settings=settings, **kwargs)
    return open_corpus(settings, embedder=embedder)


def load_reader(settings: Settings):
    """The :class:`~koqa.reader.QAReader` of ``settings`` on its configured backend."""
    from koqa.reader import QAReader

    return QAReader.from_pretrained(settings.reader, backend=settings.reader_backend, settings=settings)
