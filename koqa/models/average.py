"""Weight averaging of two fine-tunes of one model (a "model soup").

Interpolating a model fine-tuned further on new data with the model it started from keeps
much of what was learnt while forgetting less of the old task than either end point
(Wortsman et al., 2022, "Model soups"; Ilharco et al., 2023, "Editing models with task
arithmetic"). ``weight`` is the share of ``a``: ``out = weight * a + (1 - weight) * b``.

>>> average_folders("runs/new", "runs/old", "runs/soup", weight=0.5)   # doctest: +SKIP
PosixPath('runs/soup')
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from koqa.errors import InvalidInput
from koqa.models.delta import load_weights

_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")


def average_folders(a: str | Path, b: str | Path, out: str | Path, *, weight: float = 0.5) -> Path:
    """Write ``weight * a + (1 - weight) * b`` into ``out`` (config and tokenizer files from ``a``).

    Both must hold the same tensor names and shapes (InvalidInput naming the first that differs).
    """
    import torch
    from safetensors.torch import save_file

    if not 0.0 <= weight <= 1.0:
        raise InvalidInput("weight", weight, "must be between 0 and 1")
    wa, wb = load_weights(a, "a"), load_weights(b, "b")
    for name in sorted(set(wa) | set(wb)):
        if name not in wa or name not in wb or wa[name].shape != wb[name].shape:
            raise InvalidInput("b", str(b), f"does not match a at tensor {name!r} (name or shape)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for f in Path(a).iterdir():
        if f.is_file() and f.name not in _WEIGHTS and not f.name.startswith("model-"):
            shutil.copy2(f, out / f.name)
    # where both agree the value is kept bit-exact (w*x + (1-w)*x can round off x), so tensors
    # neither fine-tune changed stay equal to the base and cost nothing in a delta
    soup = {k: torch.from_numpy(np.where(wa[k] == wb[k], wa[k], weight * wa[k] + (1.0 - weight) * wb[k])).contiguous()
            for k in wa}
    save_file(soup, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out
