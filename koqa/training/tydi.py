"""A fixed by-passage split of the TyDi QA GoldP Korean training questions into train and dev.

The 961 questions in ``../shared/data/tydiqa_goldp_ko/`` are information-seeking questions
(written before their author saw the passage), unlike KorQuAD's. Training uses the train
part; the dev part checks how a reader generalises to that style. The split is by passage
text, so no passage (and no question about it) is in both parts, and it is the same on every
machine (a seeded shuffle of the passages in sorted order).

>>> data = {"data": [{"title": f"t{i}", "paragraphs": [{"context": f"문단 {i % 4}", "qas": [{"id": str(i)}]}]}
...                  for i in range(8)]}
>>> train, dev = tydi_splits(data, dev_fraction=0.25)
>>> sorted(qa["id"] for a in dev["data"] for p in a["paragraphs"] for qa in p["qas"])
['1', '5']
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

__all__ = ["tydi_splits", "write_tydi_splits"]


def _key(context: str) -> str:
    return hashlib.sha1(context.encode("utf-8")).hexdigest()


def tydi_splits(data: dict, dev_fraction: float = 0.2, seed: int = 0) -> tuple[dict, dict]:
    """(train, dev) SQuAD-layout dicts; ``dev_fraction`` of the distinct passages go to dev.

    ``tydi-train:FILE`` / ``tydi-dev:FILE`` name the parts wherever koqa takes a data spec
    (``koqa train --train``, ``koqa eval --data``).
    """
    keys = sorted({_key(p["context"]) for a in data["data"] for p in a["paragraphs"]})
    random.Random(seed).shuffle(keys)
    dev_keys = set(keys[: round(len(keys) * dev_fraction)])
    parts: tuple[list, list] = ([], [])
    for article in data["data"]:
        for part, name in ((parts[0], False), (parts[1], True)):
            paragraphs = [p for p in article["paragraphs"] if (_key(p["context"]) in dev_keys) == name]
            if paragraphs:
                part.append({**article, "paragraphs": paragraphs})
    version = data.get("version", "")
    return {"version": version, "data": parts[0]}, {"version": version, "data": parts[1]}


def write_tydi_splits(source: str | Path, out_dir: str | Path, dev_fraction: float = 0.2, seed: int = 0
                      ) -> tuple[Path, Path]:
    """Write ``tydi_train.json`` and ``tydi_dev.json`` under ``out_dir``; returns their paths."""
    import json

    data = json.loads(Path(source).read_text(encoding="utf-8"))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = out / "tydi_train.json", out / "tydi_dev.json"
    for path, part in zip(paths, tydi_splits(data, dev_fraction, seed)):
        path.write_text(json.dumps(part, ensure_ascii=False), encoding="utf-8")
    return paths
