"""The built-in readers' model cards are Hugging Face cards: front matter, the standard sections, consistent numbers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from koqa.models.registry import BUILTINS

yaml = pytest.importorskip("yaml")  # a dependency of transformers / huggingface_hub

REPO = Path(__file__).resolve().parents[1]
BUILTIN = REPO / "koqa" / "models" / "builtin"
CARDS = sorted(BUILTIN.glob("*/README.md"))
SECTIONS = ("Intended use and limits", "Training data", "Training procedure", "Evaluation", "Speed",
            "How to reproduce")


def _split(card: Path) -> tuple[dict, str]:
    text = card.read_text(encoding="utf-8")
    match = re.match(r"---\n(.*?)\n---\n(.*)", text, re.S)
    assert match, f"{card}: no YAML front matter"
    return yaml.safe_load(match.group(1)), match.group(2)


def test_there_is_a_card_for_every_delta():
    assert {c.parent.name for c in CARDS} == {p.parent.name for p in BUILTIN.glob("*/delta.json")} != set()


@pytest.mark.parametrize("card", CARDS, ids=lambda c: c.parent.name)
def test_front_matter_has_the_hub_keys(card):
    meta, _ = _split(card)
    assert meta["language"] == ["ko"] and meta["library_name"] == "transformers"
    assert meta["pipeline_tag"] == "question-answering" and meta["license"]
    assert meta["datasets"] and meta["base_model"] == "intfloat/multilingual-e5-small"
    (entry,) = meta["model-index"]
    assert entry["name"] == card.parent.name
    for result in entry["results"]:
        assert result["task"]["type"] == "question-answering" and result["dataset"]["name"]
        assert {m["type"] for m in result["metrics"]} == {"exact_match", "f1"}


@pytest.mark.parametrize("card", CARDS, ids=lambda c: c.parent.name)
def test_sections_and_numbers_agree(card):
    meta, body = _split(card)
    headings = re.findall(r"^## (.+)$", body, re.M)
    assert [h for h in headings if h in SECTIONS] == list(SECTIONS), headings
    evaluation = body.split("## Evaluation", 1)[1].split("\n## ", 1)[0]
    for result in meta["model-index"][0]["results"]:
        for metric in result["metrics"]:
            assert f"{metric['value']:.2f}" in evaluation, (result["dataset"]["name"], metric)
    for licence in ("CC BY-ND 2.0 KR", "CC BY-SA 4.0", "MIT"):
        assert licence in body.split("## Training data", 1)[1].split("\n## ", 1)[0]
    assert "koqa train" in body and "bench/reader_accuracy.py" in body
    assert "session" not in body.lower()  # the history lives in docs/model-history.md


def test_registry_licence_lines_point_at_the_cards():
    for model in BUILTINS:
        for path in re.findall(r"models/\S+/README\.md", model.licence):
            assert (REPO / path).is_file(), (model.name, path)
