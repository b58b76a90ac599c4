"""``koqa read``, ``koqa eval`` and ``koqa train``: thin shells over koqa.reader."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import List, Optional

import typer

from koqa.cli.app import app, handles_errors
from koqa.errors import InvalidInput
from koqa.reader.spans import MAX_ANSWER_LEN
from koqa.settings import READER_BACKENDS, Settings, reader_backend_name


def _reader(name: str | None, backend: str | None, **config):
    from koqa.reader import QAReader

    settings = Settings.from_env()
    backend = reader_backend_name(backend, "--backend") if backend else settings.reader_backend
    return QAReader.from_pretrained(name or settings.reader, backend=backend, settings=settings, **config)


def _span_json(span, with_probs: bool) -> dict:
    d = {k: v for k, v in asdict(span).items() if k != "token_probs"}
    d["prob"] = span.prob
    if with_probs and span.token_probs is not None:
        tp = span.token_probs
        d["token_probs"] = {"offsets": tp.offsets.tolist(), "start": tp.start.round(6).tolist(), "end": tp.end.round(6).tolist()}
    return d


def _read_pairs(path: Path) -> list[dict]:
    if not path.is_file():
        raise InvalidInput("--pairs", str(path), "is not a readable file")
    pairs = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rec = json.loads(line)
                pairs.append({"question": rec["question"], "context": rec["context"]})
            except (json.JSONDecodeError, KeyError, TypeError):
                raise InvalidInput("--pairs", f"{path}:{n}", 'each line must be {"question": ..., "context": ...}') from None
    return pairs


@app.command()
@handles_errors
def read(
    question: Optional[str] = typer.Option(None, "--question", "-q", help="The question."),
    context: Optional[List[str]] = typer.Option(None, "--context", "-c", help="A context (repeatable)."),
    pairs: Optional[Path] = typer.Option(None, help='JSON lines of {"question", "context"}.'),
    reader: Optional[str] = typer.Option(None, help="Reader: built-in name, folder or hub name."),
    backend: Optional[str] = typer.Option(None, help=" | ".join(READER_BACKENDS) + " (default: KOQA_READER_BACKEND, auto)"),
    top_k: int = typer.Option(1, "--top-k", "-k"),
    max_answer_len: int = typer.Option(MAX_ANSWER_LEN, help="Longest answer, in tokens."),
    token_probs: bool = typer.Option(False, help="Include per-token start/end probabilities."),
    trim_particles: bool = typer.Option(True, help="Cut trailing Korean particles (은/는/에서 …)."),
) -> None:
    """Answer a question from context(s); prints JSON."""
    if pairs is not None:
        items = _read_pairs(pairs)
    elif question is not None and context:
        items = [{"question": question, "context": c} for c in context[:1]] if len(context) == 1 else None
    else:
        raise InvalidInput("--question/--context", None, "give --question and --context, or --pairs FILE")
    r = _reader(reader, backend, trim_particles=trim_particles)
    if items is None:  # one question over several contexts
        spans = r.read(question, context, top_k=top_k, max_answer_len=max_answer_len, return_token_probs=token_probs)
        typer.echo(json.dumps([_span_json(s, token_probs) for s in spans], ensure_ascii=False, indent=2))
        return
    results = r.read_batch([i["question"] for i in items], [[i["context"]] for i in items], top_k=top_k,
                           max_answer_len=max_answer_len, return_token_probs=token_probs)
    for item, spans in zip(items, results):
        typer.echo(json.dumps({"question": item["question"], "answers": [_span_json(s, token_probs) for s in spans]},
                              ensure_ascii=False))


@app.command("eval")
@handles_errors
def eval_cmd(
    data: Path = typer.Option(..., help="SQuAD-layout .json/.json.gz; korquad-eval:FILE selects eval-split, tydi-dev:FILE the TyDi dev split."),
    reader: Optional[str] = typer.Option(None),
    backend: str = typer.Option("torch-fp32", help=" | ".join(READER_BACKENDS)
                                + " (default torch-fp32: scores comparable with the model cards)"),
    predictions: Optional[Path] = typer.Option(None, help="Where to write id → answer JSON."),
    limit: Optional[int] = typer.Option(None, help="Evaluate a seeded sample of N questions."),
    trim_particles: bool = typer.Option(True),
    batch_size: int = typer.Option(16),
) -> None:
    """EM/F1 with the official KorQuAD 1.0 metric."""
    from koqa.training.evaluation import evaluate_reader
    from koqa.training.korquad import read_train_spec

    spec = str(data)
    path = Path(spec.split(":", 1)[1] if spec.startswith(("korquad-", "tydi-")) else spec)
    if not path.is_file():
        raise InvalidInput("--data", str(path), "is not a readable file")
    examples, dropped = read_train_spec(spec + (f":{limit}" if limit else ""))
    metrics, preds = evaluate_reader(_reader(reader, backend, trim_particles=trim_particles, batch_size=batch_size), examples)
    if predictions:
        predictions.write_text(json.dumps(preds, ensure_ascii=False, indent=1), encoding="utf-8")
    typer.echo(json.dumps({**metrics, "dropped_answers": dropped}, ensure_ascii=False))


@app.command()
@handles_errors
def train(
    base: str = typer.Option(..., help="Encoder or QA checkpoint to start from (name or folder)."),
    train_files: List[str] = typer.Option(..., "--train", help="FILE, FILE:N (sample N), korquad-train:FILE or tydi-train:FILE."),
    out: Path = typer.Option(..., help="Output folder (also holds the resumable checkpoint)."),
    eval_file: Optional[str] = typer.Option(None, "--eval", help="Evaluate at the end (e.g. korquad-eval:FILE)."),
    epochs: float = typer.Option(2.0),
    lr: float = typer.Option(5e-5),
    batch_size: int = typer.Option(16),
    max_seq_len: int = typer.Option(384),
    doc_stride: int = typer.Option(128),
    seed: int = typer.Option(42),
    freeze_embeddings: bool = typer.Option(False),
    freeze_layers: int = typer.Option(0),
    max_steps: Optional[int] = typer.Option(None),
    checkpoint_every: int = typer.Option(100),
    distractors: float = typer.Option(0.0, help="Fraction of questions also shown a paragraph without their answer."),
    teacher: Optional[str] = typer.Option(None, help="Distil from this QA model (same tokenizer), e.g. koqa:reader-small."),
    distill_weight: float = typer.Option(0.5, help="Weight of the distillation loss (the rest: the gold spans)."),
    distill_temperature: float = typer.Option(2.0),
    distill_hidden: float = typer.Option(0.0, help="Weight of matching the teacher's hidden states layer by layer."),
    augment: float = typer.Option(0.0, help="Fraction of context tokens outside the answer replaced at random each step."),
    precision: str = typer.Option("auto", help="auto (bf16 on CUDA and on CPUs with native bf16), fp32 or bf16."),
) -> None:
    """Fine-tune for span extraction on SQuAD-layout data (resumes from OUT/checkpoint)."""
    from koqa.training.train import TrainConfig, train as run

    cfg = TrainConfig(base=base, train=tuple(train_files), out=str(out), eval=eval_file, epochs=epochs, lr=lr,
                      batch_size=batch_size, max_seq_len=max_seq_len, doc_stride=doc_stride, seed=seed,
                      freeze_embeddings=freeze_embeddings, freeze_layers=freeze_layers, max_steps=max_steps,
                      checkpoint_every=checkpoint_every, distractors=distractors, teacher=teacher,
                      distill_weight=distill_weight, distill_temperature=distill_temperature,
                      distill_hidden=distill_hidden, augment=augment, precision=precision)
    summary = run(cfg, log=lambda m: typer.echo(m, err=True), settings=Settings.from_env())
    typer.echo(json.dumps({k: v for k, v in summary.items() if k != "config"}, ensure_ascii=False))
