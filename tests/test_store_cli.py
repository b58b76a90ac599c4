"""The store's CLI commands, run in-process with the fake embedder and a temporary KOQA_HOME."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from koqa.cli import app


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("KOQA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KOQA_EMBEDDER", "fake")
    monkeypatch.delenv("KOQA_DATABASE_URL", raising=False)
    return tmp_path


@pytest.fixture
def corpus(tmp_path) -> Path:
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "sejong.txt").write_text("세종대왕은 1443년에 훈민정음을 창제하였다. 집현전 학자들이 도왔다.", encoding="utf-8")
    (docs / "sub" / "yi.md").write_text("# 이순신\n\n이순신은 임진왜란 때 거북선을 이끌었다.", encoding="utf-8")
    (docs / "blob.txt").write_bytes(b"\x00\x01\x02 not text")
    return docs


def run(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.output
    return result


def test_ingest_search_list_delete_doctor(env, corpus):
    r = run("ingest", str(corpus), str(env / "missing.txt"), "-c", "hist", "--json")
    assert r.exit_code == 1, r.output  # failures make the exit status non-zero ...
    report = json.loads(r.stdout[r.stdout.index("{"):])
    assert report["added"] and len(report["added"]) == 2  # ... but the good files are ingested
    reasons = {Path(f["source"]).name: f["reason"] for f in report["failed"]}
    assert "binary" in reasons["blob.txt"] and "no such file" in reasons["missing.txt"]

    r = run("search", "거북선을 이끈 사람", "-c", "hist", "-k", "2", "--json")
    assert r.exit_code == 0, r.output
    hits = json.loads(r.stdout)
    assert hits[0]["title"] == "이순신" and hits[0]["source"].endswith("yi.md")
    assert {"start", "end", "scores", "passage_id", "text"} <= set(hits[0]) and "hybrid" in hits[0]["scores"]

    r = run("search", "훈민정음", "-c", "hist", "--mode", "bm25")
    assert r.exit_code == 0 and "sejong.txt" in r.stdout and "chars 0–" in r.stdout

    r = run("documents", "list", "-c", "hist", "--json")
    listed = json.loads(r.stdout)
    assert len(listed) == 2
    yi = next(d["id"] for d in listed if d["title"] == "이순신")
    assert run("documents", "delete", yi, "-c", "hist").exit_code == 0
    assert len(json.loads(run("documents", "list", "-c", "hist", "--json").stdout)) == 1

    r = run("ingest", str(corpus / "sejong.txt"), "-c", "hist")
    assert r.exit_code == 0 and "1 skipped" in r.stdout
    r = run("doctor")
    assert r.exit_code == 0 and "agree" in r.stdout
    assert "reader backend: torch-" in r.stdout and "auto: " in r.stdout  # which backend and why
    assert "hist" in run("collections", "list").stdout


def test_unknown_collection_and_bad_options_are_clear_errors(env):
    for args in (("search", "질문", "-c", "nope"), ("documents", "list", "-c", "nope"),
                 ("documents", "delete", "x", "-c", "nope"), ("doctor", "-c", "nope")):
        r = run(*args)
        assert r.exit_code == 2 and "collection not found: 'nope'" in r.output, (args, r.output)
    r = run("search", "질문", "--mode", "sparse")
    assert r.exit_code == 2 and "mode" in r.output
    r = run("ingest", str(env), "--backend", "onnx")
    assert r.exit_code == 2 and "backend" in r.output
    r = run("ingest", str(env), "-c", "nope", "--no-create")
    assert r.exit_code == 2 and "collection not found: 'nope'" in r.output


def test_real_process_missing_path_exits_nonzero_without_traceback(env):
    proc = subprocess.run([sys.executable, "-c", "from koqa.cli import main; main()", "ingest",
                           str(env / "nothing-here"), "-c", "x"],
                          capture_output=True, text=True, env={**os.environ}, timeout=120)
    assert proc.returncode == 1
    assert "no such file or directory" in proc.stderr and "Traceback" not in proc.stderr + proc.stdout
