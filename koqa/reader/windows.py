"""Question + context → model windows with character offsets (shared by inference and training).

A context longer than one window is cut into windows of ``max_seq_len`` tokens that
overlap by ``doc_stride`` tokens (the Hugging Face meaning of ``stride``; capped at
half the room the question leaves). Each window keeps, for every token, its character offsets in the context (taken from the
fast tokenizer's ``offset_mapping``) and whether it is a context token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from koqa.errors import InvalidInput


@dataclass(frozen=True)
class Window:
    """One model input. ``pair`` indexes the (question, context) pair it came from."""

    pair: int
    input_ids: np.ndarray  # (n,) int64
    token_type_ids: np.ndarray | None  # (n,) int64, when the model uses them
    offsets: np.ndarray  # (n, 2) int64 char offsets into the context (0, 0 elsewhere)
    is_context: np.ndarray  # (n,) bool

    def __len__(self) -> int:
        return len(self.input_ids)


def _check_sizes(max_seq_len: int, doc_stride: int) -> None:
    if not 32 <= max_seq_len <= 4096:
        raise InvalidInput("max_seq_len", max_seq_len, "must be between 32 and 4096")
    if not 0 <= doc_stride <= max_seq_len // 2:
        raise InvalidInput("doc_stride", doc_stride, f"must be >= 0 and <= max_seq_len/2 ({max_seq_len // 2})")


def make_windows(
    tokenizer,
    questions: Sequence[str],
    contexts: Sequence[str],
    *,
    max_seq_len: int = 384,
    doc_stride: int = 128,
    max_question_len: int = 96,
) -> list[Window]:
    """Tokenise every (question, context) pair in one fast-tokenizer call.

    Questions longer than ``max_question_len`` tokens are rejected with
    :class:`InvalidInput` rather than silently cut.
    """
    _check_sizes(max_seq_len, doc_stride)
    if not questions:
        return []
    q_lens = _question_lengths(tokenizer, questions, min(max_question_len, max_seq_len // 2))
    # the overlap must stay below the room the longest question leaves for context
    doc_stride = min(doc_stride, max(0, (max_seq_len - max(q_lens) - 4) // 2))
    right = tokenizer.padding_side == "right"
    enc = tokenizer(
        list(questions) if right else list(contexts),
        list(contexts) if right else list(questions),
        truncation="only_second" if right else "only_first",
        max_length=max_seq_len,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        return_token_type_ids="token_type_ids" in tokenizer.model_input_names,
        padding=False,
    )
    ctx_seq = 1 if right else 0
    windows = []
    for i, ids in enumerate(enc["input_ids"]):
        seq_ids = np.array([-1 if s is None else s for s in enc.sequence_ids(i)])
        is_ctx = seq_ids == ctx_seq
        offsets = np.asarray(enc["offset_mapping"][i], dtype=np.int64).reshape(-1, 2)
        offsets[~is_ctx] = 0
        tt = enc.get("token_type_ids")
        windows.append(
            Window(
                pair=int(enc["overflow_to_sample_mapping"][i]),
                input_ids=np.asarray(ids, dtype=np.int64),
                token_type_ids=None if tt is None else np.asarray(tt[i], dtype=np.int64),
                offsets=offsets,
                is_context=is_ctx,
            )
        )
    return _drop_redundant(windows)


def _question_lengths(tokenizer, questions: Sequence[str], limit: int) -> list[int]:
    lengths = [len(ids) for ids in tokenizer(list(questions), add_special_tokens=False)["input_ids"]]
    for q, n in zip(questions, lengths):
        if n > limit:
            raise InvalidInput("question", q, f"is {n} tokens long; at most {limit} are allowed")
    return lengths


def _drop_redundant(windows: list[Window]) -> list[Window]:
    """Drop a window whose context tokens are all inside the previous window of the same pair."""
    kept: list[Window] = []
    for w in windows:
        if kept and kept[-1].pair == w.pair and w.is_context.any():
            prev_end = kept[-1].offsets[kept[-1].is_context][:, 1].max()
            if w.offsets[w.is_context][:, 1].max() <= prev_end:
                continue
        kept.append(w)
    return kept


def batches_by_length(windows: Sequence[Window], batch_size: int) -> list[list[int]]:
    """Indices of ``windows`` in fixed-size batches of similar length (longest first).

    Sorting by length means each batch pads only up to its own longest window.
    """
    order = sorted(range(len(windows)), key=lambda i: -len(windows[i]))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def pad_batch(windows: Sequence[Window], pad_id: int) -> dict[str, np.ndarray]:
    """Right-pad a batch to its longest window; returns int64 arrays for the model."""
    n = max(len(w) for w in windows)
    ids = np.full((len(windows), n), pad_id, dtype=np.int64)
    att = np.zeros((len(windows), n), dtype=np.int64)
    out = {"input_ids": ids, "attention_mask": att}
    if windows[0].token_type_ids is not None:
        out["token_type_ids"] = np.zeros((len(windows), n), dtype=np.int64)
    for r, w in enumerate(windows):
        ids[r, : len(w)] = w.input_ids
        att[r, : len(w)] = 1
        if w.token_type_ids is not None:
            out["token_type_ids"][r, : len(w)] = w.token_type_ids
    return out
