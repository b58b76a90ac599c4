"""Fine-tune any encoder or QA checkpoint for span extraction (``koqa train``).

Resumable: every ``checkpoint_every`` optimiser steps the trainable weights,
optimiser, scheduler, step and data order go to ``OUT/checkpoint/`` (written to a
temporary folder, then renamed), and a new run with the same ``OUT`` continues from
there. The result is a standard Hugging Face folder that ``QAReader`` loads.

>>> cfg = TrainConfig(base="koqa:e5-small-ko", train=("korquad-train:dev.json.gz",), out="runs/x")
>>> cfg.max_seq_len, cfg.doc_stride
(256, 128)
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

from koqa.errors import InvalidInput
from koqa.training.config import TrainConfig
from koqa.training.distill import distilled_loss, load_teacher, replace_context_tokens
from koqa.training.features import Feature, add_distractors, build_features
from koqa.training.korquad import read_train_spec
from koqa.reader.windows import pad_batch

__all__ = ["TrainConfig", "evaluate_folder", "train", "trained_example_ids"]


def _batches(feats: list[Feature], batch_size: int, seed: int) -> list[list[int]]:
    """Shuffled batches of similar-length windows (less padding), deterministic in ``seed``."""
    rng = random.Random(seed)
    order = list(range(len(feats)))
    rng.shuffle(order)
    group = batch_size * 50
    batches = []
    for g in range(0, len(order), group):
        part = sorted(order[g : g + group], key=lambda i: len(feats[i].window))
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


def _step_batch(feats: list[Feature], cfg: TrainConfig, step: int, order: dict[int, list[list[int]]]) -> list[int]:
    """Window indices trained at ``step``; ``order`` caches the current epoch's batches."""
    epoch, pos = divmod(step, math.ceil(len(feats) / cfg.batch_size))
    if epoch not in order:
        order.clear()
        order[epoch] = _batches(feats, cfg.batch_size, cfg.seed + epoch)
    return order[epoch][pos]


def train_precision(requested: str, device: str) -> str:
    """The arithmetic a run uses: ``requested`` unless it is "auto" (see ``TrainConfig.precision``).

    >>> train_precision("fp32", "cuda"), train_precision("auto", "cuda")
    ('fp32', 'bf16')
    """
    if requested != "auto":
        return requested
    if device == "cuda":
        return "bf16"
    import torch

    native = [getattr(torch.cpu, f, lambda: False) for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return "bf16" if any(f() for f in native) else "fp32"


def _freeze(model, cfg: TrainConfig) -> None:
    base = getattr(model, model.base_model_prefix)
    if cfg.freeze_embeddings or cfg.freeze_layers:
        for p in base.embeddings.parameters():
            p.requires_grad = False
    for layer in base.encoder.layer[: cfg.freeze_layers]:
        for p in layer.parameters():
            p.requires_grad = False


def _load_data(cfg: TrainConfig, tokenizer, log) -> list[Feature]:
    examples = []
    for i, spec in enumerate(cfg.train):
        ex, dropped = read_train_spec(spec, seed=cfg.seed + i)
        log(f"{spec}: {len(ex)} questions, {dropped} answers dropped (offset does not match text)")
        examples += ex
    if cfg.distractors:
        n = len(examples)
        examples = add_distractors(examples, cfg.distractors, seed=cfg.seed)
        log(f"{len(examples) - n} distractor contexts added")
    return build_features(tokenizer, examples, max_seq_len=cfg.max_seq_len, doc_stride=cfg.doc_stride)


def train(cfg: TrainConfig, log=print, settings=None) -> dict:
    """Run (or resume) training; returns the summary written to ``OUT/train_summary.json``.

    ``settings`` (default ``Settings()``) says where built-in model names are cached."""
    import torch
    from tqdm import tqdm

    from koqa.reader.loading import load_qa_model, load_tokenizer, resolve

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    path = resolve(cfg.base, settings)
    tokenizer = load_tokenizer(path)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_qa_model(path, "float32", device).train()
    _freeze(model, cfg)
    teacher = load_teacher(cfg, model, device, settings)
    feats = _load_data(cfg, tokenizer, log)
    per_epoch = math.ceil(len(feats) / cfg.batch_size)
    total = cfg.max_steps or math.ceil(per_epoch * cfg.epochs)
    params, opt, sched = _optimizer(model, cfg, total)
    step, losses = _resume(out, model, opt, sched, cfg, log)
    log(f"{len(feats)} windows, {per_epoch} steps per epoch, schedule of {total} steps")
    pad = tokenizer.pad_token_id or 0
    precision = train_precision(cfg.precision, device)
    log(f"training on {device} in {precision}")
    amp = torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16")
    bar = tqdm(total=total, initial=step, desc="training", unit="step")
    started = time.time()
    order: dict[int, list[list[int]]] = {}
    while step < total:
        batch = [feats[i] for i in _step_batch(feats, cfg, step, order)]
        with amp:
            loss = _batch_loss(model, teacher, batch, pad, device, cfg)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        losses.append(float(loss.detach()))
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}", epoch=f"{step / per_epoch:.2f}")
        if step % cfg.checkpoint_every == 0 or step == total:
            _save_checkpoint(out, model, opt, sched, step, losses, cfg)
    bar.close()
    summary = {"config": asdict(cfg), "features": len(feats), "steps": step, "train_seconds_this_run": time.time() - started,
               "final_loss": float(np.mean(losses[-50:])) if losses else None, "device": device,
               "precision": precision}
    return _finish(out, model.eval(), tokenizer, cfg, summary, log)


