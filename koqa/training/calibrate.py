"""Fit the combined-confidence weights (``calibration.json``) on KorQuAD-dev train-split questions.

    python -m koqa.training.calibrate --korquad ../shared/data/korquad/KorQuAD_v1.0_dev.json.gz \\
        --reader koqa:reader-small  # writes koqa/pipeline/calibrations/koqa-reader-small.json

Procedure: all 140 KorQuAD-dev articles (one document each) go into a fresh store;
every train-split question (articles 1–100) is asked with the real pipeline
(``--unseen-by RUN`` keeps only those the reader's training runs never reached);
each of its candidate answers (the reader's top spans merged by text) becomes one example (its features, label =
official character F1 against the gold answer ≥ ``min_f1``). A logistic
regression (L2, Newton's method, features standardised and folded back into raw
weights) is fitted on 80 % of the questions and scored on the other 20 % (Brier,
log loss, ECE, AUC, and the top-1 precision/coverage at the threshold), then
refitted on all of them. Caveat: if the reader was trained on these questions its
features look better than on new ones, and the fit trusts the reader too much:
use ``--unseen-by`` or a split the reader did not see (``--articles``).
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from koqa.pipeline import answers as ans
from koqa.pipeline.calibration import FEATURES, Calibration, features, packaged_path
from koqa.pipeline.qa import QAPipeline
from koqa.types import Document

KORQUAD_COLLECTION = "korquad-open"


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    answers: tuple[str, ...]
    doc_id: str


@dataclass(frozen=True)
class Example:
    """One candidate answer of one question: its features and whether it is right."""

    qid: str
    rank: int
    features: dict
    label: int


def article_documents(articles: Sequence[dict], first_index: int = 0) -> list[Document]:
    """One document per article (paragraphs joined by a blank line), id ``korquad-<n>``."""
    return [Document(id=f"korquad-{first_index + i:03d}", title=a.get("title", "").replace("_", " "),
                     text="\n\n".join(p["context"] for p in a["paragraphs"]), source="KorQuAD 1.0 dev")
            for i, a in enumerate(articles)]


def article_questions(articles: Sequence[dict], first_index: int = 0) -> list[Question]:
    return [Question(str(qa["id"]), qa["question"], tuple(a["text"] for a in qa["answers"]),
                     f"korquad-{first_index + i:03d}")
            for i, art in enumerate(articles) for p in art["paragraphs"] for qa in p["qas"] if qa["answers"]]


def collect(pipeline: QAPipeline, questions: Sequence[Question], collection: str, *, top_k_passages: int = 20,
            top_n_answers: int = 5, min_f1: float = 0.5, batch: int = 8, read_first: int = 0,
            progress=None) -> list[Example]:
    """Ask every question; each of its candidate answers becomes a labelled example.

    ``read_first`` > 0 reads only that many of the retrieved passages, as the first
    pass of adaptive reading depth does (for fitting its stop rule). ``pipeline`` should
    have ``depth=None``, so that the passages given are read in one pass.
    """
    from koqa.training.korquad import f1_score

    out: list[Example] = []
    for i in range(0, len(questions), batch):
        chunk = questions[i:i + batch]
        hits = [pipeline.retrieve(q.text, collection, top_k_passages) for q in chunk]
        chunk, hits = [q for q, h in zip(chunk, hits) if h], [h for h in hits if h]
        read = [h[:read_first] if read_first else h for h in hits]
        spans = pipeline.read([q.text for q in chunk], read, top_n_answers)
        for q, h, s in zip(chunk, hits, spans):
            cands = ans.candidates(s, h)
            feats = [features(c, cands, h) for c in cands]
            # every candidate, as ``assemble`` scores every candidate
            ranked = sorted(zip(feats, cands), key=lambda fc: -pipeline.calibration.logit(fc[0]))
            for rank, (f, c) in enumerate(ranked, 1):
                label = int(max(f1_score(c.text, g) for g in q.answers) >= min_f1)
                out.append(Example(q.id, rank, f, label))
        if progress:
            progress(min(i + batch, len(questions)), len(questions))
    return out


def fit(examples: Sequence[Example], names: Sequence[str] = FEATURES, *, l2: float = 1.0) -> tuple[tuple, float]:
    """Logistic regression weights (raw feature scale) and bias by Newton's method."""
    X = np.array([[e.features[n] for n in names] for e in examples], dtype=np.float64)
    y = np.array([e.label for e in examples], dtype=np.float64)
    mu, sd = X.mean(0), X.std(0)
    sd[sd < 1e-9] = 1.0
    Z = np.hstack([np.ones((len(X), 1)), (X - mu) / sd])
    w = np.zeros(Z.shape[1])
    penalty = np.full(Z.shape[1], l2)
    penalty[0] = 0.0  # the bias is not shrunk
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(Z @ w, -30, 30)))
        grad = Z.T @ (p - y) + penalty * w
        hess = (Z * (p * (1 - p))[:, None]).T @ Z + np.diag(penalty) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    weights = w[1:] / sd
    return tuple(float(v) for v in weights), float(w[0] - (w[1:] * mu / sd).sum())


