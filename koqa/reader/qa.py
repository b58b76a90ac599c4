"""The extractive reader over any Hugging Face question-answering checkpoint.

>>> reader = QAReader.from_pretrained("koqa:reader-small")          # doctest: +SKIP
>>> reader.read("훈민정음을 만든 왕은?", "세종대왕은 1443년 훈민정음을 창제하였다.")[0].text  # doctest: +SKIP
'세종대왕'

All (question, window) pairs of one call are flattened, sorted by length, run in
fixed-size batches (each padded only to its own longest window) and regrouped by
question; spans are then decoded per question across all its windows and contexts
(see :mod:`koqa.reader.base` for how scores are made comparable).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np

from koqa.errors import InvalidInput
from koqa.reader.base import Span, TokenProbs
from koqa.text.particles import ParticleTrimmer
from koqa.reader.spans import MAX_ANSWER_LEN, joint_log_softmax, top_spans
from koqa.reader.windows import Window, batches_by_length, make_windows, pad_batch

# (batch of int64 arrays) → (start_logits, end_logits), each (batch, tokens) float32
Runner = Callable[[dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray]]


CPU_BATCH, CUDA_BATCH = 4, 64


@dataclass(frozen=True)
class ReaderConfig:
    max_seq_len: int = 384
    doc_stride: int = 128
    max_question_len: int = 96
    max_answer_len: int = MAX_ANSWER_LEN
    # None: by device (CPU_BATCH / CUDA_BATCH). A few windows already keep CPU cores busy, so larger batches
    # there only add padding to the longest window; a GPU needs large batches to be filled
    batch_size: int | None = None
    max_context_chars: int = 100_000
    # on by default: KorQuAD-style gold answers stop before a trailing particle (세종대왕, not 세종대왕은),
    # which extractive spans often take along; the gain is in the model cards (bench/reader_accuracy.py)
    trim_particles: bool = True


@dataclass(frozen=True)
class _Options:
    top_k: int
    max_answer_len: int
    handle_impossible_answer: bool
    return_token_probs: bool
    max_seq_len: int
    doc_stride: int
    max_question_len: int
    trimmer: ParticleTrimmer | None


def trimmer_for(config: ReaderConfig):
    """The Korean particle trimmer ``config`` asks for (Kiwi loads here), or None."""
    if not config.trim_particles:
        return None
    return ParticleTrimmer.load()


class QAReader:
    """Reads spans out of contexts with a tokenizer and a model runner.

    Answers are trimmed of Korean particles only by ``trimmer``: ``from_pretrained`` passes
    ``trimmer_for(config)``; a direct construction passes it itself or reads untrimmed spans.
    """

    def __init__(self, tokenizer, runner: Runner, config: ReaderConfig = ReaderConfig(), *, name: str = "", trimmer=None):
        if not getattr(tokenizer, "is_fast", False):
            raise InvalidInput("tokenizer", type(tokenizer).__name__, "must be a fast tokenizer (offset mappings are needed)")
        if config.batch_size is None:
            on_gpu = str(getattr(runner, "device", "cpu")).startswith("cuda")
            config = replace(config, batch_size=CUDA_BATCH if on_gpu else CPU_BATCH)
        self.tokenizer, self.runner, self.config, self.name = tokenizer, runner, config, name
        self.trimmer = trimmer
        self.backend = None  # a koqa.reader.backend.Choice when loaded by from_pretrained
        self._called_trimmer = None  # loaded only when a call asks a trimmer-less reader to trim
        self._trimmer_lock = threading.Lock()
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.forward_batches = 0  # how many model batches ran; lets callers observe batching
        # cumulative wall seconds per stage, so callers can report where reading time goes
        self.seconds = {"tokenize": 0.0, "forward": 0.0, "decode": 0.0}

    @classmethod
    def from_pretrained(cls, name_or_path: str, *, device: str | None = None, backend: str = "auto",
                        settings=None, **config) -> "QAReader":
        """Load a built-in name (``koqa:reader-small``), a local folder, or a hub name.

        ``backend`` is one of ``koqa.settings.READER_BACKENDS``; "auto" picks the fastest safe
        one for this machine (:mod:`koqa.reader.backend`); ``self.backend`` says which and why.
        """
        from koqa.reader.backend import resolve_backend
        from koqa.reader.loading import load_reader_parts

        cfg = ReaderConfig(**config)
        choice = resolve_backend(backend, device=device)
        tokenizer, runner = load_reader_parts(name_or_path, device=device, backend=choice.backend, settings=settings)
        reader = cls(tokenizer, runner, cfg, name=name_or_path, trimmer=trimmer_for(cfg))
        reader.backend = choice
        return reader

    # ------------------------------------------------------------------ public API

    def read(self, question: str, contexts: str | Sequence[str], top_k: int = 1, **options) -> list[Span]:
        """Top-k spans for one question over one or many contexts, best first."""
        if isinstance(contexts, str):
            contexts = [contexts]
        return self.read_batch([question], [contexts], top_k=top_k, **options)[0]

    def read_batch(
        self,
        questions: Sequence[str],
        contexts: Sequence[Sequence[str]],
        top_k: int = 1,
        *,
        max_answer_len: int | None = None,
        handle_impossible_answer: bool = False,
        return_token_probs: bool = False,
        max_seq_len: int | None = None,
        doc_stride: int | None = None,
        max_question_len: int | None = None,
        trim_particles: bool | None = None,
    ) -> list[list[Span]]:
        """Spans for many questions, each with its own list of contexts, in one batched pass.

        Options left at None take the reader's config; ``trim_particles`` True or False overrides
        whether trailing Korean particles are cut for this call only.
        """
        opts = self._options(top_k, max_answer_len, handle_impossible_answer, return_token_probs, max_seq_len,
                             doc_stride, max_question_len, trim_particles)
        questions, contexts = self._validate(questions, contexts)
        pair_q, pair_c, flat_q, flat_c = [], [], [], []
        for qi, (q, ctxs) in enumerate(zip(questions, contexts)):
            for ci, c in enumerate(ctxs):
                pair_q.append(qi)
                pair_c.append(ci)
                flat_q.append(q)
                flat_c.append(c)
        t0 = time.perf_counter()
        windows = make_windows(self.tokenizer, flat_q, flat_c, max_seq_len=opts.max_seq_len,
                               doc_stride=opts.doc_stride, max_question_len=opts.max_question_len)
        t1 = time.perf_counter()
        starts, ends = self._run(windows)
        t2 = time.perf_counter()
        by_question: list[list[int]] = [[] for _ in questions]
        for wi, w in enumerate(windows):
            by_question[pair_q[w.pair]].append(wi)
        results = []
        for qi, wids in enumerate(by_question):
            ws = [windows[i] for i in wids]
            results.append(self._decode(ws, [starts[i] for i in wids], [ends[i] for i in wids],
                                        [pair_c[w.pair] for w in ws], contexts[qi], opts))
        for stage, dt in zip(self.seconds, (t1 - t0, t2 - t1, time.perf_counter() - t2)):
            self.seconds[stage] += dt
        return results

    # ------------------------------------------------------------------ internals

    def _options(self, top_k, max_answer_len, handle_impossible, token_probs, max_seq_len, doc_stride,
                 max_question_len, trim_particles) -> _Options:
        ints = (("top_k", top_k), ("max_answer_len", max_answer_len), ("max_seq_len", max_seq_len),
                ("doc_stride", doc_stride), ("max_question_len", max_question_len))
        for field, value in ints:
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise InvalidInput(field, value, "must be an integer")
        for field, value in (("top_k", top_k), ("max_answer_len", max_answer_len), ("max_question_len", max_question_len)):
            if value is not None and value < 1:
                raise InvalidInput(field, value, "must be >= 1")
        positions = getattr(self.tokenizer, "model_max_length", None)
        if max_seq_len is not None and positions and positions < 1_000_000 and max_seq_len > positions:
            raise InvalidInput("max_seq_len", max_seq_len, f"must be at most {positions}, the model's positions")
        c = self.config
        return _Options(top_k, max_answer_len or c.max_answer_len, bool(handle_impossible), bool(token_probs),
                        max_seq_len or c.max_seq_len, c.doc_stride if doc_stride is None else doc_stride,
                        max_question_len or c.max_question_len, self._trimmer(trim_particles))

    def _validate(self, questions, contexts) -> tuple[list[str], list[list[str]]]:
        if isinstance(questions, str) or not isinstance(questions, Sequence):
            raise InvalidInput("questions", questions, "must be a list of strings")
        if len(questions) != len(contexts):
            raise InvalidInput("contexts", len(contexts), f"must have one list per question ({len(questions)})")
        qs, cs = [], []
        for q, ctxs in zip(questions, contexts):
            if not isinstance(q, str) or not q.strip():
                raise InvalidInput("question", q, "must be a non-empty string")
            if isinstance(ctxs, str):
                ctxs = [ctxs]
            if not isinstance(ctxs, Sequence) or not ctxs:
                raise InvalidInput("context", ctxs, "must be a non-empty string or list of strings")
            for c in ctxs:
                if not isinstance(c, str) or not c.strip():
                    raise InvalidInput("context", c, "must be a non-empty string")
                if len(c) > self.config.max_context_chars:
                    raise InvalidInput("context", c[:40], f"is {len(c)} characters; the limit is {self.config.max_context_chars}")
            qs.append(q)
            cs.append(list(ctxs))
        return qs, cs

    def _run(self, windows: list[Window]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        starts: list[np.ndarray] = [None] * len(windows)  # type: ignore[list-item]
        ends: list[np.ndarray] = [None] * len(windows)  # type: ignore[list-item]
        for idx in batches_by_length(windows, self.config.batch_size):
            batch = [windows[i] for i in idx]
            s, e = self.runner(pad_batch(batch, self.pad_id))
            self.forward_batches += 1
            for row, i in enumerate(idx):
                n = len(windows[i])
                starts[i], ends[i] = s[row, :n], e[row, :n]
        return starts, ends

    def _decode(self, ws: list[Window], starts, ends, ctx_ids: list[int], contexts: list[str], o: _Options) -> list[Span]:
        if not ws:
            return []
        t = max(len(w) for w in ws)
        start = np.full((len(ws), t), -1e9, np.float32)
        end = np.full((len(ws), t), -1e9, np.float32)
        mask = np.zeros((len(ws), t), bool)
        for r, w in enumerate(ws):
            # anchor every window at its own "no answer" ([CLS], token 0) logits: a span's score becomes its
            # log-odds against "not in this window", which compares across windows and passages (raw logits
            # carry an arbitrary per-window offset; on KorQuAD open-domain, ranking by them picks a wrong
            # passage most of the time)
            start[r, : len(w)], end[r, : len(w)] = starts[r] - starts[r][0], ends[r] - ends[r][0]
            mask[r, : len(w)] = w.is_context
        norm_mask = mask.copy()
        if o.handle_impossible_answer:
            norm_mask[0, 0] = True  # "no answer" (logit 0 in every window after anchoring) counts once
        log_ps, log_pe = joint_log_softmax(start, norm_mask), joint_log_softmax(end, norm_mask)
        spans: list[Span] = []
        seen: set[tuple[int, int, int]] = set()
        for r, s, e, score in top_spans(start, end, mask, o.max_answer_len, o.top_k * 4 + len(ws)):
            w, ci = ws[r], ctx_ids[r]
            span = self._make_span(contexts[ci], ci, int(w.offsets[s, 0]), int(w.offsets[e, 1]), score,
                                   float(np.exp(log_ps[r, s])), float(np.exp(log_pe[r, e])), o.trimmer)
            if span is None or (ci, span.start, span.end) in seen:
                continue
            seen.add((ci, span.start, span.end))
            if o.return_token_probs:
                m = w.is_context
                span = replace(span, token_probs=TokenProbs(w.offsets[m], np.exp(log_ps[r, : len(w)][m]), np.exp(log_pe[r, : len(w)][m])))
            spans.append(span)
            if len(spans) == o.top_k:
                break
        if o.handle_impossible_answer:
            spans = _add_null(spans, log_ps, log_pe, o.top_k)
        return spans

    def _trimmer(self, wanted: bool | None):
        """The trimmer of one call: the reader's own unless the call says otherwise."""
        if wanted is None:
            return self.trimmer
        if not wanted:
            return None
        if self.trimmer is not None:
            return self.trimmer
        with self._trimmer_lock:  # a reader built without one: load it once, even under concurrent calls
            if self._called_trimmer is None:
                self._called_trimmer = ParticleTrimmer.load()
        return self._called_trimmer

    @staticmethod
    def _make_span(context: str, ci: int, cs: int, ce: int, score: float, ps: float, pe: float, trimmer) -> Span | None:
        if trimmer is not None:
            ce = trimmer.span_end(context, cs, ce)
        text = context[cs:ce]
        stripped = text.strip()
        if not stripped:
            return None
        cs += len(text) - len(text.lstrip())
        return Span(stripped, cs, cs + len(stripped), score, ps, pe, ci)


def _add_null(spans: list[Span], log_ps, log_pe, top_k: int) -> list[Span]:
    """Insert the "no answer" span (score 0: every span score is relative to it)."""
    null = Span("", 0, 0, 0.0, float(np.exp(log_ps[0, 0])), float(np.exp(log_pe[0, 0])))
    return sorted(spans + [null], key=lambda sp: -sp.prob)[:top_k]
