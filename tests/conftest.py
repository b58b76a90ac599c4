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
