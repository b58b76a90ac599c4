"""What the framework integrations share: settings at their edge, hits as plain metadata, reading given hits.

A framework's document carries a koqa hit as its text plus :func:`hit_meta` (plain JSON
values); :func:`hit_from_meta` turns it back so the reader's calibrated confidence sees
the same retrieval scores and ranks ``koqa ask`` sees.

>>> from koqa.types import Hit, Passage
>>> hit = Hit(Passage("d1:0", "d1", 0, 10, 14, "세종대왕", "세종"), 0.5, {"bm25": 3.0}, {"bm25": 1})
>>> meta = hit_meta(hit, "역사")
>>> meta["start"], meta["scores"]
(10, {'bm25': 3.0})
>>> hit_from_meta("d1:0", "세종대왕", 0.5, meta) == hit
True
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from koqa.errors import InvalidInput
from koqa.pipeline.depth import ReadingDepth
from koqa.pipeline.qa import MAX_PASSAGES, QAPipeline, QAResult, check_question
from koqa.settings import Settings
from koqa.types import Hit, Passage


def edge_settings(**overrides: Any) -> Settings:
    """``Settings.from_env()`` with every override that is not None (a component is an edge:
    it reads the environment once, when it loads its models). A ``home`` given without a
    ``database_url`` keeps its own SQLite file.

    >>> s = edge_settings(home="/tmp/kq-doc", reader=None)
    >>> s.database_url
    'sqlite:////tmp/kq-doc/koqa.db'
    """
    env = Settings.from_env()
    fields = {f: getattr(env, f) for f in env.__dataclass_fields__}
    given = {k: v for k, v in overrides.items() if v is not None}
    if "home" in given and "database_url" not in given:
        fields["database_url"] = None
    return Settings(**{**fields, **given})


def check_count(name: str, value: object, limit: int) -> int:
    """``value`` when it is an integer in 1..``limit``, else InvalidInput naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        raise InvalidInput(name, value, f"must be an integer in 1..{limit}")
    return value


def open_retrieval_corpus(*, home: str | None, database_url: str | None, embedder: str | None, mode: str):
    """The corpus a framework retriever reads, opened at its edge; a bm25 retriever loads no
    embedding model (a call may then not ask for dense retrieval)."""
    from koqa.pipeline.parts import load_corpus

    settings = edge_settings(home=home, database_url=database_url, embedder=embedder)
    return load_corpus(settings, with_embedder=mode != "bm25")


def retrieve_hits(corpus, query: str, collection: str, *, top_k: int, mode: str, filters: dict | None,
                  call_top_k: int | None = None, call_mode: str | None = None,
                  call_filters: dict | None = None) -> list[Hit]:
    """One retrieval of a framework retriever: the call's ``top_k``/``mode``/``filters`` replace
    the component's own (each checked), then ``corpus.retrieve``."""
    from koqa.retriever.base import check_mode

    query = check_question(query)
    k = top_k if call_top_k is None else check_count("top_k", call_top_k, MAX_PASSAGES)
    mode = mode if call_mode is None else check_mode(call_mode)
    filters = filters if call_filters is None else call_filters
    return corpus.retrieve(query, k, collection=collection, mode=mode, filters=filters or None)


def hit_meta(hit: Hit, collection: str) -> dict[str, Any]:
    """The metadata of a retrieved passage: offsets into its document, retrieval scores and ranks."""
    p = hit.passage
    return {"doc_id": p.doc_id, "title": p.title, "source": p.source, "passage_index": p.index,
            "start": p.start, "end": p.end, "collection": collection, "scores": dict(hit.scores),
            "ranks": dict(hit.ranks)}


def hit_from_meta(doc_id: str, text: str, score: float | None, meta: Mapping[str, Any]) -> Hit:
    """A :class:`Hit` from a framework document; a document koqa did not retrieve is a whole
    document (offset 0) with only its own score."""
    start = int(meta.get("start", 0) or 0)
    passage = Passage(id=str(doc_id), doc_id=str(meta.get("doc_id", doc_id)), index=int(meta.get("passage_index", 0) or 0),
                      start=start, end=start + len(text), text=text, title=str(meta.get("title", "") or ""),
                      source=str(meta.get("source", "") or ""))
    return Hit(passage, float(score or 0.0), dict(meta.get("scores") or {}), dict(meta.get("ranks") or {}))


class GivenHits:
    """A retriever that returns the hits it was given: reads passages some other component retrieved."""

    def __init__(self, hits: Sequence[Hit]):
        self.hits = list(hits)

    def retrieve(self, query, k=10, **_options) -> list[Hit]:
        return self.hits[:k]


def read_hits(reader, question: str, hits: Sequence[Hit], *, top_n: int, threshold: float | None = None,
              calibration=None, depth: ReadingDepth | None = ReadingDepth()) -> QAResult:
    """What ``koqa ask`` does after retrieval, on ``hits``: the same reading loop and calibration."""
    if len(hits) > MAX_PASSAGES:
        raise InvalidInput("documents", len(hits), f"at most {MAX_PASSAGES} documents can be read at once")
    qa = QAPipeline(GivenHits(hits), reader, calibration=calibration, threshold=threshold, depth=depth)
    return qa.run(question, top_k_passages=max(1, len(hits)), top_n_answers=top_n)
