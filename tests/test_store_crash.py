"""Crash consistency for real: a subprocess ingesting documents is SIGKILLed mid-ingest.

After each kill the store is reopened and must hold every document whole (all its
passages, in SQL, FAISS and BM25) or not at all; a resumed ingest then completes.
Kill points: inside an SQL transaction, after a commit before the index files are
saved, between the two index files' atomic renames, and (slow) at random moments.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from koqa.ingest.chunking import Chunker, RegexTokenizer
from koqa.ingest.embedders import FakeEmbedder
from koqa.text.kiwi import KiwiAnalyzer
from koqa.pipeline.corpus import Corpus
from koqa.types import Document

N_DOCS = 24
ROOT = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent('''
    import os, signal, sys, time
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from tests.test_store_crash import documents, chunker_for_test, SlowEmbedder
    from koqa.store import files, writer as writer_mod
    from koqa.pipeline.corpus import Corpus

    point, db, index_dir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    calls = {{"n": 0}}

    def die():
        print("dying", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    if point == "mid_transaction":  # rows written, transaction not committed
        original = writer_mod.sql.write_documents
        def write(*a, **k):
            out = original(*a, **k)
            calls["n"] += 1
            if calls["n"] == 4:
                die()
            return out
        writer_mod.sql.write_documents = write
    elif point == "after_commit":  # committed, in-memory indexes updated, files not saved
        original_commit = writer_mod.CollectionWriter.commit
        def commit(self, group):
            original_commit(self, group)
            calls["n"] += 1
            if calls["n"] == 4:
                die()
        writer_mod.CollectionWriter.commit = commit
    elif point == "between_renames":  # dense.faiss replaced, bm25.npz not yet
        original_replace = files.os.replace
        def replace(src, dst):
            original_replace(src, dst)
            if str(dst).endswith("dense.faiss") and calls.get("armed"):
                die()
        files.os.replace = replace

    store = Corpus.open(f"sqlite:///{{db}}", index_dir, embedder=SlowEmbedder(), chunker=chunker_for_test())
    docs = documents()
    if point == "between_renames":
        store.ingest("default", docs[: len(docs) // 2])
        calls["armed"] = True
    print("ready", flush=True)
    report = store.ingest("default", docs, progress=lambda p: print("progress", p.documents, flush=True),
                          batch_size=2)
    print("finished", report.counts, flush=True)
''')


class SlowEmbedder(FakeEmbedder):
    """The fake embedder, slowed down so that a kill lands mid-ingest."""

    def embed_passages(self, texts):
        time.sleep(0.03)
        return super().embed_passages(texts)


def chunker_for_test(analyzer: KiwiAnalyzer | None = None) -> Chunker:
    return Chunker(RegexTokenizer(), max_tokens=24, overlap_sentences=1, analyzer=analyzer)


def documents() -> list[Document]:
    out = []
    for i in range(N_DOCS):
        sentences = [f"이 문서의 고유번호는 {1000 + i}이다.", f"문서 {i}은 조선의 역사를 다룬다.",
                     "세종대왕은 훈민정음을 창제하였다.", f"{i}번째 문단에는 {2000 + i}개의 낱말이 있다.",
                     "이순신은 거북선을 이끌었다.", f"마지막 문장의 번호는 {3000 + i}이다."]
        out.append(Document(id=f"doc-{i:03d}", title=f"문서 {i}", text=" ".join(sentences), source=f"doc-{i}.txt"))
    return out


@pytest.fixture(scope="module")
def analyzer():
    return KiwiAnalyzer()


def run_child(tmp_path: Path, point: str, kill_after_progress: int | None = None) -> str:
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(root=str(ROOT)), encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(script), point, str(tmp_path / "k.db"), str(tmp_path / "idx")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line.strip())
            if kill_after_progress is not None and line.startswith("progress") and \
                    int(line.split()[1]) >= kill_after_progress:
                time.sleep(random.Random(kill_after_progress).uniform(0, 0.05))
                os.kill(proc.pid, signal.SIGKILL)
                break
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read()
    assert "Traceback" not in err, err
    return "\n".join(lines)


def assert_whole_or_absent(tmp_path: Path, analyzer) -> int:
    """Reopen like a restarted process; returns how many documents are stored."""
    chunker = chunker_for_test(analyzer)
    store = Corpus.open(f"sqlite:///{tmp_path / 'k.db'}", tmp_path / "idx", embedder=FakeEmbedder(), chunker=chunker)
    try:
        sql_findings = [f for f in store.doctor(repair=False).findings if f.area == "sql"]
        assert sql_findings == [], sql_findings  # SQL alone is consistent before any reconcile
        store.retrieve("고유번호", k=1)  # first use reconciles the index files with SQL
        assert store.doctor(repair=False).findings == []
        by_id = {d.id: d for d in documents()}
        stored = store.list_documents("default")
        every = store.retrieve("문서", k=1000, mode="bm25")  # the title term is in every passage
        for doc in stored:
            expected = [(c.start, c.end) for c in chunker.chunk(by_id[doc.id])]
            assert doc.meta["passages"] == len(expected)
            spans = sorted((h.passage.start, h.passage.end) for h in every if h.passage.doc_id == doc.id)
            assert spans == expected, doc.id  # every passage of the document is searchable
            dense = store.retrieve(by_id[doc.id].text, k=3, mode="dense")
            assert dense[0].passage.doc_id == doc.id
        return len(stored)
    finally:
        store.close()


def resume_and_finish(tmp_path: Path, analyzer, already: int) -> None:
    store = Corpus.open(f"sqlite:///{tmp_path / 'k.db'}", tmp_path / "idx", embedder=FakeEmbedder(),
                        chunker=chunker_for_test(analyzer))
    try:
        report = store.ingest("default", documents())
        assert len(report.skipped) == already and len(report.added) + len(report.updated) == N_DOCS - already
        assert len(store.list_documents("default")) == N_DOCS
    finally:
        store.close()
    assert assert_whole_or_absent(tmp_path, analyzer) == N_DOCS


@pytest.mark.parametrize("point", ["mid_transaction", "after_commit", "between_renames"])
def test_kill_at_a_crash_point_leaves_whole_documents(tmp_path, analyzer, point):
    out = run_child(tmp_path, point)
    assert "dying" in out and "finished" not in out, out
    stored = assert_whole_or_absent(tmp_path, analyzer)
    assert 0 < stored < N_DOCS or point == "between_renames"
    resume_and_finish(tmp_path, analyzer, stored)


@pytest.mark.slow
def test_random_kills_then_resume(tmp_path, analyzer):
    stored = 0
    for round_ in range(3):
        out = run_child(tmp_path, "none", kill_after_progress=stored + 2 + round_)
        stored_now = assert_whole_or_absent(tmp_path, analyzer)
        assert stored_now >= stored, out
        stored = stored_now
    resume_and_finish(tmp_path, analyzer, stored)