def _finish(out: Path, model, tokenizer, cfg: TrainConfig, summary: dict, log) -> dict:
    """Save the trained folder, evaluate it when asked, and write ``train_summary.json`` last."""
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    if cfg.eval:
        summary["eval"] = evaluate_folder(out, cfg.eval, max_seq_len=384)
        log(f"eval {cfg.eval}: {summary['eval']}")
    (out / "train_summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    return summary


def _optimizer(model, cfg: TrainConfig, total: int):
    """AdamW without weight decay on biases and LayerNorms, linear warmup then decay over ``total`` steps."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
                             {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}], lr=cfg.lr)
    return params, opt, get_linear_schedule_with_warmup(opt, int(cfg.warmup * total), total)


def _batch_loss(model, teacher, batch: list, pad: int, device: str, cfg: TrainConfig):
    import torch

    inputs = {k: torch.from_numpy(v).to(device) for k, v in pad_batch([f.window for f in batch], pad).items()}
    inputs["start_positions"] = torch.tensor([f.start for f in batch], device=device)
    inputs["end_positions"] = torch.tensor([f.end for f in batch], device=device)
    if cfg.augment:
        inputs["input_ids"] = replace_context_tokens(inputs["input_ids"], batch, cfg.augment)
    output = model(**inputs, output_hidden_states=bool(teacher is not None and cfg.distill_hidden))
    return output.loss if teacher is None else distilled_loss(output, teacher, inputs, cfg)


def trained_example_ids(folder: Path | str, log=lambda m: None) -> set[str]:
    """Ids of the examples whose windows a finished (or stopped) run in ``folder`` trained on.

    Replays the run's deterministic data order for the steps it did, so questions of a
    training file that it never reached can serve as held-out data (e.g. for calibration).
    Distractor examples count under the id of their question.
    """
    from koqa.reader.loading import load_tokenizer

    folder = Path(folder)
    if (folder / "train_summary.json").exists():
        summary = json.loads((folder / "train_summary.json").read_text())
        raw, steps = summary["config"], summary["steps"]
    else:
        raw = json.loads((folder / "checkpoint" / "config.json").read_text())
        steps = _checkpoint_step(folder / "checkpoint")
    cfg = TrainConfig(**{**raw, "train": tuple(raw["train"])})
    feats = _load_data(cfg, load_tokenizer(folder), log)
    seen: set[str] = set()
    order: dict[int, list[list[int]]] = {}
    for step in range(steps):
        seen.update(feats[i].example_id.removesuffix("-neg") for i in _step_batch(feats, cfg, step, order))
    return seen


def _checkpoint_step(ckpt: Path) -> int:
    import torch

    return int(torch.load(ckpt / "state.pt", map_location="cpu", weights_only=False)["step"])


def evaluate_folder(folder: Path | str, spec: str, **reader_options) -> dict:
    """EM/F1 of the reader in ``folder`` on the examples of ``spec`` (see ``read_train_spec``)."""
    from koqa.reader import QAReader
    from koqa.training.evaluation import evaluate_reader

    examples, _ = read_train_spec(spec)
    reader = QAReader.from_pretrained(str(folder), **{"backend": "torch-fp32", **reader_options})
    metrics, _ = evaluate_reader(reader, examples)
    return metrics


def _trainable_state(model) -> dict:
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    return {k: v for k, v in model.state_dict().items() if k in names}


def _save_checkpoint(out: Path, model, opt, sched, step: int, losses: list, cfg: TrainConfig) -> None:
    import torch

    tmp, final = out / "checkpoint.tmp", out / "checkpoint"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    torch.save({"model": _trainable_state(model), "opt": opt.state_dict(), "sched": sched.state_dict(),
                "step": step, "losses": losses, "rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}, tmp / "state.pt")
    (tmp / "config.json").write_text(json.dumps(asdict(cfg), ensure_ascii=False))
    old = out / "checkpoint.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _resume(out: Path, model, opt, sched, cfg: TrainConfig, log) -> tuple[int, list]:
    import torch

    ckpt = out / "checkpoint"
    if not (ckpt / "state.pt").exists():
        return 0, []
    saved = json.loads((ckpt / "config.json").read_text())
    mine = asdict(cfg)
    # epochs/max_steps may change between runs: that lengthens or shortens the schedule
    keys = ("base", "train", "batch_size", "max_seq_len", "doc_stride", "seed", "lr", "distractors",
            "teacher", "distill_weight", "distill_temperature", "distill_hidden", "augment")
    saved = {**{f.name: f.default for f in fields(TrainConfig)}, **saved}  # checkpoints from before a field existed
    if any(saved.get(k) != (list(mine[k]) if isinstance(mine[k], tuple) else mine[k]) for k in keys):
        raise InvalidInput("out", str(out), "holds a checkpoint made with other settings; use another --out or delete it")
    state = torch.load(ckpt / "state.pt", map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"], strict=False)
    opt.load_state_dict(state["opt"])
    sched.load_state_dict(state["sched"])
    if "rng" in state:  # dropout masks continue as in an uninterrupted run
        torch.set_rng_state(state["rng"])
        if state.get("cuda_rng") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
    log(f"resuming from step {state['step']}")
    return state["step"], state["losses"]
