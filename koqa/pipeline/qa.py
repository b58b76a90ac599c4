"""The QA pipeline: retrieve passages → read all of them in one reader pass → ranked answers.

>>> from koqa.pipeline.fakes import FakeReader, MemoryRetriever
>>> retriever = MemoryRetriever({"역사": [("d1", "세종", "세종대왕은 1443년 훈민정음을 창제하였다.")]})
>>> qa = QAPipeline(retriever, FakeReader({"훈민정음을 만든 왕은?": "세종대왕"}))
>>> best = qa.ask("훈민정음을 만든 왕은?", collection="역사")[0]
>>> best.text, best.doc_id, (best.start, best.end)
('세종대왕', 'd1', (0, 4))

``ask`` returns answers ranked by the calibrated combined confidence
(:mod:`koqa.pipeline.calibration`). When the best confidence is below the
threshold the pipeline abstains: the list then starts with a *no-answer* entry
(``text == ""``, ``score`` = 1 − best confidence), Haystack-style, and the
low-confidence candidates follow it. :meth:`QAPipeline.run` returns the same as a
:class:`QAResult` with the retrieved hits, an explicit ``no_answer`` flag and timings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from koqa.errors import InvalidInput
from koqa.pipeline import answers as ans
from koqa.pipeline.calibration import Calibration, features
from koqa.pipeline.depth import ReadingDepth, merge_stages
from koqa.reader.base import Reader, Span
from koqa.reader.spans import MAX_ANSWER_LEN
from koqa.retriever.base import Retriever, check_mode
from koqa.types import Answer, Hit

MAX_PASSAGES = 100
MAX_ANSWERS = 50
MAX_QUESTION_CHARS = 1000


@dataclass(frozen=True)
class QAResult:
    """Everything one question produced; ``answers`` never contains the no-answer entry."""

    question: str
    answers: tuple[Answer, ...]
    hits: tuple[Hit, ...]
    no_answer: bool
    threshold: float
    timings: Mapping[str, float] = field(default_factory=dict)

    @property
    def no_answer_score(self) -> float:
        return 1.0 - (self.answers[0].score if self.answers else 0.0)

    def as_list(self) -> list[Answer]:
        """The ``ask`` view: a leading no-answer entry when the pipeline abstains."""
        if not self.no_answer:
            return list(self.answers)
        return [no_answer(self.no_answer_score), *self.answers]


def no_answer(score: float) -> Answer:
    """The abstain entry: empty text, no source."""
    return Answer(text="", score=score, reader_score=0.0, retrieval_score=0.0, doc_id="", doc_title="",
                  passage_id="", start=0, end=0)


class QAPipeline:
    """Retriever + reader + calibration; a plain class over injected parts.

    ``retriever`` needs ``retrieve(query, k, *, collection, mode) -> list[Hit]``
    (e.g. :class:`koqa.pipeline.corpus.Corpus`); ``reader`` needs
    ``read_batch(questions, contexts, top_k, *, max_answer_len)`` (e.g.
    :class:`koqa.reader.QAReader`).
    """

    def __init__(self, retriever: Retriever, reader: Reader, *, calibration: Calibration | None = None,
                 threshold: float | None = None, max_answer_len: int = MAX_ANSWER_LEN,
                 depth: ReadingDepth | None = ReadingDepth()):
        self.retriever, self.reader = retriever, reader
        self.calibration = calibration or Calibration.load()
        self.threshold = self.calibration.threshold if threshold is None else _check_threshold(threshold)
        self.max_answer_len = max_answer_len
        self.depth = depth  # adaptive by default; None: read all retrieved passages in one call

    @classmethod
    def from_settings(cls, settings, **kwargs) -> "QAPipeline":
        """Load the store and reader named in ``settings`` (models load here, once)."""
        from koqa.ingest.embedders import load_embedder
        from koqa.reader import QAReader
        from koqa.pipeline.corpus import Corpus

        store = Corpus.from_settings(settings, embedder=load_embedder(settings.embedder, settings=settings))
        return cls(store, QAReader.from_pretrained(settings.reader, backend=settings.reader_backend, settings=settings), **kwargs)

    # ------------------------------------------------------------------ public API

    def ask(self, question: str, collection: str = "default", top_k_passages: int = 20, top_n_answers: int = 5,
            mode: str = "hybrid", *, threshold: float | None = None, filters: Mapping | None = None) -> list[Answer]:
        """Ranked answers to ``question`` from ``collection`` (see the module doc for abstaining).

        ``filters`` reads only documents whose fields match, e.g. ``{"source": "규정.pdf"}``
        (see :mod:`koqa.store.filters`).
        """
        return self.run(question, collection, top_k_passages, top_n_answers, mode, threshold=threshold,
                        filters=filters).as_list()

    def ask_batch(self, questions: Sequence[str], collection: str = "default", top_k_passages: int = 20,
                  top_n_answers: int = 5, mode: str = "hybrid", *, threshold: float | None = None,
                  filters: Mapping | None = None) -> list[list[Answer]]:
        """``ask`` for many questions; all their passages go through the reader in one call."""
        results = self.run_batch(questions, collection, top_k_passages, top_n_answers, mode, threshold=threshold,
                                 filters=filters)
        return [r.as_list() for r in results]

    def run(self, question: str, collection: str = "default", top_k_passages: int = 20, top_n_answers: int = 5,
            mode: str = "hybrid", *, threshold: float | None = None, filters: Mapping | None = None) -> QAResult:
        return self.run_batch([question], collection, top_k_passages, top_n_answers, mode, threshold=threshold,
                              filters=filters)[0]

    def run_batch(self, questions: Sequence[str], collection: str = "default", top_k_passages: int = 20,
                  top_n_answers: int = 5, mode: str = "hybrid", *, threshold: float | None = None,
                  filters: Mapping | None = None) -> list[QAResult]:
        if isinstance(questions, str) or not isinstance(questions, Sequence):
            raise InvalidInput("questions", questions, "must be a list of strings")
        questions = [check_question(q) for q in questions]
        check_options(top_k_passages, top_n_answers, mode, threshold)
        t0 = time.perf_counter()
        all_hits = [self.retrieve(q, collection, top_k_passages, mode, filters) for q in questions]
        t1 = time.perf_counter()
        stages_before = dict(getattr(self.reader, "seconds", {}))  # QAReader: tokenize/forward/decode
        spans, n_read = self._read_stages(questions, all_hits, top_n_answers)
        t2 = time.perf_counter()
        n = max(1, len(questions))
        timings = {"retrieve_s": (t1 - t0) / n, "read_s": (t2 - t1) / n}
        timings |= {f"read_{k}_s": (v - stages_before[k]) / n for k, v in getattr(self.reader, "seconds", {}).items()}
        return [self.assemble(q, h, s, top_n_answers, threshold=threshold, timings={**timings, "passages_read": r})
                for q, h, s, r in zip(questions, all_hits, spans, n_read)]

    # ------------------------------------------------------------------ the steps

    def retrieve(self, question: str, collection: str, k: int, mode: str = "hybrid",
                 filters: Mapping | None = None) -> list[Hit]:
        question = check_question(question)
        return list(self.retriever.retrieve(question, k, collection=collection, mode=mode, filters=filters or None))

    def read(self, questions: Sequence[str], all_hits: Sequence[Sequence[Hit]], top_n_answers: int) -> list[list[Span]]:
        """Spans of every question over its hits (in stages when ``depth`` is set)."""
        return self._read_stages(questions, all_hits, top_n_answers)[0]

    def _read_stages(self, questions, all_hits, top_n_answers) -> tuple[list[list[Span]], list[int]]:
        """One reader call per stage for all questions still undecided; questions without hits get no spans."""
        spans: list[list[Span]] = [[] for _ in questions]
        n_read = [0] * len(questions)
        plans = [self.stages(len(h)) for h in all_hits]
        for stage in range(max((len(p) for p in plans), default=0)):
            jobs = [i for i, p in enumerate(plans) if stage < len(p)
                    and not (stage and self.decisive(questions[i], all_hits[i], spans[i], top_n_answers))]
            if not jobs:
                break
            ranges = [plans[i][stage] for i in jobs]
            out = self.read_once([questions[i] for i in jobs],
                                 [[h.passage.text for h in all_hits[i][lo:hi]] for i, (lo, hi) in zip(jobs, ranges)],
                                 top_n_answers)
            for i, (lo, hi), new in zip(jobs, ranges, out):
                spans[i] = merge_stages(spans[i], new, lo, spans_to_read(top_n_answers))
                n_read[i] = hi
        return spans, n_read

    def read_once(self, questions: Sequence[str], contexts: Sequence[Sequence[str]], top_n_answers: int) -> list[list[Span]]:
        """ONE reader call for every (question, passage) pair given."""
        return [list(s) for s in self.reader.read_batch(list(questions), [list(c) for c in contexts],
                                                         top_k=spans_to_read(top_n_answers),
                                                         max_answer_len=self.max_answer_len)]

    def stages(self, n_hits: int) -> list[tuple[int, int]]:
        """The passage ranges read in turn: all at once, or adaptively (see :mod:`koqa.pipeline.depth`)."""
        if n_hits == 0:
            return []
        return self.depth.stages(n_hits) if self.depth else [(0, n_hits)]

    def decisive(self, question: str, hits: Sequence[Hit], spans: Sequence[Span], top_n_answers: int) -> bool:
        """Whether the answers read so far are confident enough to stop reading."""
        if self.depth is None or not spans:
            return False
        model = self.calibration.first_pass or self.calibration  # fitted on first-pass reads when available
        cands = ans.candidates(spans, hits)
        best = max((model.confidence(features(c, cands, hits)) for c in cands), default=0.0)
        return best >= self.depth.stop_confidence

    def assemble(self, question: str, hits: Sequence[Hit], spans: Sequence[Span], top_n_answers: int = 5, *,
                 threshold: float | None = None, timings: Mapping[str, float] | None = None) -> QAResult:
        """Merge, score and rank the reader's spans of one question."""
        threshold = self.threshold if threshold is None else threshold
        cands = ans.candidates(spans, hits)
        scored = [(self.calibration.confidence(features(c, cands, hits)), c) for c in cands]
        scored.sort(key=lambda sc: -sc[0])
        answers = tuple(_to_answer(score, cand) for score, cand in scored[:top_n_answers])
        best = answers[0].score if answers else 0.0
        return QAResult(question, answers, tuple(hits), best < threshold, threshold, dict(timings or {}))


