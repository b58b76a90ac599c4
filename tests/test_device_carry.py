"""bench/device_carry.py: trained readers come back from the GPU machine as fp16 shards and merge exactly."""

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import device_carry  # noqa: E402
from koqa.models.delta import load_weights  # noqa: E402


def _tiny(tmp_path: Path):
    import torch
    from transformers import BertConfig, BertForQuestionAnswering, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    base = BertModel(config)
    base.save_pretrained(tmp_path / "base")
    tuned = BertForQuestionAnswering(config)
    tuned.bert.embeddings.load_state_dict(base.embeddings.state_dict())  # frozen in training
    tuned.config.koqa_layers_from = [0, 1]
    tuned.save_pretrained(tmp_path / "tuned")
    return tmp_path / "base", tmp_path / "tuned"


def test_export_then_merge_rebuilds_the_trained_model(tmp_path, monkeypatch):
    base, tuned = _tiny(tmp_path)
    monkeypatch.setattr(device_carry, "SHARD_BYTES", 20_000)  # force several shards
    shards = device_carry.export(tuned, "small", tmp_path / "out")
    assert len(shards) > 1
    for path in shards:
        from safetensors.numpy import load_file

        assert not any(".embeddings." in k for k in load_file(str(path)))  # the base supplies those
    merged = device_carry.merge(tmp_path / "out", "small", base, tmp_path / "merged")
    want, got = load_weights(tuned), load_weights(merged)
    assert set(want) == set(got)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], atol=2e-3, err_msg=name)  # fp16 in transit
    import json

    assert json.loads((merged / "config.json").read_text())["koqa_layers_from"] == [0, 1]


def test_merge_without_shards_names_the_folder(tmp_path):
    with pytest.raises(SystemExit, match="no fast-"):
        device_carry.merge(tmp_path, "fast", tmp_path, tmp_path / "merged")


def test_replayed_retrieval_answers_as_recorded(tmp_path):
    import gzip
    import json

    from bench import replay_ask
    from koqa.pipeline import QAPipeline
    from koqa.pipeline.fakes import FakeReader

    passage = {"id": "d:0", "doc_id": "d", "index": 0, "start": 0, "end": 9, "text": "서울은 수도이다.", "title": "", "source": ""}
    record = {"id": "q1", "question": "수도는? ", "answers": ["서울"], "retrieve_s": 0.01,
              "hits": [{"passage": passage, "score": 0.5, "scores": {"dense": 0.5}, "ranks": {"dense": 1}}]}
    with gzip.open(tmp_path / "hits.json.gz", "wt", encoding="utf-8") as f:
        json.dump({"k": 20, "questions": [record]}, f)
    _, hits = replay_ask.load_hits(tmp_path / "hits.json.gz")
    pipe = QAPipeline(replay_ask.ReplayRetriever(hits), FakeReader(), depth=None)
    result = pipe.run("수도는? ", replay_ask.COLLECTION, 20)
    assert [h.passage.id for h in result.hits] == ["d:0"]
