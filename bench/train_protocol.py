"""Issue #10's training protocol in one resumable command, sized for a lent GPU.

(c) a multilingual stage alone (English SQuAD; English + Japanese JaQuAD), zero-shot on
Korean; Korean stages from each on train-split articles 1–90 over a small grid of
learning rates and epochs, chosen on held-out articles 91–100; then with the chosen
settings on all 100 articles: (b) multilingual → Korean and (a) Korean only, both on
eval-split; and a 6-layer fast reader distilled from (b). Independent runs of a wave
train side by side as separate processes (one small model leaves a big GPU mostly
idle). A run whose folder holds ``train_summary.json`` is skipped, so a second call
continues where a stopped one left off. Results go to ``OUT/protocol.json`` after
every wave, printed as a table at the end.

    python bench/device_carry.py rebuild --out /tmp/base
    python bench/train_protocol.py --base /tmp/base --data .carry --work /tmp/proto --out $OUT
    python bench/train_protocol.py --plan smoke ...     # minutes on a CPU: every step, tiny sizes
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a bare checkout (no install there)

from koqa.settings import Settings  # noqa: E402
from koqa.training.train import TrainConfig, evaluate_folder  # noqa: E402


@dataclass(frozen=True)
class Plan:
    stage1: dict  # name -> training files (under --data); ":N" samples N questions
    stage1_epochs: float
    stage1_lr: float
    grid: tuple  # (lr, epochs) of the Korean stage, chosen on held-out articles
    max_seq_len: int
    batch_size: int
    fast_keep: tuple
    fast_epochs: float
    fast_lr: float
    eval_limit: str = ""  # ":N" caps evaluation questions (smoke plan only)
    max_steps: int | None = None
    threads: int = 2  # torch CPU threads per training process


PLANS = {
    "gpu": Plan(stage1={"en": ("squad_train.json.gz",), "en+ja": ("squad_train.json.gz", "jaquad_train.json.gz")},
                stage1_epochs=1.0, stage1_lr=1e-4, grid=((5e-5, 2.0), (5e-5, 4.0), (1e-4, 2.0), (1e-4, 4.0)),
                max_seq_len=384, batch_size=32, fast_keep=(0, 2, 4, 6, 8, 10), fast_epochs=4.0, fast_lr=3e-4),
    "smoke": Plan(stage1={"en": ("squad_train.json.gz:40",), "en+ja": ("squad_train.json.gz:20", "jaquad_train.json.gz:20")},
                  stage1_epochs=1.0, stage1_lr=1e-4, grid=((5e-5, 1.0), (1e-4, 1.0)), max_seq_len=256, batch_size=8,
                  fast_keep=(0, 1), fast_epochs=1.0, fast_lr=3e-4, eval_limit=":30", max_steps=3, threads=1),
}


def _korquad(data: Path, split: str) -> str:
    return f"korquad-{split}:{data / 'korquad_dev.json.gz'}"


def _config(plan: Plan, base, train, out, *, lr, epochs, **extra) -> TrainConfig:
    # embeddings stay frozen: the carried base has zeros in the rows that no carried text uses
    return TrainConfig(base=str(base), train=tuple(train), out=str(out), lr=lr, epochs=epochs,
                       batch_size=plan.batch_size, max_seq_len=plan.max_seq_len, freeze_embeddings=True,
                       checkpoint_every=200, max_steps=plan.max_steps, threads=plan.threads, **extra)


def _run(cfg: TrainConfig, eval_spec: str | None) -> dict:
    """One training run (skipped when done) and its EM/F1 on ``eval_spec``, in a child process."""
    from koqa.training.train import train

    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{out}.log", "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        done = out / "train_summary.json"
        summary = json.loads(done.read_text()) if done.exists() else train(cfg, settings=Settings.from_env())
        summary["eval"] = _evaluate(out, eval_spec) if eval_spec else None
    return summary


def _evaluate(folder: Path, spec: str) -> dict:
    """EM/F1 without particle trimming (its Kiwi model is too big to carry); cached in ``eval.json``."""
    cached = folder / "eval.json"
    known = json.loads(cached.read_text()) if cached.exists() else {}
    if spec not in known:
        known[spec] = evaluate_folder(folder, spec, max_seq_len=384, trim_particles=False)
        cached.write_text(json.dumps(known))
    return known[spec]


def _wave(pool, runs: dict[str, tuple[TrainConfig, str | None]], results: dict, out: Path) -> dict[str, dict]:
    started = time.time()
    futures = {name: pool.submit(_run, cfg, spec) for name, (cfg, spec) in runs.items()}
    summaries = {name: f.result() for name, f in futures.items()}
    for name, s in summaries.items():
        results["runs"][name] = {"config": s["config"], "windows": s["features"], "steps": s["steps"],
                                 "final_loss": s["final_loss"], "eval": s["eval"]}
    results["waves"].append({"runs": list(runs), "seconds": round(time.time() - started, 1)})
    (out / "protocol.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
    return summaries


def run_protocol(plan: Plan, base: Path, data: Path, work: Path, out: Path, workers: int) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    results = {"plan": plan.__dict__, "runs": {}, "waves": [], "chosen": {}}
    holdout = _korquad(data, "train-holdout") + plan.eval_limit
    evals = _korquad(data, "eval") + plan.eval_limit
    fit, full = [_korquad(data, "train-fit")], [_korquad(data, "train")]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        s1 = {f"s1-{k}": (_config(plan, base, [str(data / f) for f in files], work / f"s1-{k}",
                                  lr=plan.stage1_lr, epochs=plan.stage1_epochs), evals)  # (c): zero-shot on Korean
              for k, files in plan.stage1.items()}
        _wave(pool, s1, results, out)
        grid = {f"fit-{s}-lr{lr:g}-ep{ep:g}": (_config(plan, work / s, fit, work / f"fit-{s}-lr{lr:g}-ep{ep:g}",
                                                       lr=lr, epochs=ep, distractors=0.5), holdout)
                for s in s1 for lr, ep in plan.grid}
        fits = _wave(pool, grid, results, out)
        best = max(fits, key=lambda n: fits[n]["eval"]["f1"])
        chosen = grid[best][0]
        stage1 = Path(chosen.base).name
        results["chosen"] = {"run": best, "stage1": stage1, "lr": chosen.lr, "epochs": chosen.epochs}
        finals = {name: (replace(chosen, base=str(start), train=tuple(full), out=str(work / name)), evals)
                  for name, start in (("b-final", work / stage1), ("a-korean-only", base))}
        _wave(pool, finals, results, out)
        _wave(pool, {"fast": (_fast_config(plan, work, full), evals)}, results, out)
    return results


def _fast_config(plan: Plan, work: Path, full: list[str]) -> TrainConfig:
    from koqa.models.shrink import shrink_layers

    init = work / "fast-init"
    if not (init / "config.json").exists():
        shrink_layers(work / "b-final", init, keep=plan.fast_keep)
    return _config(plan, init, full, work / "fast", lr=plan.fast_lr, epochs=plan.fast_epochs, distractors=0.5,
                   teacher=str(work / "b-final"), distill_weight=0.5, distill_temperature=2.0, distill_hidden=1.0)


def table(results: dict) -> str:
    """Stage-1 rows are (c), zero-shot; ``fit-*`` rows choose the Korean settings; (b) and (a) are final."""
    rows = [("run", "held-out 91–100 EM / F1", "eval-split EM / F1 (no trimming)", "windows", "steps")]
    for name, r in results["runs"].items():
        ev = r["eval"]
        cell = f"{ev['exact_match']:.2f} / {ev['f1']:.2f}" if ev else ""
        cells = (cell, "") if name.startswith("fit-") else ("", cell)
        rows.append((name, *cells, str(r["windows"]), str(r["steps"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    waves = ", ".join(f"{w['seconds']:.0f} s" for w in results["waves"])
    return "\n".join(lines + [f"chosen: {results['chosen']}", f"waves: {waves}"])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--plan", choices=sorted(PLANS), default="gpu")
    p.add_argument("--base", type=Path, required=True, help="the base encoder folder (device_carry.py rebuild)")
    p.add_argument("--data", type=Path, default=Path(".carry"), help="device_carry.py prepare's folder")
    p.add_argument("--work", type=Path, default=Path("runs/protocol"))
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "bench/results")))
    p.add_argument("--workers", type=int, default=8)
    a = p.parse_args(argv)
    print(table(run_protocol(PLANS[a.plan], a.base, a.data, a.work, a.out, a.workers)))


if __name__ == "__main__":
    main()
