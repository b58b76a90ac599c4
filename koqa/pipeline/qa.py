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

import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import Awaitable, Generator, Mapping, Protocol, Sequence

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
class ReadCall:
    """One reader call of the reading loop: each question with the passages it reads now."""

    questions: list[str]
    contexts: list[list[str]]
    top_k: int
    max_answer_len: int


class AsyncRead(Protocol):
    """An awaitable ``read_batch`` (the API's micro-batcher is one)."""

    def __call__(self, questions: Sequence[str], contexts: Sequence[Sequence[str]], *, top_k: int,
                 max_answer_len: int) -> Awaitable[Sequence[Sequence[Span]]]: ...


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

    def record(self, collection: str, *, return_passages: bool = False) -> dict:
        """The JSON form of the result (``koqa ask --json``, ``POST /ask``); ``return_passages``
        adds each answer's whole source passage with the answer's offsets in it."""
        passages = {h.passage.id: h.passage for h in self.hits}
        answers = []
        for a in self.answers:
            out = {**asdict(a), "sources": [dict(src) for src in a.sources]}
            p = passages.get(a.passage_id)
            if return_passages and p is not None:
                out["passage"] = {"id": p.id, "text": p.text, "start": p.start,
                                  "answer_start": a.start - p.start, "answer_end": a.end - p.start}
            answers.append(out)
        return {"question": self.question, "collection": collection, "no_answer": self.no_answer,
                "no_answer_score": self.no_answer_score, "threshold": self.threshold, "answers": answers,
                "timings": dict(self.timings)}

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
        reader_name = getattr(reader, "name", type(reader).__name__)
        if calibration is None:
            calibration = Calibration.for_reader(reader_name)
        else:
            calibration.check_reader(reader_name)
        self.calibration = calibration
        self.threshold = self.calibration.threshold if threshold is None else _check_threshold(threshold)
        self.max_answer_len = max_answer_len
        self.depth = depth  # adaptive by default; None: read all retrieved passages in one call

    @classmethod
    def from_settings(cls, settings, **kwargs) -> "QAPipeline":
        """Load the store and reader named in ``settings`` (models load here, once)."""
        from koqa.pipeline.parts import load_corpus, load_reader

        return cls(load_corpus(settings), load_reader(settings), **kwargs)

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
        spans, n_read = self._read_sync(questions, all_hits, top_n_answers)
        t2 = time.perf_counter()
        n = max(1, len(questions))
        timings = {"retrieve_s": (t1 - t0) / n, "read_s": (t2 - t1) / n}
        return [self._assemble(q, h, s, top_n_answers, threshold, {**timings, "passages_read": r})
                for q, h, s, r in zip(questions, all_hits, spans, n_read)]

    async def aask(self, question: str, collection: str = "default", top_k_passages: int = 20,
                   top_n_answers: int = 5, mode: str = "hybrid", *, threshold: float | None = None,
                   filters: Mapping | None = None, read: AsyncRead | None = None) -> list[Answer]:
        """``ask`` for an event loop; see :meth:`arun`."""
        result = await self.arun(question, collection, top_k_passages, top_n_answers, mode, threshold=threshold,
                                 filters=filters, read=read)
        return result.as_list()

    async def arun(self, question: str, collection: str = "default", top_k_passages: int = 20,
                   top_n_answers: int = 5, mode: str = "hybrid", *, threshold: float | None = None,
                   filters: Mapping | None = None, read: AsyncRead | None = None) -> QAResult:
        """``run`` for an event loop: retrieval runs in a worker thread and each reader call is awaited.

        ``read`` (e.g. :meth:`koqa.api.batcher.MicroBatcher.read_batch`, which batches the
        passages of concurrent requests together) replaces the reader's own ``read_batch``
        run in a thread; the reading loop is the same as ``run``'s.
        """
        question = check_question(question)
        check_options(top_k_passages, top_n_answers, mode, threshold)
        t0 = time.perf_counter()
        hits = await asyncio.to_thread(self.retrieve, question, collection, top_k_passages, mode, filters)
        t1 = time.perf_counter()
        reading = self._reading([question], [hits], top_n_answers)
        try:
            call = next(reading)
            while True:
                if read is None:
                    out = await asyncio.to_thread(self._read_now, call)
                else:
                    out = await read(call.questions, call.contexts, top_k=call.top_k, max_answer_len=call.max_answer_len)
                call = reading.send(out)
        except StopIteration as done:
            (spans,), (n_read,) = done.value
        t2 = time.perf_counter()
        timings = {"retrieve_s": t1 - t0, "read_s": t2 - t1, "passages_read": n_read}
        return self._assemble(question, hits, spans, top_n_answers, threshold, timings)

    # ------------------------------------------------------------------ the steps

    def retrieve(self, question: str, collection: str, k: int, mode: str = "hybrid",
                 filters: Mapping | None = None) -> list[Hit]:
        question = check_question(question)
        return list(self.retriever.retrieve(question, k, collection=collection, mode=mode, filters=filters or None))

    def read(self, questions: Sequence[str], all_hits: Sequence[Sequence[Hit]], top_n_answers: int = 5
             ) -> list[list[Span]]:
        """The reader's spans of every question over its hits, read as ``run`` reads them."""
        return self._read_sync(list(questions), all_hits, top_n_answers)[0]

    def _read_sync(self, questions, all_hits, top_n_answers) -> tuple[list[list[Span]], list[int]]:
        reading = self._reading(questions, all_hits, top_n_answers)
        try:
            call = next(reading)
            while True:
                call = reading.send(self._read_now(call))
        except StopIteration as done:
            return done.value

    def _read_now(self, call: ReadCall) -> list[list[Span]]:
        return self.reader.read_batch(call.questions, call.contexts, call.top_k, max_answer_len=call.max_answer_len)

    def _reading(self, questions: Sequence[str], all_hits: Sequence[Sequence[Hit]], top_n_answers: int
                 ) -> Generator[ReadCall, Sequence[Sequence[Span]], tuple[list[list[Span]], list[int]]]:
        """The reading loop, shared by the sync and async paths: it yields one :class:`ReadCall`
        per stage for every question still undecided, is sent the reader's spans back, and
        returns each question's merged spans and how many passages it read."""
        top_k = spans_to_read(top_n_answers)
        spans: list[list[Span]] = [[] for _ in questions]
        n_read = [0] * len(questions)
        plans = [self._stages(len(h)) for h in all_hits]
        for stage in range(max((len(p) for p in plans), default=0)):
            jobs = [i for i, p in enumerate(plans) if stage < len(p)
                    and not (stage and self._decisive(all_hits[i], spans[i]))]
            if not jobs:
                break
            ranges = [plans[i][stage] for i in jobs]
            out = yield ReadCall([questions[i] for i in jobs],
                                 [[h.passage.text for h in all_hits[i][lo:hi]] for i, (lo, hi) in zip(jobs, ranges)],
                                 top_k, self.max_answer_len)
            for i, (lo, hi), new in zip(jobs, ranges, out):
                spans[i] = merge_stages(spans[i], list(new), lo, top_k)
                n_read[i] = hi
        return spans, n_read

    def _stages(self, n_hits: int) -> list[tuple[int, int]]:
        """The passage ranges read in turn: all at once, or adaptively (see :mod:`koqa.pipeline.depth`)."""
        if n_hits == 0:
            return []
        return self.depth.stages(n_hits) if self.depth else [(0, n_hits)]

    def _decisive(self, hits: Sequence[Hit], spans: Sequence[Span]) -> bool:
        """Whether the answers read so far are confident enough to stop reading."""
        if self.depth is None or not spans:
            return False
        model = self.calibration.first_pass or self.calibration  # fitted on first-pass reads when available
        cands = ans.candidates(spans, hits)
        best = max((model.confidence(features(c, cands, hits)) for c in cands), default=0.0)
        return best >= self.depth.stop_confidence

    def _assemble(self, question: str, hits: Sequence[Hit], spans: Sequence[Span], top_n_answers: int,
                  threshold: float | None, timings: Mapping[str, float]) -> QAResult:
        """Merge, score and rank the reader's spans of one question."""
        threshold = self.threshold if threshold is None else threshold
        cands = ans.candidates(spans, hits)
        scored = [(self.calibration.confidence(features(c, cands, hits)), c) for c in cands]
        scored.sort(key=lambda sc: -sc[0])
        answers = tuple(_to_answer(score, cand) for score, cand in scored[:top_n_answers])
        best = answers[0].score if answers else 0.0
        return QAResult(question, answers, tuple(hits), best < threshold, threshold, dict(timings))


def spans_to_read(top_n_answers: int) -> int:
    """Ask the reader for more spans than answers so duplicates across passages can merge."""
    return max(20, 4 * top_n_answers)


def check_question(question: object) -> str:
    if not isinstance(question, str):
        raise InvalidInput("question", question, "must be a string")
    if not question.strip():
        raise InvalidInput("question", question, "must not be empty")
    if "\x00" in question:
        raise InvalidInput("question", question, "must not contain NUL characters")
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
