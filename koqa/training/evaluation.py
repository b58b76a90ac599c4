"""Evaluate a reader on SQuAD-layout examples with the official KorQuAD metric.

>>> from koqa.training.korquad import QAExample
>>> class Echo:  # any Reader works; this one answers with the first word
...     def read_batch(self, qs, cs, top_k=1):
...         from koqa.reader.base import Span
...         return [[Span(c[0].split()[0], 0, 0, 0.0, 1.0, 1.0)] for c in cs]
>>> ex = [QAExample("1", "수도는?", "서울 은 수도", (("서울", 0),))]
>>> evaluate_reader(Echo(), ex, progress=False)[0]
{'exact_match': 100.0, 'f1': 100.0, 'questions': 1}
"""

from __future__ import annotations

from typing import Sequence

from tqdm import tqdm

from koqa.reader.base import Span
from koqa.training.korquad import QAExample, evaluate


def predict_spans(reader, examples: Sequence[QAExample], *, batch_questions: int = 64, progress: bool = True,
                  **options) -> dict[str, Span | None]:
    """id → best span (None when the reader found none), reading ``batch_questions`` questions per call."""
    spans: dict[str, Span | None] = {}
    bar = tqdm(total=len(examples), desc="reading", unit="q", disable=not progress)
    for i in range(0, len(examples), batch_questions):
        chunk = examples[i : i + batch_questions]
        found = reader.read_batch([e.question for e in chunk], [[e.context] for e in chunk], top_k=1, **options)
        for e, s in zip(chunk, found):
            spans[e.id] = s[0] if s else None
        bar.update(len(chunk))
    bar.close()
    return spans


def predict(reader, examples: Sequence[QAExample], **options) -> dict[str, str]:
    """id → best answer text ("" when none); options as for ``predict_spans``."""
    return {k: s.text if s else "" for k, s in predict_spans(reader, examples, **options).items()}


def evaluate_reader(reader, examples: Sequence[QAExample], *, progress: bool = True, **options):
    """(metrics with the question count, predictions) of ``reader`` on ``examples``."""
    preds = predict(reader, examples, progress=progress, **options)
    metrics = evaluate({e.id: e.answer_texts for e in examples}, preds)
    return {**metrics, "questions": len(examples)}, preds
