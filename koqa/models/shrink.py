"""A shallower copy of a BERT-style model: keep some encoder layers (the start of a fast reader).

The kept layers' indices go into the new ``config.json`` as ``koqa_layers_from`` so that
:func:`koqa.models.delta.make_delta` can store the shrunk-and-tuned model as a delta on the
original base (student layer ``i`` is compared with base layer ``koqa_layers_from[i]``).

>>> layer_map({"koqa_layers_from": [0, 2, 4]})
{0: 0, 1: 2, 2: 4}
>>> layer_map({})
{}
>>> shrink_layers("runs/en-ko-d", "runs/fast-init", keep=[0, 2, 4, 6, 8, 10])  # doctest: +SKIP
PosixPath('runs/fast-init')
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from koqa.errors import InvalidInput

CONFIG_KEY = "koqa_layers_from"
_LAYER = re.compile(r"(^|\.)encoder\.layer\.(\d+)\.")


def shrink_layers(src: str | Path, out: str | Path, keep: Sequence[int]) -> Path:
    """Save ``src`` (a QA model or encoder folder) with only the encoder layers ``keep``."""
    import torch
    from transformers import AutoConfig, AutoModelForQuestionAnswering

    from koqa.models.tokenizer_files import copy_tokenizer

    config = AutoConfig.from_pretrained(src)
    n = config.num_hidden_layers
    keep = list(keep)
    if not keep or sorted(set(keep)) != keep or keep[0] < 0 or keep[-1] >= n:
        raise InvalidInput("keep", keep, f"must be increasing layer indices in 0..{n - 1}")
    model = AutoModelForQuestionAnswering.from_pretrained(src, dtype=torch.float32)
    base = getattr(model, model.base_model_prefix)
    base.encoder.layer = torch.nn.ModuleList([base.encoder.layer[i] for i in keep])
    earlier = layer_map(config.to_dict())  # shrinking a shrunk model: map back to the original
    model.config.num_hidden_layers = len(keep)
    setattr(model.config, CONFIG_KEY, [earlier.get(i, i) for i in keep])
    out = Path(out)
    model.save_pretrained(out)
    copy_tokenizer(src, out)
    return out


def layer_map(config: dict) -> dict[int, int]:
    """Student layer → original layer, from a shrunk model's config (empty when not shrunk)."""
    return dict(enumerate(config.get(CONFIG_KEY) or []))


def original_name(name: str, mapping: dict[int, int]) -> str:
    """The tensor name in the unshrunk model: ``encoder.layer.1.x`` → ``encoder.layer.2.x``."""
    if not mapping:
        return name
    return _LAYER.sub(lambda m: f"{m.group(1)}encoder.layer.{mapping[int(m.group(2))]}.", name, count=1)
