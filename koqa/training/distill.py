"""Knowledge distillation for ``koqa train --teacher``: a frozen teacher QA model with the
student's tokenizer, and the loss that mixes the gold span with the teacher's soft start/end
distributions (and, optionally, its hidden states).

Hidden-state distillation maps student layer *i* to teacher layer ``(i + 1)·T/S``, so a 6-layer
student of a 12-layer teacher learns layers 2, 4, …, 12.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from koqa.errors import InvalidInput

if TYPE_CHECKING:
    from koqa.training.config import TrainConfig


def load_teacher(cfg: TrainConfig, student, device: str, settings=None):
    """The frozen teacher model, or None; refuses one whose vocabulary differs from the student's."""
    if not cfg.teacher:
        return None
    from koqa.reader.loading import load_qa_model, resolve

    teacher = load_qa_model(resolve(cfg.teacher, settings), "float32", device).eval()
    if teacher.config.vocab_size != student.config.vocab_size:
        raise InvalidInput("teacher", cfg.teacher, f"has a vocabulary of {teacher.config.vocab_size} pieces, "
                           f"the student {student.config.vocab_size}: they must share the tokenizer")
    if cfg.distill_hidden and teacher.config.hidden_size != student.config.hidden_size:
        raise InvalidInput("teacher", cfg.teacher, f"has hidden size {teacher.config.hidden_size}, the student "
                           f"{student.config.hidden_size}: hidden-state distillation needs them equal")
    for p in teacher.parameters():
        p.requires_grad = False
    return teacher


def distilled_loss(output, teacher, inputs: dict, cfg: TrainConfig):
    """(1 − w)·gold-span loss + w·T²·KL(teacher ‖ student) over start and end positions (padding masked),
    plus ``distill_hidden`` × the mean (1 − cosine) between mapped student and teacher hidden states."""
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        t_out = teacher(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                        output_hidden_states=bool(cfg.distill_hidden),
                        **{k: inputs[k] for k in ("token_type_ids",) if k in inputs})
    pad = inputs["attention_mask"] == 0
    hidden = 0.0
    if cfg.distill_hidden:
        s_h, t_h = output.hidden_states[1:], t_out.hidden_states  # t_h[0]: the embeddings
        real = ~pad
        for i, h in enumerate(s_h):
            target = t_h[(i + 1) * (len(t_h) - 1) // len(s_h)]
            hidden = hidden + (1 - F.cosine_similarity(h.float()[real], target.float()[real], dim=-1)).mean() / len(s_h)
    temp, soft = cfg.distill_temperature, 0.0
    for s_logits, t_logits in ((output.start_logits, t_out.start_logits), (output.end_logits, t_out.end_logits)):
        s_logp = F.log_softmax(s_logits.float().masked_fill(pad, -1e4) / temp, dim=-1)
        t_p = F.softmax(t_logits.float().masked_fill(pad, -1e4) / temp, dim=-1)
        soft = soft + F.kl_div(s_logp, t_p, reduction="batchmean") * temp**2 / 2
    return (1 - cfg.distill_weight) * output.loss + cfg.distill_weight * soft + cfg.distill_hidden * hidden


def replace_context_tokens(input_ids, batch, rate: float):
    """``input_ids`` with a ``rate`` of each window's context tokens outside its gold span replaced by
    context tokens drawn from the whole batch (the global torch RNG, so a resumed run draws the same).

    Word-replacement augmentation, as TinyBERT uses for distillation: a teacher labels the perturbed
    window, so the student sees new inputs every epoch with consistent targets; the gold span itself
    is never touched, so its label stays right without a teacher too. Question, special and padding
    tokens stay as they are.
    """
    import torch

    ctx = torch.zeros_like(input_ids, dtype=torch.bool)
    for r, f in enumerate(batch):
        ctx[r, : len(f.window)] = torch.from_numpy(f.window.is_context)
        if f.end:
            ctx[r, f.start : f.end + 1] = False
    pick = ctx & (torch.rand(input_ids.shape, device=input_ids.device) < rate)
    if not pick.any():  # also when there is no context at all: pick lies inside ctx
        return input_ids
    pool = input_ids[ctx]
    out = input_ids.clone()
    out[pick] = pool[torch.randint(len(pool), (int(pick.sum()),), device=input_ids.device)]
    return out
