"""The calibrated combined confidence of an answer: logistic regression over its features.

``confidence = sigmoid(bias + Σ weight_f · feature_f)`` estimates the probability
that the answer is correct (official character F1 ≥ ``label_min_f1`` against the
gold answer). The weights are fitted by :mod:`koqa.training.calibrate` on
KorQuAD-dev train-split questions for ONE reader, whose spans they score, and stored
as ``calibrations/<reader>.json`` beside this module (``koqa:reader-small`` →
``koqa-reader-small.json``); that file also holds the default abstain ``threshold``.
:meth:`Calibration.for_reader` picks the file of the reader in use. A reader without
one (another built-in, a Hugging Face checkpoint) gets :data:`FALLBACK`, a
reader-probability-only logistic curve (``sigmoid(4·reader_prob − 2)``, same threshold),
with a logged warning: its confidences rank answers but are not calibrated probabilities,
so fit one with ``python -m koqa.training.calibrate --reader NAME``.

Features of one candidate answer (see :func:`features`):

============== ==================================================================
reader_score   best span score of the reader (start_logit + end_logit)
reader_prob    reader probability summed over all places the answer was read
               (joint softmax over all passages of the question, so ≤ 1)
reader_logprob log of reader_prob (floored at 1e-6)
margin         reader_score minus the best reader_score of any *other* answer
               (> 0 for a clear winner, < 0 for the runners-up), clipped to ±10
dense          dense (cosine) score of the best occurrence's passage, 0 if absent
bm25_rel       its BM25 score divided by the best BM25 score among the hits
rank_log       log of the retrieval rank of that passage (0 for the first)
n_passages_log log of the number of distinct places the answer was read
============== ==================================================================

>>> cal = Calibration(features=("reader_prob",), weights=(4.0,), bias=-2.0)
>>> round(cal.confidence({"reader_prob": 0.5}), 3)
0.5
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from koqa.errors import InvalidInput
from koqa.pipeline.answers import Candidate
from koqa.types import Hit

FEATURES = ("reader_score", "reader_prob", "reader_logprob", "margin", "dense", "bm25_rel", "rank_log", "n_passages_log")
PACKAGED = Path(__file__).with_name("calibrations")
log = logging.getLogger(__name__)


def packaged_path(reader: str) -> Path:
    """Where the packaged calibration of ``reader`` lives (whether or not it exists)."""
    return PACKAGED / f"{re.sub(r'[^0-9A-Za-z_.]+', '-', reader).strip('-')}.json"


@dataclass(frozen=True)
class Calibration:
    """Logistic-regression weights on named features, plus the default abstain threshold."""

    features: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float
    threshold: float = 0.25
    label_min_f1: float = 0.5
    fitted_on: str = ""
    reader: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)
    # Adaptive reading depth decides after reading only the first ``read_first`` passages, where the
    # reader's probabilities are normalised over fewer passages; its stop rule uses this model then.
    first_pass: "Calibration | None" = None
    read_first: int = 0

    def __post_init__(self):
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown:
            raise InvalidInput("calibration.features", unknown, f"unknown feature(s); known: {', '.join(FEATURES)}")
        if len(self.features) != len(self.weights):
            raise InvalidInput("calibration.weights", len(self.weights), f"need one weight per feature ({len(self.features)})")
        if not 0.0 <= self.threshold <= 1.0:
            raise InvalidInput("calibration.threshold", self.threshold, "must be in [0, 1]")

    def logit(self, feats: Mapping[str, float]) -> float:
        return self.bias + sum(w * feats[f] for f, w in zip(self.features, self.weights))

    def confidence(self, feats: Mapping[str, float]) -> float:
        z = self.logit(feats)
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

    @classmethod
    def for_reader(cls, reader: str) -> "Calibration":
        """The packaged calibration fitted for ``reader``, else :data:`FALLBACK` with a warning."""
        path = packaged_path(reader)
        if path.is_file():
            return cls.load(path)
        log.warning("no calibration was fitted for reader %r: answer confidences use the uncalibrated "
                    "reader-probability fallback (fit one with python -m koqa.training.calibrate --reader %s)",
                    reader, reader)
        return FALLBACK

    def check_reader(self, reader: str) -> None:
        """Warn when this calibration was fitted for another reader than ``reader``."""
        if self.reader and self.reader != reader:
            log.warning("calibration fitted for reader %r is used with reader %r: its confidences may be "
                        "off; fit one for this reader", self.reader, reader)

    @classmethod
    def load(cls, path: str | Path) -> "Calibration":
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InvalidInput("calibration", str(path), "file not found") from None
        except json.JSONDecodeError as exc:
            raise InvalidInput("calibration", str(path), f"not valid JSON ({exc})") from None
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: Mapping) -> "Calibration":
        raw = dict(raw)
        raw["features"], raw["weights"] = tuple(raw["features"]), tuple(float(w) for w in raw["weights"])
        if raw.get("first_pass"):
            raw["first_pass"] = cls.from_dict(raw["first_pass"])
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def to_dict(self) -> dict:
        data = {k: v for k, v in asdict(self).items() if k != "first_pass"}
        data["features"], data["weights"] = list(self.features), [round(w, 6) for w in self.weights]
        data["bias"] = round(self.bias, 6)
        if self.first_pass is not None:
            data["first_pass"] = self.first_pass.to_dict()
        return data

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


FALLBACK = Calibration(features=("reader_prob",), weights=(4.0,), bias=-2.0,
                       fitted_on="not fitted: the fallback for readers without a calibration")


def features(cand: Candidate, others: Sequence[Candidate], hits: Sequence[Hit]) -> dict[str, float]:
    """The feature values of ``cand`` among ``others`` (all candidates of the question)."""
    best = cand.best
    prob = min(1.0, sum(o.span.prob for o in cand.occurrences))
    rival = max((c.best.span.score for c in others if c is not cand), default=best.span.score - 10.0)
    top_bm25 = max((h.scores.get("bm25", 0.0) for h in hits), default=0.0)
    bm25 = best.hit.scores.get("bm25", 0.0)
    return {
        "reader_score": float(best.span.score),
        "reader_prob": prob,
        "reader_logprob": math.log(max(prob, 1e-6)),
        "margin": max(-10.0, min(10.0, float(best.span.score - rival))),
        "dense": float(best.hit.scores.get("dense", 0.0)),
        "bm25_rel": float(bm25 / top_bm25) if top_bm25 > 0 else 0.0,
        "rank_log": math.log(best.rank),
        "n_passages_log": math.log(len({o.hit.passage.id for o in cand.occurrences})),
    }