def metrics(cal: Calibration, examples: Sequence[Example]) -> dict[str, float]:
    """How well ``cal`` is calibrated on ``examples``; top-1 precision/coverage at its threshold."""
    p = np.array([cal.confidence(e.features) for e in examples])
    y = np.array([e.label for e in examples], dtype=np.float64)
    eps = 1e-12
    bins = np.minimum((p * 10).astype(int), 9)
    ece = sum(abs(p[bins == b].mean() - y[bins == b].mean()) * (bins == b).mean() for b in range(10) if (bins == b).any())
    best: dict[str, int] = {}  # each question's top-1 under ``cal`` itself
    for i, e in enumerate(examples):
        if e.qid not in best or p[i] > p[best[e.qid]]:
            best[e.qid] = i
    top = np.zeros(len(examples), bool)
    top[list(best.values())] = True
    answered = top & (p >= cal.threshold)
    return {
        "examples": float(len(examples)),
        "brier": float(((p - y) ** 2).mean()),
        "log_loss": float(-(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)).mean()),
        "ece": float(ece),
        "auc": _auc(p, y),
        "top1_accuracy": float(y[top].mean()) if top.any() else 0.0,
        "coverage_at_threshold": float(answered.sum() / max(1, top.sum())),
        "precision_at_threshold": float(y[answered].mean()) if answered.any() else 0.0,
    }


def _auc(p: np.ndarray, y: np.ndarray) -> float:
    pos, neg = p[y == 1], p[y == 0]
    if not len(pos) or not len(neg):
        return float("nan")
    ranks = np.argsort(np.argsort(np.concatenate([pos, neg]))) + 1
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def calibrate(examples: Sequence[Example], *, threshold: float = 0.25, min_f1: float = 0.5, l2: float = 1.0,
              holdout: float = 0.2, seed: int = 0, fitted_on: str = "", reader: str = "",
              names: Sequence[str] = FEATURES) -> Calibration:
    """Fit on (1 − holdout) of the questions, report on the rest, then refit on all."""
    qids = sorted({e.qid for e in examples})
    random.Random(seed).shuffle(qids)
    held = set(qids[: int(len(qids) * holdout)])
    train = [e for e in examples if e.qid not in held]
    test = [e for e in examples if e.qid in held] or train
    base = Calibration(features=tuple(names), weights=(0.0,) * len(names), bias=0.0, threshold=threshold,
                       label_min_f1=min_f1, fitted_on=fitted_on, reader=reader)
    w, b = fit(train, names, l2=l2)
    held_metrics = metrics(replace(base, weights=w, bias=b), test)
    default_metrics = metrics(replace(Calibration.for_reader(reader), threshold=threshold), test)
    w, b = fit(examples, names, l2=l2)
    report = {f"heldout_{k}": round(v, 4) for k, v in held_metrics.items()}
    report |= {f"heldout_default_weights_{k}": round(v, 4) for k, v in default_metrics.items()
               if k in ("brier", "ece", "auc")}
    report["questions"] = float(len(qids))
    return replace(base, weights=w, bias=b, metrics=report)


def corpus_store(settings, embedder_name: str, docs: Sequence[Document], store_dir: Path | None = None):
    """A store holding exactly ``docs`` in :data:`KORQUAD_COLLECTION`, cached between runs.

    Default folder: ``$KOQA_HOME/bench/open_domain/<embedder>`` (shared with
    bench/open_domain.py); re-runs skip unchanged documents and drop extra ones. With
    ``settings.vector_store == "pgvector"`` it is the PostgreSQL store of ``settings.database_url``
    (so bench/open_domain.py measures cluster mode end to end).
    """
    import re

    from koqa.ingest.embedders import load_embedder
    from koqa.pipeline.corpus import Corpus
    from koqa.pipeline.parts import open_corpus

    folder = store_dir or settings.home / "bench" / "open_domain" / re.sub(r"[^\w.-]+", "_", embedder_name)
    folder.mkdir(parents=True, exist_ok=True)
    embedder = load_embedder(embedder_name, settings=settings)
    if settings.vector_store == "pgvector":  # cluster mode: the store of KOQA_DATABASE_URL
        store = open_corpus(settings, embedder=embedder)
    else:
        store = Corpus.open(f"sqlite:///{folder}/koqa.db", folder / "indexes", embedder=embedder)
    store.create_collection(KORQUAD_COLLECTION, exist_ok=True)
    wanted = {d.id for d in docs}
    for old in store.list_documents(KORQUAD_COLLECTION):
        if old.id not in wanted:
            store.delete_document(KORQUAD_COLLECTION, old.id)
    report = store.ingest(KORQUAD_COLLECTION, docs)
    print(f"corpus: {len(docs)} articles ({report.counts}) in {folder}")
    return store


