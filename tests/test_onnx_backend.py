"""The ONNX Runtime and torch-bf16 reader backends with the tiny random ELECTRA (fast: small exports)."""

import shutil

import numpy as np
import pytest

from koqa.errors import ModelUnavailable
from koqa.reader.loading import TorchRunner, load_qa_model
from koqa.reader.onnx_backend import OnnxRunner, ensure_onnx, model_fingerprint
from koqa.reader.windows import make_windows, pad_batch
from koqa.settings import Settings

CTX = "세종대왕은 조선의 제4대 왕이다. 1443년에 훈민정음을 창제하였고, 1446년에 반포하였다."
QUESTIONS = ["훈민정음을 창제한 왕은?", "반포한 해는?"]


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return Settings.from_env({"KOQA_HOME": str(tmp_path_factory.mktemp("koqa-home"))})


@pytest.fixture(scope="module")
def batch(tiny_reader):
    """Two windows of different lengths: the shorter row is padded."""
    windows = make_windows(tiny_reader.tokenizer, QUESTIONS, [CTX, CTX[:30]])
    assert len(windows[0]) != len(windows[1])
    return pad_batch(windows, tiny_reader.pad_id)


def test_fp32_logits_match_torch(tiny_model_dir, settings, batch):
    expected = TorchRunner(load_qa_model(str(tiny_model_dir), "float32", "cpu"))(batch)
    got = OnnxRunner.load(tiny_model_dir, settings=settings)(batch)
    real = batch["attention_mask"] == 1
    for g, e in zip(got, expected):
        assert g.dtype == np.float32 and g.shape == e.shape
        np.testing.assert_allclose(g[real], e[real], atol=1e-4)


def test_int8_runs_and_stays_close(tiny_model_dir, settings, batch):
    fp32 = OnnxRunner.load(tiny_model_dir, settings=settings)(batch)
    int8 = OnnxRunner.load(tiny_model_dir, quantized=True, settings=settings)(batch)
    real = batch["attention_mask"] == 1
    for q, f in zip(int8, fp32):
        assert q.shape == f.shape and np.isfinite(q).all()
        assert np.corrcoef(q[real], f[real])[0, 1] > 0.9


def test_export_is_cached_and_keyed_on_the_weights(tiny_model_dir, settings, tmp_path):
    first = ensure_onnx(tiny_model_dir, settings=settings)
    stamp = first.stat().st_mtime_ns
    assert ensure_onnx(tiny_model_dir, settings=settings) == first and first.stat().st_mtime_ns == stamp
    assert not list(first.parent.parent.glob(".*tmp-*"))  # no temp folder left behind
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    before = model_fingerprint(copy)
    (copy / "model.safetensors").write_bytes((copy / "model.safetensors").read_bytes())  # retrained in place
    assert model_fingerprint(copy) != before


def test_reader_with_onnx_backends_answers_like_torch(tiny_model_dir, tiny_reader, settings):
    from koqa.reader import QAReader

    expected = tiny_reader.read_batch(QUESTIONS, [[CTX], [CTX]], top_k=3)
    onnx = QAReader.from_pretrained(str(tiny_model_dir), backend="onnx", settings=settings, batch_size=4)
    got = onnx.read_batch(QUESTIONS, [[CTX], [CTX]], top_k=3)
    assert [[(s.text, s.start) for s in spans] for spans in got] == [[(s.text, s.start) for s in spans] for spans in expected]
    int8 = QAReader.from_pretrained(str(tiny_model_dir), backend="onnx-int8", settings=settings)
    for sp in int8.read(QUESTIONS[0], CTX, top_k=2):
        assert CTX[sp.start : sp.end] == sp.text


def test_a_folder_without_a_model_is_a_typed_error(tmp_path, settings):
    with pytest.raises(ModelUnavailable, match="config.json"):
        OnnxRunner.load(tmp_path, settings=settings)
    with pytest.raises(ModelUnavailable, match="cannot load ONNX model"):
        OnnxRunner.load(tmp_path / "broken.onnx", settings=settings)


def test_torch_bf16_backend_loads_bf16_weights_and_answers(tiny_model_dir, settings):
    from koqa.reader import QAReader

    bf16 = QAReader.from_pretrained(str(tiny_model_dir), backend="torch-bf16", settings=settings)
    assert str(next(bf16.runner.model.parameters()).dtype) == "torch.bfloat16"
    spans = bf16.read(QUESTIONS[0], CTX, top_k=2)
    assert spans and all(CTX[sp.start : sp.end] == sp.text for sp in spans)
