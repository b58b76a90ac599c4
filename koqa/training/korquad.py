"""SQuAD-layout data, the fixed KorQuAD-dev split, and the official KorQuAD 1.0 metric.

The metric re-implements ``evaluate-v1.0.py`` as ../shared/data/korquad/SOURCE.md
describes it: quotes/brackets → space, lower-case, ASCII punctuation removed,
whitespace collapsed (no article removal); EM is string equality after that;
F1 is over the *bag of characters* of the normalised tokens (whitespace not
counted); max over golds; a missing prediction scores 0.

>>> exact_match("1989년 2월 15일", "1989년2월15일"), round(f1_score("1989년2월15일", "1989년 2월 15일"), 3)
(False, 1.0)
>>> evaluate({"q1": ["서울"]}, {"q1": "서울특별시"})["exact_match"]
0.0
"""

from __future__ import annotations

import gzip
import io
import json
import random
import string
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

_QUOTES = "'\"《》<>〈〉()‘’"
_PUNCT = set(string.punctuation)

TRAIN_ARTICLES = 100  # KorQuAD dev: the first 100 articles in file order are "train-split"
EVAL_ARTICLES = 40  # ... and the last 40 are "eval-split"


def normalize_answer(s: str) -> str:
    s = "".join(" " if c in _QUOTES else c for c in s).lower()
    s = "".join(c for c in s if c not in _PUNCT)
    return " ".join(s.split())


def exact_match(prediction: str, gold: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(gold)


def f1_score(prediction: str, gold: str) -> float:
    pred = [c for tok in normalize_answer(prediction).split() for c in tok]
    ref = [c for tok in normalize_answer(gold).split() for c in tok]
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def evaluate(golds: Mapping[str, Sequence[str]], predictions: Mapping[str, str]) -> dict[str, float]:
    """Official aggregation: every gold id counts; a missing prediction scores 0."""
    if not golds:
        return {"exact_match": 0.0, "f1": 0.0}
    em = f1 = 0.0
    for qid, answers in golds.items():
        if qid not in predictions:
            continue
        pred = predictions[qid]
        em += max(float(exact_match(pred, g)) for g in answers)
        f1 += max(f1_score(pred, g) for g in answers)
    return {"exact_match": 100.0 * em / len(golds), "f1": 100.0 * f1 / len(golds)}


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class QAExample:
    """One question on one context; ``answers`` are (text, char start) pairs."""

    id: str
    question: str
    context: str
    answers: tuple[tuple[str, int], ...]
    title: str = ""

    @property
    def answer_texts(self) -> list[str]:
        return [a for a, _ in self.answers]


def load_squad(path: str | Path) -> dict:
    """Read a SQuAD-layout ``.json`` / ``.json.gz`` file, or a ``.zip`` of them/JSON lines."""
    path = Path(path)
    if path.suffix == ".zip":
        return _load_zip(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def _load_zip(path: Path) -> dict:
    """Zips hold SQuAD JSON files or JSON lines of ``{context, question, answers...}``."""
    data: list = []
    with zipfile.ZipFile(path) as zf:
        for name in sorted(zf.namelist()):
            if name.endswith("/") or "__MACOSX" in name:
                continue
            raw = zf.read(name).decode("utf-8-sig")
            if name.endswith(".json") and raw.lstrip().startswith("{") and '"data"' in raw[:200]:
                data.extend(json.loads(raw)["data"])
            elif name.endswith((".jsonl", ".json")):
                data.extend(_jsonl_articles(raw))
    return {"data": data}


def _jsonl_articles(raw: str) -> list[dict]:
    articles = []
    for line in io.StringIO(raw):
        if not line.strip():
            continue
        rec = json.loads(line)
        ans = rec.get("answers") or {}
        if isinstance(ans, dict):  # HF datasets style: {"text": [...], "answer_start": [...]}
            ans = [{"text": t, "answer_start": s} for t, s in zip(ans.get("text", []), ans.get("answer_start", []))]
        qa = {"id": str(rec.get("question_id", rec.get("id"))), "question": rec["question"], "answers": ans}
        articles.append({"title": rec.get("title", ""), "paragraphs": [{"context": rec["context"], "qas": [qa]}]})
    return articles


def iter_examples(articles: Iterable[dict]) -> tuple[list[QAExample], int]:
    """Flatten articles into examples; returns (examples, number of answers dropped).

    Answers whose ``answer_start`` does not point at their text are dropped and
    counted; a question left with no answer is dropped.
    """
    examples, dropped = [], 0
    for art in articles:
        for para in art["paragraphs"]:
            ctx = para["context"]
            for qa in para["qas"]:
                good = []
                for a in qa.get("answers", []):
                    text, start = a["text"], int(a["answer_start"])
                    if text and ctx[start : start + len(text)] == text:
                        good.append((text, start))
                    else:
                        dropped += 1
                if good:
                    examples.append(QAExample(str(qa["id"]), qa["question"], ctx, tuple(good), art.get("title", "")))
    return examples, dropped


def split_korquad(data: dict) -> tuple[list[dict], list[dict]]:
    """The fixed article-level split of KorQuAD 1.0 dev: (first 100, last 40) articles."""
    articles = data["data"]
    return articles[:TRAIN_ARTICLES], articles[-EVAL_ARTICLES:]


def read_train_spec(spec: str, seed: int = 0) -> tuple[list[QAExample], int]:
    """``FILE`` or ``FILE:N`` (a seeded sample of N examples) → (examples, dropped).

    ``korquad-train:FILE`` / ``korquad-eval:FILE`` select a split of KorQuAD dev, and
    ``korquad-train-fit`` / ``korquad-train-holdout`` its articles 1–90 / 91–100;
    ``tydi-train:FILE`` / ``tydi-dev:FILE`` the parts of :func:`koqa.training.tydi.tydi_splits`.
    """
    name, _, n = spec.rpartition(":") if spec.rsplit(":", 1)[-1].isdigit() else (spec, "", "")
    split, _, file = name.partition(":") if name.startswith(("korquad-", "tydi-")) else ("", "", name)
    articles = load_squad(file)["data"]
    if split in ("tydi-train", "tydi-dev"):
        from koqa.training.tydi import tydi_splits

        articles = tydi_splits({"data": articles})[split == "tydi-dev"]["data"]
    elif split:
        train, evals = split_korquad({"data": articles})
        articles = {"korquad-train": train, "korquad-eval": evals,
                    "korquad-train-fit": train[:90], "korquad-train-holdout": train[90:]}[split]
    examples, dropped = iter_examples(articles)
    if n and int(n) < len(examples):
        examples = random.Random(seed).sample(examples, int(n))
    return examples, dropped
