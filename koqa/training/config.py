"""What one training run does (``koqa train``): the frozen options of :func:`koqa.training.train.train`.

Its own module so that the trainer and the distillation loss both read it from below.

>>> cfg = TrainConfig(base="koqa:e5-small-ko", train=("korquad-train:dev.json.gz",), out="runs/x")
>>> cfg.max_seq_len, cfg.doc_stride
(256, 128)
>>> TrainConfig(base="b", train=(), out="o", precision="fp8")
Traceback (most recent call last):
...
koqa.errors.InvalidInput: precision: must be auto, fp32 or bf16 (got 'fp8')
"""

from __future__ import annotations

from dataclasses import dataclass, field

from koqa.errors import InvalidInput


@dataclass(frozen=True)
class TrainConfig:
    base: str
    train: tuple[str, ...]
    out: str
    eval: str | None = None
    epochs: float = 2.0
    lr: float = 5e-5
    batch_size: int = 16
    warmup: float = 0.1
    weight_decay: float = 0.01
    max_seq_len: int = 256
    doc_stride: int = 128
    seed: int = 42
    freeze_embeddings: bool = False
    freeze_layers: int = 0
    checkpoint_every: int = 100
    max_steps: int | None = None
    threads: int | None = None
    # fraction of questions also trained on a context without their answer (see features.add_distractors)
    distractors: float = 0.0
    # knowledge distillation: a QA model with the same tokenizer whose soft start/end
    # distributions the student also learns (weight of that loss; softmax temperature)
    teacher: str | None = None
    distill_weight: float = 0.5
    distill_temperature: float = 2.0
    # weight of a cosine loss pulling student layer i's output to the teacher's layer (i+1)·T/S
    distill_hidden: float = 0.0
    # fraction of each window's context tokens outside the gold span replaced, every step anew,
    # by tokens drawn from the same batch (see distill.replace_context_tokens)
    augment: float = 0.0
    # "auto": bf16 autocast on CUDA and on CPUs with native bf16 arithmetic (AVX512-BF16 or AMX,
    # about 1.7x faster per step there), fp32 elsewhere; weights and optimiser stay fp32 either way
    precision: str = "auto"
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if not 0.0 <= self.distill_weight <= 1.0:
            raise InvalidInput("distill_weight", self.distill_weight, "must be between 0 and 1")
        if self.distill_temperature <= 0:
            raise InvalidInput("distill_temperature", self.distill_temperature, "must be positive")
        if self.distill_hidden < 0:
            raise InvalidInput("distill_hidden", self.distill_hidden, "must be 0 or more")
        if not 0.0 <= self.augment < 1.0:
            raise InvalidInput("augment", self.augment, "must be at least 0 and below 1")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise InvalidInput("precision", self.precision, "must be auto, fp32 or bf16")
