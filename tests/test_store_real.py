"""The store with the real me5-small-ko embedder and tokenizer on a few KorQuAD articles (slow)."""

from __future__ import annotations

import gzip
import json

import pytest

from koqa.ingest.chunking import Chunker
from koqa.ingest.embedders import E5_PREFIXES, SentenceTransformerEmbedder
from koqa.pipeline.corpus import Corpus
from koqa.types import Document

ARTICLES = 2


@pytest.fixture(scope="module")
def korquad(shared_dir):
    data = json.load(gzip.open(shared_dir / "data" / "korquad" / "KorQuAD_v1.0_dev.json.gz"))["data"][:ARTICLES]
    docs, questions = [], []
    for a, art in enumerate(data):
        offset, parts = 0, []
        for para in art["paragraphs"]:
            for qa in para["qas"]:
                s = offset + qa["answers"][0]["answer_start"]
                questions.append((qa["question"], f"k{a}", s, s + len(qa["answers"][0]["text"])))
            parts.append(para["context"])
            offset += len(para["context"]) + 2
        docs.append(Document(id=f"k{a}", title=art["title"], text="\n\n".join(parts)))
    return docs, questions


@pytest.mark.slow
def test_real_embedder_retrieves_answer_passages(shared_dir, korquad, tmp_path):
    docs, questions = korquad
    emb = SentenceTransformerEmbedder.load(str(shared_dir / "models" / "me5-small-ko"))
    emb.query_prefix, emb.passage_prefix = E5_PREFIXES
    chunker = Chunker(emb.tokenizer)
    assert chunker.settings["max_tokens"] == 320
    with Corpus.open(f"sqlite:///{tmp_path}/k.db", tmp_path / "idx", embedder=emb, chunker=chunker) as store:
        report = store.ingest("default", docs)
        assert report.counts["added"] == ARTICLES
        found = {"dense": 0, "bm25": 0, "hybrid": 0}
        vectors = emb.embed_queries([q for q, *_ in questions])  # one batch: much faster than one by one
        for (question, doc_id, start, end), vector in zip(questions, vectors):
            for mode in found:
                hits = store.retrieve(question, k=5, mode=mode, query_vector=vector)
                found[mode] += any(h.passage.doc_id == doc_id and h.passage.start <= start and end <= h.passage.end
                                   for h in hits)
        recall = {m: n / len(questions) for m, n in found.items()}
        assert store.retrieve(questions[0][0], k=1)[0].passage.doc_id == questions[0][1]  # the embed-here path
        assert recall["hybrid"] >= 0.9, recall
        assert recall["dense"] >= 0.75 and recall["bm25"] >= 0.8, recall