def spans_to_read(top_n_answers: int) -> int:
    """Ask the reader for more spans than answers so duplicates across passages can merge."""
    return max(20, 4 * top_n_answers)


def check_question(question: object) -> str:
    if not isinstance(question, str):
        raise InvalidInput("question", question, "must be a string")
    if not question.strip():
        raise InvalidInput("question", question, "must not be empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise InvalidInput("question", question, f"must be at most {MAX_QUESTION_CHARS} characters")
    return question.strip()


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_options(top_k_passages: int, top_n_answers: int, mode: str, threshold: float | None = None) -> None:
    if not _is_int(top_k_passages) or not 1 <= top_k_passages <= MAX_PASSAGES:
        raise InvalidInput("top_k_passages", top_k_passages, f"must be an integer in 1..{MAX_PASSAGES}")
    if not _is_int(top_n_answers) or not 1 <= top_n_answers <= MAX_ANSWERS:
        raise InvalidInput("top_n_answers", top_n_answers, f"must be an integer in 1..{MAX_ANSWERS}")
    check_mode(mode)
    if threshold is not None:
        _check_threshold(threshold)


def _check_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise InvalidInput("threshold", threshold, "must be a number in [0, 1]")
    return float(threshold)


def _to_answer(score: float, cand: ans.Candidate) -> Answer:
    best = cand.best
    passage = best.hit.passage
    return Answer(
        text=cand.text,
        score=score,
        reader_score=float(best.span.score),
        retrieval_score=float(best.hit.score),
        doc_id=passage.doc_id,
        doc_title=passage.title,
        passage_id=passage.id,
        start=best.doc_start,
        end=best.doc_end,
        context=ans.highlight(passage.text, best.span.start, best.span.end),
        sources=tuple(ans.source_record(o, o.hit.score) for o in cand.occurrences),
    )
