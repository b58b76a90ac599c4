"""The span decoder on hand-written logits."""

import numpy as np
import pytest

from koqa.reader.spans import NEG, band_scores, joint_log_softmax, top_spans


def arr(*rows):
    return np.array(rows, dtype=np.float32)


def test_best_span_is_outer_sum_maximum():
    start, end = arr([0, 1, 5, 0, 0]), arr([0, 0, 1, 4, 0])
    mask = np.ones_like(start, bool)
    assert top_spans(start, end, mask, 10, 1) == [(0, 2, 3, 9.0)]


def test_end_before_start_is_never_chosen():
    # the best end (index 1) lies before the best start (index 3)
    start, end = arr([0, 0, 0, 5, 0]), arr([0, 9, 0, 0, 1])
    got = top_spans(start, end, np.ones_like(start, bool), 10, 1)
    assert got == [(0, 0, 1, 9.0)]  # 0 + 9 beats 5 + 1; ties (1, 1) lose to the earlier start
    w, s, e, _ = got[0]
    assert e >= s


def test_max_answer_len_limits_span_length():
    start, end = arr([5, 0, 0, 0, 0]), arr([0, 0, 0, 0, 5])
    mask = np.ones_like(start, bool)
    assert top_spans(start, end, mask, 5, 1)[0][:3] == (0, 0, 4)
    best = top_spans(start, end, mask, 4, 1)[0]
    assert best[2] - best[1] + 1 <= 4


def test_masked_tokens_are_excluded():
    start, end = arr([9, 1, 0]), arr([9, 0, 1])
    mask = np.array([[False, True, True]])  # token 0 is the question / [CLS]
    assert top_spans(start, end, mask, 5, 1) == [(0, 1, 2, 2.0)]


def test_ties_break_by_position_then_shorter_span():
    start, end = arr([1, 1, 0]), arr([1, 1, 0])
    mask = np.ones_like(start, bool)
    got = top_spans(start, end, mask, 5, 3)
    assert [g[1:3] for g in got] == [(0, 0), (0, 1), (1, 1)]


def test_top_k_across_windows_are_ordered_and_comparable():
    start = arr([0, 2, 0], [0, 7, 0])
    end = arr([0, 2, 0], [0, 1, 0])
    mask = np.array([[False, True, False], [False, True, False]])
    got = top_spans(start, end, mask, 3, 2)
    assert [(w, s, e) for w, s, e, _ in got] == [(1, 1, 1), (0, 1, 1)]
    assert got[0][3] == 8.0 and got[1][3] == 4.0


def test_fewer_valid_spans_than_k():
    start, end = arr([0, 1]), arr([0, 1])
    mask = np.array([[False, True]])
    assert top_spans(start, end, mask, 5, 10) == [(0, 1, 1, 2.0)]


def test_band_scores_matches_full_outer_sum():
    rng = np.random.default_rng(0)
    start, end = rng.normal(size=(2, 12)).astype(np.float32), rng.normal(size=(2, 12)).astype(np.float32)
    mask = rng.random((2, 12)) > 0.3
    band = band_scores(start, end, mask, 4)
    for w in range(2):
        for s in range(12):
            for d in range(4):
                e = s + d
                ok = e < 12 and mask[w, s] and mask[w, e]
                expected = start[w, s] + end[w, e] if ok else NEG
                assert band[w, s, d] == pytest.approx(expected)


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="shape"):
        top_spans(arr([0, 1]), arr([0, 1, 2]), np.ones((1, 2), bool))


def test_joint_softmax_spans_windows():
    logits = arr([0, 1], [0, 1])
    mask = np.array([[False, True], [False, True]])
    p = np.exp(joint_log_softmax(logits, mask))
    assert p[0, 1] == pytest.approx(0.5) and p[1, 1] == pytest.approx(0.5)
    assert p[0, 0] == 0.0