def load_korquad(path: Path, articles: str = "train") -> tuple[list[Document], list[Question]]:
    """All 140 articles as the corpus; the questions of ``articles`` ("train", "eval" or "A:B")."""
    from koqa.training.korquad import load_squad

    data = load_squad(path)["data"]
    spans = {"train": (0, 100), "eval": (len(data) - 40, len(data))}
    lo, hi = spans.get(articles) or tuple(int(x) for x in articles.split(":"))
    return article_documents(data), [q for q in article_questions(data) if lo <= int(q.doc_id.split("-")[1]) < hi]


def _parse_args(argv: Iterable[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--korquad", type=Path, required=True, help="KorQuAD_v1.0_dev.json(.gz)")
    ap.add_argument("--reader", default=None, help="reader name or folder (default: settings)")
    ap.add_argument("--embedder", default=None, help="embedder name (default: settings)")
    ap.add_argument("--articles", default="train", help='questions of "train" (1–100), "eval" or "A:B"')
    ap.add_argument("--limit", type=int, default=0, help="at most this many questions (seeded sample)")
    ap.add_argument("--top-k", type=int, default=20)
    ap.add_argument("--threshold", type=float, default=0.25)
    ap.add_argument("--min-f1", type=float, default=0.5)
    ap.add_argument("--corpus", choices=("all", "questions"), default="all",
                    help="all 140 articles, or only those holding the chosen questions (quick runs)")
    ap.add_argument("--read-first", type=int, default=0,
                    help="also fit the stop rule of adaptive depth on reads of only the first N passages")
    ap.add_argument("--unseen-by", type=Path, action="append", default=[],
                    help="a training run folder (repeatable: every stage of the reader): skip the questions it "
                         "trained on, so the fit sees the reader as it behaves on new questions")
    ap.add_argument("--store-dir", type=Path, default=None, help="cached corpus store (default: under KOQA_HOME)")
    ap.add_argument("--examples-out", type=Path, default=None, help="also write the labelled examples (JSON)")
    ap.add_argument("--out", type=Path, default=None, help="default: the packaged calibration of --reader")
    return ap.parse_args(list(argv) if argv is not None else None)


def _corpus_and_questions(args: argparse.Namespace) -> tuple[list, list]:
    docs, questions = load_korquad(args.korquad, args.articles)
    if args.unseen_by:
        from koqa.training.train import trained_example_ids

        seen = set().union(*(trained_example_ids(d) for d in args.unseen_by))
        questions = [q for q in questions if q.id not in seen]
        print(f"{len(questions)} questions the reader was not trained on")
    if args.limit and args.limit < len(questions):
        questions = random.Random(0).sample(questions, args.limit)
    if args.corpus == "questions":
        docs = [d for d in docs if d.id in {q.doc_id for q in questions}]
    return docs, questions


def main(argv: Iterable[str] | None = None) -> None:
    from koqa.reader import QAReader
    from koqa.settings import Settings

    args = _parse_args(argv)
    settings = Settings.from_env()
    docs, questions = _corpus_and_questions(args)
    reader = QAReader.from_pretrained(args.reader or settings.reader, backend=settings.reader_backend, settings=settings)
    store = corpus_store(settings, args.embedder or settings.embedder, docs, args.store_dir)
    try:
        pipe = QAPipeline(store, reader, depth=None)
        show = lambda d, n: print(f"\r{d}/{n} questions", end="", flush=True)  # noqa: E731
        examples = collect(pipe, questions, KORQUAD_COLLECTION, top_k_passages=args.top_k, min_f1=args.min_f1,
                           progress=show)
        first = collect(pipe, questions, KORQUAD_COLLECTION, top_k_passages=args.top_k, min_f1=args.min_f1,
                        read_first=args.read_first, progress=show) if args.read_first else []
    finally:
        store.close()
    if args.examples_out:
        args.examples_out.write_text(json.dumps([asdict(e) for e in examples], ensure_ascii=False))
    print()
    cal = calibrate(examples, threshold=args.threshold, min_f1=args.min_f1, reader=args.reader or settings.reader,
                    fitted_on=f"KorQuAD 1.0 dev articles {args.articles}, {len(questions)} questions"
                              f"{' the reader was not trained on' if args.unseen_by else ''}, top-{args.top_k}")
    if first:
        stop = calibrate(first, min_f1=args.min_f1, reader=cal.reader,
                         fitted_on=f"{cal.fitted_on}, reading only the first {args.read_first} passages")
        cal = replace(cal, first_pass=stop, read_first=args.read_first)
        print("first-pass model:", {k: v for k, v in stop.metrics.items() if "default" not in k})
    args.out = args.out or packaged_path(cal.reader)
    cal.save(args.out)
    for k, v in cal.metrics.items():
        print(f"{k:45s} {v:.4f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
