"""bench/reader_speed.py: its report arithmetic (fast) and a short real run (slow)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import _speed_report as report_lib  # noqa: E402
from bench import _speed_workers as workers  # noqa: E402
from koqa.settings import Settings  # noqa: E402
from koqa.training.korquad import QAExample  # noqa: E402

EXAMPLES = [QAExample("a", "수도는?", "서울은 수도이다.", (("서울", 0),)), QAExample("b", "왕은?", "세종이 왕이다.", (("세종", 0),))]
CONFIG = {"device": "cpu", "dtype": "float32", "max_seq_len": 384, "doc_stride": 128, "questions": 2}


def _raw() -> dict:
    return {
        "config": CONFIG,
        "ceiling": {"windows": 4, "tokens": 1000, "runs": {"1": {"seconds": [2.0, 1.0], "padded_tokens": 1000},
                                                         "4": {"seconds": [4.0], "padded_tokens": 1250},
                                                         "16": {"seconds": [1.25], "padded_tokens": 1300}}},
        "pipeline": {"transformers": "5.2.0", "windows": 5, "tokens": 1200,
                     "runs": {"1": {"seconds": [4.0], "answers": ["서울", "세종이"]}}},
        "koqa": {"torch-fp32": {"seconds": [1.25, 2.0], "forward_seconds": [1.2, 1.9], "tokenize_seconds": 0.01,
                           "paired_ceiling_seconds": [1.2, 1.1], "windows": 4, "tokens": 1000, "batch_size": 16,
                           "answers": ["서울", "세종"]},
                 "onnx": {"error": "boom"}},
    }


def test_summary_rates_fractions_and_scores():
    report = report_lib.summarise(_raw(), EXAMPLES)
    rows = {(r["name"], r.get("batch")): r for r in report["rows"]}
    assert report["ceiling_best_tokens_per_s"] == 1000.0  # batch 1: 1000 tokens in 1 s
    assert rows[("ceiling (bare forward)", 4)]["padding_fraction"] == pytest.approx(0.2)
    pipe = rows[("pipeline (transformers 5.2.0)", 1)]
    assert pipe["questions_per_s"] == 0.5 and pipe["exact_match"] == 50.0
    koqa = rows[("koqa torch-fp32", 16)]
    assert koqa["tokens_per_s"] == 800.0 and koqa["x_pipeline"] == pytest.approx(1.6 / 0.5)
    # paired: bare / reader summed over the interleaved passes of one process
    assert koqa["paired_fraction_of_ceiling"] == pytest.approx(2.3 / 3.25)
    # times the ceiling at the reader's batch size (800 tok/s) over the best ceiling (1000 tok/s)
    assert koqa["fraction_of_ceiling"] == pytest.approx(2.3 / 3.25 * 0.8)
    assert koqa["exact_match"] == 100.0 and koqa["f1"] == 100.0
    assert koqa["forward_seconds"] == 1.2 and koqa["decode_other_seconds"] == pytest.approx(0.04)
    assert rows[("koqa onnx", None)]["error"] == "boom"


def test_a_fast_reader_is_compared_with_the_full_one_on_the_same_backend(capsys):
    raw = _raw()
    raw["koqa"]["fast torch-fp32"] = {**raw["koqa"]["torch-fp32"], "seconds": [0.625], "paired_ceiling_seconds": [0.6],
                                 "answers": ["서울", "세종이"]}
    report = report_lib.summarise(raw, EXAMPLES)
    fast = next(r for r in report["rows"] if r["name"] == "koqa fast torch-fp32")
    assert fast["x_full_reader"] == pytest.approx(2.0) and fast["f1_vs_full_reader"] == pytest.approx(-10.0)  # 세종이 vs 세종: character F1 0.8
    assert fast["fraction_of_ceiling"] == pytest.approx(0.6 / 0.625)  # its own model's ceiling, not the full one's
    report_lib.print_table(report)
    assert "koqa fast torch-fp32: 2.00x the full reader's questions/s, F1 -10.00" in capsys.readouterr().out


def test_each_backend_is_weighed_against_torch_fp32(capsys):
    raw = _raw()
    raw["koqa"]["torch-bf16"] = {**raw["koqa"]["torch-fp32"], "seconds": [0.5], "answers": ["서울", "세종이"]}
    report = report_lib.summarise(raw, EXAMPLES)
    report["meta"] = {"auto": {"backend": "torch-bf16", "reason": "auto: AMX (Xeon: amx_bf16)"}}
    bf16 = next(r for r in report["rows"] if r["name"] == "koqa torch-bf16")
    assert bf16["x_fp32"] == pytest.approx(2.5) and bf16["f1_vs_fp32"] == pytest.approx(-10.0)
    assert "x_fp32" not in next(r for r in report["rows"] if r["name"] == "koqa torch-fp32")
    report_lib.print_table(report)
    out = capsys.readouterr().out
    assert "koqa torch-bf16: 2.50x torch-fp32's questions/s, F1 -10.00 vs fp32" in out
    assert "auto picks torch-bf16 here: auto: AMX (Xeon: amx_bf16)" in out


def test_backends_to_run_resolves_auto_and_old_names():
    from bench.reader_speed import backends_to_run

    assert backends_to_run(None, "cpu") == ["torch-fp32", "torch-bf16", "onnx-int8"]
    assert backends_to_run(None, "cuda") == ["torch-fp32", "torch-bf16"]
    assert backends_to_run("torch,auto", "cpu")[0] == "torch-fp32"
    assert backends_to_run("auto", "cpu")[0] in ("torch-fp32", "torch-bf16")
    with pytest.raises(SystemExit, match="--backends"):
        backends_to_run("torch-fp8", "cpu")


def test_table_prints_every_row(capsys):
    report_lib.print_table(report_lib.summarise(_raw(), EXAMPLES))
    out = capsys.readouterr().out
    assert "koqa torch-fp32" in out and "56.6" in out and "boom" in out and "pipeline (transformers 5.2.0)" in out


def test_a_trained_checkpoint_keeps_its_head(tiny_model_dir):
    assert workers.has_qa_head(tiny_model_dir)
    assert workers.model_with_head(str(tiny_model_dir), Path("/nonexistent"), Settings()) == str(tiny_model_dir.resolve())


@pytest.mark.slow
def test_short_bench_run_writes_json(tiny_model_dir, shared_dir, tmp_path):
    cmd = [sys.executable, str(REPO / "bench" / "reader_speed.py"), "--reader", str(tiny_model_dir), "--limit", "3",
           "--batch-sizes", "2", "--repeats", "1", "--backends", "torch", "--skip-pipeline", "--out", str(tmp_path)]
    env = {"KOQA_HOME": str(tmp_path / "home"), "KOQA_SHARED": str(shared_dir), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    [out] = tmp_path.glob("reader_speed-cpu-*.json")
    report = json.loads(out.read_text())
    names = {r["name"] for r in report["rows"]}
    assert {"ceiling (bare forward)", "koqa torch-fp32"} <= names
    torch_row = next(r for r in report["rows"] if r["name"] == "koqa torch-fp32")
    assert "error" not in torch_row, torch_row
    assert torch_row["windows_per_s"] > 0 and 0 <= torch_row["f1"] <= 100
