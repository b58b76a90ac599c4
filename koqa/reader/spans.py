"""Span decoding: a pure function on logit arrays.

For every window, the score of the span (s, e) is ``start[s] + end[e]`` (the outer
sum of start and end logits), restricted to ``s <= e < s + max_answer_len`` and to
tokens the mask allows (context tokens only: question, special and padding tokens
are masked). Only that band of the outer sum is built, so the cost is
``windows × tokens × max_answer_len``, not ``tokens²``.

>>> import numpy as np
>>> start = np.array([[0.0, 5.0, 1.0, 0.0]]); end = np.array([[0.0, 1.0, 4.0, 0.0]])
>>> mask = np.array([[False, True, True, True]])
>>> [(w, s, e, float(sc)) for w, s, e, sc in top_spans(start, end, mask, max_answer_len=3, top_k=2)]
[(0, 1, 2, 9.0), (0, 1, 1, 6.0)]
"""

from __future__ import annotations

import numpy as np

NEG = np.float32(-1e9)
# in tokens. 15 (the transformers pipeline's default) covers 99.8 % of KorQuAD train-split gold answers
# (7 of 4,055 are longer); a looser 30 let the reader pick over-long spans: on eval-split 15 scores
# EM +0.41 / F1 +0.12 for reader-small and +0.76 / +0.57 for reader-fast over 30
MAX_ANSWER_LEN = 15


def band_scores(start: np.ndarray, end: np.ndarray, mask: np.ndarray, max_answer_len: int) -> np.ndarray:
    """Scores ``(W, T, L)``: entry ``[w, s, d]`` is span ``(s, s + d)`` of window ``w``.

    Invalid spans (masked start or end, end beyond the window) get ``NEG``.
    """
    w, t = start.shape
    length = max(1, min(max_answer_len, t))
    start = np.where(mask, start, NEG).astype(np.float32, copy=False)
    end = np.where(mask, end, NEG).astype(np.float32, copy=False)
    padded = np.concatenate([end, np.full((w, length - 1), NEG, np.float32)], axis=1)
    # shifted[w, s, d] = end[w, s + d] via a strided view (no copy)
    shifted = np.lib.stride_tricks.sliding_window_view(padded, length, axis=1)[:, :t, :]
    scores = start[:, :, None] + shifted
    # a masked token anywhere makes the sum <= NEG / 2; normalise those to NEG exactly
    return np.where(scores <= NEG / 2, NEG, scores)


def top_spans(
    start: np.ndarray,
    end: np.ndarray,
    mask: np.ndarray,
    max_answer_len: int = MAX_ANSWER_LEN,
    top_k: int = 1,
) -> list[tuple[int, int, int, float]]:
    """The ``top_k`` best ``(window, start_token, end_token, score)`` over all windows.

    Ties are broken by position (earlier window, earlier start, shorter span) so the
    result is deterministic. Returns fewer than ``top_k`` when fewer spans are valid.
    """
    if start.ndim != 2 or start.shape != end.shape or start.shape != mask.shape:
        raise ValueError(f"start/end/mask must share a (windows, tokens) shape, got {start.shape}, {end.shape}, {mask.shape}")
    if start.size == 0 or top_k < 1:
        return []
    scores = band_scores(start, end, mask, max_answer_len)
    flat = scores.reshape(-1)
    k = min(top_k, flat.size)
    cand = np.argpartition(-flat, k - 1)[:k] if k < flat.size else np.arange(flat.size)
    # stable sort on -score keeps the flat (window, start, length) order among ties
    order = cand[np.lexsort((cand, -flat[cand]))]
    t, length = scores.shape[1], scores.shape[2]
    out = []
    for idx in order:
        if flat[idx] <= NEG:
            break
        w, rest = divmod(int(idx), t * length)
        s, d = divmod(rest, length)
        out.append((w, s, s + d, float(flat[idx])))
    return out


def joint_log_softmax(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Log-softmax over every allowed token of every window together.

    This is what makes probabilities comparable across windows and contexts of one
    question: a window whose best logit is low gets low probabilities, instead of
    each window's softmax summing to one on its own.
    """
    allowed = np.where(mask, logits, -np.inf)
    top = allowed.max() if mask.any() else 0.0
    lse = top + np.log(np.exp(allowed - top).sum()) if mask.any() else 0.0
    return np.where(mask, logits - lse, -np.inf)
