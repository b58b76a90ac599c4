"""bench/open_domain.py runs end to end on a few questions (tiny random reader, fake embedder)."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
BENCH = Path(__file__).resolve().parents[1] / "bench" / "open_domain.py"


def test_open_domain_bench_writes_its_table_and_json(shared_dir, tiny_model_dir, tmp_path, capsys):
    main = runpy.run_path(str(BENCH))["main"]
    out = tmp_path / "od.json"
    main(["--reader", str(tiny_model_dir), "--embedder", "fake", "--limit", "3", "--distractors", "2",
                "--k", "5", "--read-first", "2", "--absent", "--store-dir", str(tmp_path / "store"), "--out", str(out),
                "--korquad", str(shared_dir / "data" / "korquad" / "KorQuAD_v1.0_dev.json.gz")])
    result = json.loads(out.read_text())
    assert result["questions"] == 3 and result["corpus_articles"] == 42
    assert set(result["recall"]) == {"@1", "@5"} and 0 <= result["f1"] <= 100
    assert {"p50", "p95"} <= set(result["latency_s"]) and "closed_context" in result
    absent = result["absent_gold"]
    assert absent["questions"] == 3 and absent["abstain_rate"] + absent["false_answer_rate"] == 1.0
    assert "gold absent: abstain rate" in capsys.readouterr().out
