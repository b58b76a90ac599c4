"""Crash consistency in pgvector mode: an ingesting subprocess is SIGKILLed while it COPYs
pgvector rows (inside the transaction) and after a commit; every document must then be whole
(its passages and their pgvector rows) or absent, ``doctor`` finds nothing, and a resumed
ingest completes. Reuses the embedded mode's crash-test documents."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import text

from koqa.settings import Settings
from tests.test_store_crash import SlowEmbedder, chunker_for_test, documents

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[1]
CHILD = textwrap.dedent('''
    import os, signal, sys
    sys.path.insert(0, {root!r})
    from tests.test_store_crash import documents, chunker_for_test, SlowEmbedder
    from koqa.store import pgvector
    from koqa.pipeline.pgcorpus import PgCorpus

    point, url, home = sys.argv[1:4]
    calls = {{"n": 0}}
    original = pgvector.copy_rows
    def copy_rows(s, rows):
        n = original(s, rows)
        calls["n"] += 1
        if point == "mid_copy" and calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGKILL)  # rows sent, transaction not committed
        return n
    pgvector.copy_rows = copy_rows
    original_commit = pgvector.PgWriter.commit
    def commit(self, group):
        original_commit(self, group)
        if point == "after_commit" and calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGKILL)
    pgvector.PgWriter.commit = commit
    store = PgCorpus.open(url, home, embedder=SlowEmbedder(), chunker=chunker_for_test())
    store.ingest("default", documents(), batch_size=2)
    print("finished", flush=True)
''')


@pytest.mark.parametrize("point", ["mid_copy", "after_commit"])
def test_kill_9_during_ingest_leaves_whole_documents(pgvector_url, tmp_path, point):
    from koqa.pipeline.parts import open_corpus

    child = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT)), point, pgvector_url,
                            str(tmp_path / "idx")], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert child.returncode == -9, child.stderr[-2000:]
    settings = Settings(home=tmp_path, database_url=pgvector_url, vector_store="pgvector")
    store = open_corpus(settings, embedder=SlowEmbedder(), chunker=chunker_for_test())
    try:
        with store.session() as s:
            rows = s.execute(text("SELECT d.doc_id, d.n_passages, count(DISTINCT p.id) AS p, count(v.passage_id) AS v "
                                  "FROM documents d LEFT JOIN passages p ON p.document_id = d.id LEFT JOIN "
                                  "passage_vectors v ON v.passage_id = p.id GROUP BY d.doc_id, d.n_passages")).all()
        assert 0 < len(rows) < len(documents())
        assert all(r.n_passages == r.p == r.v for r in rows), rows
        assert store.doctor(repair=False).findings == []
        report = store.ingest("default", documents(), batch_size=2)
        assert report.counts["skipped"] == len(rows) and report.counts["added"] == len(documents()) - len(rows)
        assert store.retrieve("고유번호는 1005", k=1, mode="bm25")[0].passage.doc_id == "doc-005"
    finally:
        store.close()
