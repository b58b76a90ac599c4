"""``koqa ask`` end to end: settings from the environment, a real store, the real reader code (tiny model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from koqa.cli import app
from koqa.ingest.embedders import FakeEmbedder
from koqa.ingest.loaders import load_documents
from koqa.pipeline.corpus import Corpus
from koqa.settings import Settings

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
Q = "훈민정음을 창제한 왕은 누구인가?"


@pytest.fixture(scope="module")
def env(tmp_path_factory, tiny_model_dir):
    home = tmp_path_factory.mktemp("home")
    env = {"KOQA_HOME": str(home), "KOQA_EMBEDDER": "fake", "KOQA_READER": str(tiny_model_dir)}
    with Corpus.from_settings(Settings.from_env(env), embedder=FakeEmbedder()) as store:
        store.ingest("demo", load_documents([SAMPLES]), create=True)
    return env


def test_ask_prints_answers_with_their_source(env):
    out = CliRunner().invoke(app, ["ask", Q, "--collection", "demo", "-k", "3", "-n", "2"], env=env)
    assert out.exit_code == 0, out.output
    assert out.stdout.startswith(f"Q: {Q}")
    assert "source:" in out.output and "[chars " in out.output and "**" in out.output


def test_ask_json(env):
    out = CliRunner().invoke(app, ["ask", Q, "-c", "demo", "--json", "-n", "3"], env=env)
    assert out.exit_code == 0, out.output
    body = json.loads(out.stdout)
    assert body["collection"] == "demo" and 1 <= len(body["answers"]) <= 3
    assert {"text", "score", "doc_id", "start", "end", "sources", "context"} <= set(body["answers"][0])


def test_ask_and_search_filter_documents(env):
    out = CliRunner().invoke(app, ["ask", Q, "-c", "demo", "--json", "--filter", "title=한글날"], env=env)
    assert out.exit_code == 0, out.output
    assert {s["doc_title"] for a in json.loads(out.stdout)["answers"] for s in a["sources"]} == {"한글날"}
    out = CliRunner().invoke(app, ["search", Q, "-c", "demo", "--json", "--filter", "title=한글날",
                                   "--filter", "title=서울"], env=env)
    assert out.exit_code == 0, out.output
    assert {h["title"] for h in json.loads(out.stdout)} == {"한글날", "서울"}


@pytest.mark.parametrize("args, message", [
    (["ask", Q, "-c", "nope"], "collection not found"),
    (["ask", " ", "-c", "demo"], "question"),
    (["ask", Q, "-c", "demo", "-k", "0"], "top_k_passages"),
    (["ask", Q, "-c", "demo", "--mode", "fuzzy"], "mode"),
    (["ask", Q, "-c", "demo", "--filter", "title"], "--filter: must be KEY=VALUE"),
    (["ask", Q, "-c", "demo", "--filter", "dept=법무"], "filters.dept"),
])
def test_bad_input_is_one_line_and_exit_2(env, args, message):
    out = CliRunner().invoke(app, args, env=env)
    assert out.exit_code == 2 and message in out.output and "Traceback" not in out.output


@pytest.mark.parametrize("args, message", [
    ([" ", "-c", "demo"], "question"),
    ([Q, "-c", "nope"], "collection not found"),
    ([Q, "-c", "demo", "--filter", "dept=법무"], "filters.dept"),
])
def test_bad_input_is_refused_before_any_model_loads(env, args, message):
    out = CliRunner().invoke(app, ["ask", *args], env={**env, "KOQA_READER": "/no/such/reader"})
    assert out.exit_code == 2 and message in out.output and "/no/such/reader" not in out.output


def test_a_bad_setting_is_named(env):
    out = CliRunner().invoke(app, ["ask", Q, "-c", "demo"], env={**env, "KOQA_READER_BACKEND": "tensorrt"})
    assert out.exit_code == 2 and "KOQA_READER_BACKEND" in out.output and "Traceback" not in out.output
