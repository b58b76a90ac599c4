"""Training features: the reader's own windows with start/end token labels.

A window that does not contain the whole first gold answer is labelled with token 0
(the [CLS]/<s> token), as in SQuAD v1 fine-tuning; those windows teach the model to
score low where the answer is not, which keeps scores comparable across windows.
:func:`add_distractors` adds whole contexts without the answer (another paragraph of
the same article, as a retriever would return), labelled the same way, so that the
reader learns to tell a retrieved passage that answers from one that only looks close.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
from tqdm import tqdm

from koqa.training.korquad import QAExample
from koqa.reader.windows import Window, make_windows


@dataclass(frozen=True)
class Feature:
    window: Window
    start: int
    end: int
    example_id: str = ""


def label_window(w: Window, answer_start: int, answer_end: int) -> tuple[int, int]:
    """Token (start, end) of the char span [answer_start, answer_end) in ``w``, or (0, 0).

    >>> import numpy as np
    >>> w = Window(0, np.arange(5), None, np.array([[0, 0], [0, 2], [2, 5], [5, 8], [0, 0]]),
    ...            np.array([False, True, True, True, False]))
    >>> label_window(w, 3, 7), label_window(w, 6, 12)
    ((2, 3), (0, 0))
    """
    ctx = np.flatnonzero(w.is_context)
    if len(ctx) == 0:
        return 0, 0
    offs = w.offsets[ctx]
    if offs[0, 0] > answer_start or offs[-1, 1] < answer_end:
        return 0, 0
    s = ctx[np.flatnonzero(offs[:, 1] > answer_start)[0]]
    e = ctx[np.flatnonzero(offs[:, 0] < answer_end)[-1]]
    return (int(s), int(e)) if e >= s else (0, 0)


def build_features(tokenizer, examples: Sequence[QAExample], *, max_seq_len: int, doc_stride: int,
                   max_question_len: int = 96, chunk: int = 512, progress: bool = True) -> list[Feature]:
    """Window every example (first gold answer) in chunks; over-long questions are skipped."""
    feats: list[Feature] = []
    for i in tqdm(range(0, len(examples), chunk), desc="features", disable=not progress):
        part = [e for e in examples[i : i + chunk] if _question_fits(tokenizer, e.question, max_question_len)]
        windows = make_windows(tokenizer, [e.question for e in part], [e.context for e in part],
                               max_seq_len=max_seq_len, doc_stride=doc_stride, max_question_len=max_question_len)
        for w in windows:
            ex = part[w.pair]
            if not ex.answers:  # a distractor context: "no answer here"
                feats.append(Feature(w, 0, 0, ex.id))
                continue
            text, start = ex.answers[0]
            feats.append(Feature(w, *label_window(w, start, start + len(text)), ex.id))
    return feats


def add_distractors(examples: Sequence[QAExample], ratio: float, seed: int = 0) -> list[QAExample]:
    """``examples`` plus, for a seeded ``ratio`` of them, the question on a context without its answer.

    The distractor is another paragraph of the same article (by title) that contains
    none of the gold answer texts, else any such paragraph of the data.

    >>> ex = [QAExample("1", "수도는?", "서울은 수도이다.", (("서울", 0),), "한국"),
    ...       QAExample("2", "강은?", "한강이 흐른다.", (("한강", 0),), "한국")]
    >>> [(e.id, e.context, e.answers) for e in add_distractors(ex, 1.0)[2:]]
    [('1-neg', '한강이 흐른다.', ()), ('2-neg', '서울은 수도이다.', ())]
    """
    if ratio <= 0:
        return list(examples)
    rng = random.Random(seed)
    by_title: dict[str, list[str]] = {}
    for e in examples:
        ctxs = by_title.setdefault(e.title, [])
        if not ctxs or ctxs[-1] != e.context:
            ctxs.append(e.context)
    pool = [c for ctxs in by_title.values() for c in ctxs]
    chosen = [e for e in examples if rng.random() < ratio]
    out = list(examples)
    for e in chosen:
        def answerless(ctxs: Sequence[str]) -> list[str]:
            return [c for c in ctxs if c != e.context and not any(a in c for a in e.answer_texts)]

        ok = answerless(by_title[e.title]) or answerless(rng.sample(pool, min(20, len(pool))))
        if ok:
            out.append(replace(e, id=f"{e.id}-neg", context=rng.choice(ok), answers=()))
    return out


def _question_fits(tokenizer, question: str, limit: int) -> bool:
    return bool(question.strip()) and len(tokenizer(question, add_special_tokens=False)["input_ids"]) <= limit
