"""The store on PostgreSQL: a throw-away server (initdb + pg_ctl, unix socket only).

Skips unless PostgreSQL's server binaries and psycopg (``pip install koqa[postgres]``)
are installed. When run as root the server runs as the ``postgres`` user.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from koqa.ingest.chunking import Chunker, RegexTokenizer
from koqa.ingest.embedders import FakeEmbedder
from koqa.pipeline.corpus import Corpus
from koqa.types import Document


def _bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for root in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (root / name).exists():
            return str(root / name)
    return None


@pytest.fixture(scope="module")
def postgres_url():
    pytest.importorskip("psycopg", reason="needs psycopg (pip install 'koqa[postgres]')")
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("needs PostgreSQL server binaries (initdb, pg_ctl)")
    as_user: list[str] = []
    if os.geteuid() == 0:
        if not shutil.which("runuser"):
            pytest.skip("running as root without runuser to start PostgreSQL as another user")
        as_user = ["runuser", "-u", "postgres", "--"]
    folder = Path(tempfile.mkdtemp(prefix="koqa-pg-"))
    folder.chmod(0o777)
    data = folder / "data"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        subprocess.run([*as_user, initdb, "-D", str(data), "-U", "koqa", "--auth=trust", "-E", "UTF8"],
                       check=True, capture_output=True, timeout=120)
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-w", "-l", str(folder / "log"), "-o",
                        f"-p {port} -k {folder} -c listen_addresses=''", "start"],
                       check=True, capture_output=True, timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"could not start a throw-away PostgreSQL server: {exc}")
    try:
        yield f"postgresql+psycopg://koqa@/postgres?host={folder}&port={port}"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_store_on_postgres(postgres_url, tmp_path):
    docs = [Document(id="a", title="세종", text="세종대왕은 훈민정음을 창제하였다. 집현전 학자들이 도왔다."),
            Document(id="b", title="이순신", text="이순신은 임진왜란 때 거북선을 이끌었다.", meta={"tags": ["해군", "조선"]})]
    chunker = Chunker(RegexTokenizer(), max_tokens=16)
    store = Corpus.open(postgres_url, tmp_path / "idx", embedder=FakeEmbedder(), chunker=chunker)
    try:
        assert store.ingest("default", docs).counts["added"] == 2
        assert store.ingest("default", docs).counts["skipped"] == 2
        assert store.retrieve("거북선", k=1)[0].passage.doc_id == "b"
        assert [h.passage.doc_id for h in store.retrieve("세종대왕 훈민정음", k=5, filters={"tags": "해군"})] == ["b"]
        store.delete_document("default", "a")
        assert store.doctor(repair=False).findings == []
    finally:
        store.close()
    # a second machine sharing the database rebuilds its own index files from SQL
    other = Corpus.open(postgres_url, tmp_path / "other-idx", embedder=FakeEmbedder(), chunker=chunker)
    try:
        assert [h.passage.doc_id for h in other.retrieve("거북선", k=5)] == ["b"]
    finally:
        other.close()
