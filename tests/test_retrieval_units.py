"""Pure retrieval parts: reciprocal rank fusion, BM25 scoring and persistence, FAISS index kinds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from koqa.store.bm25 import BM25Index
from koqa.store.dense import DenseIndex
from koqa.retriever.fusion import reciprocal_rank_fusion


def test_rrf_on_hand_made_rankings():
    fused = reciprocal_rank_fusion({"dense": ["a", "b", "c"], "bm25": ["c", "a", "d"]}, k=60)
    scores = {item: s for item, s, _ in fused}
    assert scores["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert scores["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert scores["b"] == pytest.approx(1 / 62) and scores["d"] == pytest.approx(1 / 63)
    assert [item for item, _, _ in fused] == ["a", "c", "b", "d"]
    assert dict((item, ranks) for item, _, ranks in fused)["c"] == {"dense": 3, "bm25": 1}


def test_rrf_weights():
    fused = reciprocal_rank_fusion({"dense": ["a", "b"], "bm25": ["b", "a"]}, k=60, weights={"bm25": 2.0})
    assert [i for i, _, _ in fused] == ["b", "a"]
    assert fused[0][1] == pytest.approx(1 / 62 + 2 / 61)


def test_rrf_ties_limit_duplicates_and_empty():
    # equal scores: the item with the better single rank first, then first appearance
    fused = reciprocal_rank_fusion({"x": ["a", "b"], "y": ["b", "a"]}, k=0)
    assert [i for i, _, _ in fused] == ["a", "b"] and fused[0][1] == pytest.approx(1.5)
    assert [i for i, _, _ in reciprocal_rank_fusion({"x": ["a", "a", "b"]}, k=1)] == ["a", "b"]
    assert reciprocal_rank_fusion({"x": ["a", "a", "b"]}, k=1)[1][1] == pytest.approx(1 / 4)
    assert len(reciprocal_rank_fusion({"x": list("abcdef")}, limit=3)) == 3
    assert reciprocal_rank_fusion({}) == [] and reciprocal_rank_fusion({"x": []}) == []
    with pytest.raises(ValueError):
        reciprocal_rank_fusion({"x": ["a"]}, k=-1)


def _bm25(tf, dl, avgdl, df, n, k1=1.2, b=0.75):
    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
    return idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))


def test_bm25_scores_match_the_formula():
    idx = BM25Index()
    docs = [["세종", "훈민정음", "세종"], ["이순신", "거북선"], ["세종", "집현전", "학자", "학자"]]
    idx.add([1, 2, 3], docs)
    avgdl = sum(map(len, docs)) / 3
    scores = dict(idx.search(["세종", "학자"], k=3))
    assert scores[1] == pytest.approx(_bm25(2, 3, avgdl, 2, 3), rel=1e-5)
    assert scores[3] == pytest.approx(_bm25(1, 4, avgdl, 2, 3) + _bm25(2, 4, avgdl, 1, 3), rel=1e-5)
    assert 2 not in scores  # no query term: not returned
    assert idx.search(["없는말"], k=3) == [] and idx.search([], k=3) == []


def test_bm25_remove_add_and_persist(tmp_path):
    idx = BM25Index()
    idx.add([1, 2, 3], [["가"], ["나", "가"], ["다"]])
    idx.remove([1, 99])
    idx.add([4], [["가", "가"]])
    assert sorted(idx.ids.tolist()) == [2, 3, 4]
    assert [i for i, _ in idx.search(["가"], 5)] == [4, 2]
    assert idx.length(4) == 2 and idx.length(1) is None
    idx.save(tmp_path / "b.npz")
    again = BM25Index.load(tmp_path / "b.npz")
    assert again.search(["가"], 5) == idx.search(["가"], 5)
    again.add([5], [["다", "라"]])
    assert [i for i, _ in again.search(["라"], 5)] == [5]
    assert list(tmp_path.iterdir()) == [tmp_path / "b.npz"]  # no temp files left


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_dense_kinds_add_remove_search_persist(kind, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    idx = DenseIndex(16, kind)
    idx.add(list(range(1000, 1300)), x)
    idx.remove([1000, 1001, 5])
    assert len(idx) == 298 and 1000 not in set(idx.ids.tolist())
    assert idx.search(x[7], 1)[0][0] == 1007
    assert np.allclose(idx.vectors([1010])[0], x[10])
    idx.save(tmp_path / "d.faiss")
    again = DenseIndex.load(tmp_path / "d.faiss", 16, kind)
    assert sorted(again.ids.tolist()) == sorted(idx.ids.tolist())
    again.add([2000], x[:1])  # a copy of vector 1000's
    assert again.search(x[0], 1)[0] == (2000, pytest.approx(1.0, abs=1e-5))
    assert DenseIndex(16, kind).search(x[0], 3) == []


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
@pytest.mark.parametrize("exact_max", [0, 20_000])  # 0: the FAISS selector path even for a small allowed set
def test_dense_search_only_within_allowed_ids(kind, exact_max, monkeypatch):
    import koqa.store.dense as dense

    monkeypatch.setattr(dense, "EXACT_FILTER_MAX", exact_max)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((300, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    idx = DenseIndex(16, kind)
    idx.add(list(range(300)), x)
    allowed = np.array([3, 50, 299, 4000])  # 4000 is not in the index
    want = sorted(((i, float(x[i] @ x[0])) for i in (3, 50, 299)), key=lambda p: -p[1])
    got = idx.search(x[0], 10, allowed)
    assert [i for i, _ in got] == [i for i, _ in want] and np.allclose([s for _, s in got], [s for _, s in want], atol=1e-5)
    assert idx.search(x[0], 1, allowed) == got[:1] and idx.search(x[0], 5, np.array([], np.int64)) == []
    idx.remove([50])  # the ids kept for filtering follow every change of the index
    idx.add([4000], x[:1])
    assert [i for i, _ in idx.search(x[0], 10, allowed)] == [4000, *(i for i, _ in want if i != 50)]


def test_filters_are_checked_and_matched():
    from koqa.errors import InvalidInput
    from koqa.store.filters import check_filters, matches, unknown_keys

    f = check_filters({"source": ["a.pdf", "b.pdf"], "year": 2024, "tags": "계약"})
    doc = {"doc_id": "d", "source": "b.pdf", "meta": {"year": 2024, "tags": ["계약", "인사"]}}
    assert matches(f, doc) and not matches(f, {**doc, "source": "c.pdf"}) and not matches(f, {**doc, "meta": {}})
    assert check_filters(None) is None and check_filters({}) is None
    assert unknown_keys(f, [{"year": 1}, {"tags": []}]) == [] and unknown_keys(f, [{"year": 1}]) == ["tags"]
    assert unknown_keys(f, []) == []  # an empty collection: nothing to call a typo yet
    flags = check_filters({"flag": True, "n": 1})
    assert matches(flags, {"meta": {"flag": True, "n": 1.0}}) and not matches(flags, {"meta": {"flag": 1, "n": True}})
    for bad, field in (("source=a", "filters"), ({"": "a"}, "filters"), ({"k": []}, "filters.k"),
                       ({"k": {"$gt": 1}}, "filters.k"), ({"k": [None]}, "filters.k")):
        with pytest.raises(InvalidInput) as exc:
            check_filters(bad)
        assert exc.value.field == field


def test_dense_index_rejects_unknown_kind_and_wrong_dim(tmp_path):
    from koqa.errors import InvalidInput

    with pytest.raises(InvalidInput):
        DenseIndex(8, "annoy")
    idx = DenseIndex(8)
    idx.add([1], np.ones((1, 8), np.float32))
    idx.save(tmp_path / "d.faiss")
    with pytest.raises(ValueError):
        DenseIndex.load(tmp_path / "d.faiss", 16)
