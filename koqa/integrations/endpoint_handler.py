"""Hugging Face Inference Endpoints custom handler of a koqa reader (written as ``handler.py`` by
``koqa models export``; it never imports koqa, only torch, transformers, numpy and, to trim
Korean particles, kiwipiepy).

Request, as the Endpoints runtime passes it::

    {"inputs": {"question": "훈민정음을 만든 왕은?", "context": "세종대왕은 1443년 ..."},
     "parameters": {"top_k": 1, "max_answer_len": 15, "handle_impossible_answer": false,
                    "max_seq_len": 384, "doc_stride": 128, "max_question_len": 96, "trim_particles": true}}

Answer: ``[{"answer": "세종대왕", "score": 0.93, "start": 0, "end": 4}, ...]`` best first
(``inputs`` may also be a list of such pairs: then one list per pair). Decoding is koqa's:
the context is cut into windows of ``max_seq_len`` tokens overlapping by ``doc_stride``;
each window's logits are anchored at its own [CLS] ("no answer") logits; start and end
probabilities are one softmax over the context tokens of all windows; spans up to
``max_answer_len`` tokens are ranked by start + end logit (``spans.py``, copied from koqa);
``score`` is start × end probability; with ``handle_impossible_answer`` the empty answer
competes with probability from the [CLS] token; trailing particles (은/는/에서 …) are cut
(``particles.py``, copied from koqa). Defaults come from ``koqa-decoding.json``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForQuestionAnswering, AutoTokenizer

HERE = Path(__file__).resolve().parent
INT_PARAMETERS = ("top_k", "max_answer_len", "max_seq_len", "doc_stride", "max_question_len")


def _sibling(name: str):
    """A module shipped beside this file (the Endpoints runtime does not put this folder on sys.path)."""
    spec = importlib.util.spec_from_file_location(f"_koqa_export_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module



class EndpointHandler:
    def __init__(self, path: str = ""):
        folder = Path(path or HERE)
        self.spans = _sibling("spans")  # loaded here, not at import: in koqa's own tree this is a template
        self.defaults = json.loads((folder / "koqa-decoding.json").read_text(encoding="utf-8"))
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = AutoModelForQuestionAnswering.from_pretrained(folder, dtype=torch.float32).to(self.device).eval()
        self.batch_size = 64 if self.device == "cuda" else 4
        self.trimmer = self._load_trimmer() if self.defaults.get("trim_particles") else None

    @staticmethod
    def _load_trimmer():
        try:
            return _sibling("particles").ParticleTrimmer.load()
        except ImportError as exc:
            raise ImportError("trimming Korean particles needs kiwipiepy: pip install -r requirements.txt "
                              "(or set trim_particles false in koqa-decoding.json)") from exc

    def __call__(self, data: dict[str, Any]) -> list:
        if not isinstance(data, dict) or "inputs" not in data:
            raise ValueError(f'the request must be {{"inputs": {{"question", "context"}}}}, got {str(data)[:80]!r}')
        options = self._options(data.get("parameters") or {})
        inputs = data["inputs"]
        if isinstance(inputs, list):
            return [self._answer(_pair(item), options) for item in inputs]
        return self._answer(_pair(inputs), options)

    def _options(self, parameters: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(parameters, dict):
            raise ValueError(f"parameters must be an object, got {parameters!r}")
        unknown = set(parameters) - set(INT_PARAMETERS) - {"handle_impossible_answer", "trim_particles"}
        if unknown:
            raise ValueError(f"unknown parameters {sorted(unknown)}")
        options = {**self.defaults, **parameters}
        for name in INT_PARAMETERS:
            value = options[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "doc_stride" else 1):
                raise ValueError(f"parameters.{name} must be a positive integer, got {value!r}")
        if not 32 <= options["max_seq_len"] <= self.tokenizer.model_max_length:
            raise ValueError(f"parameters.max_seq_len must be in 32..{self.tokenizer.model_max_length}, "
                             f"got {options['max_seq_len']!r}")
        if options["trim_particles"] and self.trimmer is None:
            self.trimmer = self._load_trimmer()
        return options

    def _answer(self, pair: tuple[str, str], o: dict[str, Any]) -> list[dict[str, Any]]:
        question, context = pair
        windows = self._windows(question, context, o)
        starts, ends = self._logits(windows)
        return self._decode(context, windows, starts, ends, o)

    # ------------------------------------------------------------------ windows and the model

    def _windows(self, question: str, context: str, o: dict[str, Any]) -> list[dict[str, np.ndarray]]:
        tok, max_len = self.tokenizer, o["max_seq_len"]
        q_len = len(tok(question, add_special_tokens=False)["input_ids"])
        limit = min(o["max_question_len"], max_len // 2)
        if q_len > limit:
            raise ValueError(f"the question is {q_len} tokens long; at most {limit} are allowed")
        stride = min(o["doc_stride"], max_len // 2, max(0, (max_len - q_len - 4) // 2))
        right = tok.padding_side == "right"
        enc = tok(question if right else context, context if right else question,
                  truncation="only_second" if right else "only_first", max_length=max_len, stride=stride,
                  return_overflowing_tokens=True, return_offsets_mapping=True, padding=False,
                  return_token_type_ids="token_type_ids" in tok.model_input_names)
        windows = []
        for i, ids in enumerate(enc["input_ids"]):
            is_ctx = np.array([s == (1 if right else 0) for s in enc.sequence_ids(i)])
            offsets = np.asarray(enc["offset_mapping"][i], dtype=np.int64).reshape(-1, 2)
            offsets[~is_ctx] = 0
            w = {"input_ids": np.asarray(ids, dtype=np.int64), "offsets": offsets, "is_context": is_ctx}
            if "token_type_ids" in enc:
                w["token_type_ids"] = np.asarray(enc["token_type_ids"][i], dtype=np.int64)
            # a window whose context tokens all lie inside the previous one adds nothing
            if windows and is_ctx.any() and offsets[is_ctx][:, 1].max() <= windows[-1]["offsets"][:, 1].max():
                continue
            windows.append(w)
        return windows

    def _logits(self, windows: list[dict[str, np.ndarray]]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        order = sorted(range(len(windows)), key=lambda i: -len(windows[i]["input_ids"]))
        starts, ends = [None] * len(windows), [None] * len(windows)
        for b in range(0, len(order), self.batch_size):
            idx = order[b:b + self.batch_size]
            n = max(len(windows[i]["input_ids"]) for i in idx)
            batch = {"input_ids": np.full((len(idx), n), pad, np.int64), "attention_mask": np.zeros((len(idx), n), np.int64)}
            if "token_type_ids" in windows[0]:
                batch["token_type_ids"] = np.zeros((len(idx), n), np.int64)
            for r, i in enumerate(idx):
                k = len(windows[i]["input_ids"])
                batch["input_ids"][r, :k], batch["attention_mask"][r, :k] = windows[i]["input_ids"], 1
                if "token_type_ids" in batch:
                    batch["token_type_ids"][r, :k] = windows[i]["token_type_ids"]
            with torch.inference_mode():
                out = self.model(**{k: torch.from_numpy(v).to(self.device) for k, v in batch.items()})
            s, e = out.start_logits.float().cpu().numpy(), out.end_logits.float().cpu().numpy()
            for r, i in enumerate(idx):
                k = len(windows[i]["input_ids"])
                starts[i], ends[i] = s[r, :k], e[r, :k]
        return starts, ends

    # ------------------------------------------------------------------ decoding

    def _decode(self, context: str, windows, starts, ends, o: dict[str, Any]) -> list[dict[str, Any]]:
        t = max(len(w["input_ids"]) for w in windows)
        start = np.full((len(windows), t), -1e9, np.float32)
        end = np.full((len(windows), t), -1e9, np.float32)
        mask = np.zeros((len(windows), t), bool)
        for r, w in enumerate(windows):
            k = len(w["input_ids"])
            # relative to the window's own [CLS]: log-odds against "not in this window", comparable across windows
            start[r, :k], end[r, :k] = starts[r] - starts[r][0], ends[r] - ends[r][0]
            mask[r, :k] = w["is_context"]
        norm_mask = mask.copy()
        if o["handle_impossible_answer"]:
            norm_mask[0, 0] = True
        log_ps, log_pe = self.spans.joint_log_softmax(start, norm_mask), self.spans.joint_log_softmax(end, norm_mask)
        trimmer = self.trimmer if o["trim_particles"] else None
        found, seen = [], set()
        for r, s, e, _score in self.spans.top_spans(start, end, mask, o["max_answer_len"], o["top_k"] * 4 + len(windows)):
            cs, ce = int(windows[r]["offsets"][s, 0]), int(windows[r]["offsets"][e, 1])
            if trimmer is not None:
                ce = trimmer.span_end(context, cs, ce)
            text = context[cs:ce]
            if not text.strip():
                continue
            cs += len(text) - len(text.lstrip())
            ce = cs + len(text.strip())
            if (cs, ce) in seen:
                continue
            seen.add((cs, ce))
            prob = float(np.exp(log_ps[r, s])) * float(np.exp(log_pe[r, e]))
            found.append({"answer": context[cs:ce], "score": prob, "start": cs, "end": ce})
            if len(found) == o["top_k"]:
                break
        if o["handle_impossible_answer"]:
            null = float(np.exp(log_ps[0, 0])) * float(np.exp(log_pe[0, 0]))
            found = sorted(found + [{"answer": "", "score": null, "start": 0, "end": 0}], key=lambda a: -a["score"])
        return found[:o["top_k"]]


def _pair(item: Any) -> tuple[str, str]:
    if not isinstance(item, dict) or not isinstance(item.get("question"), str) or not isinstance(item.get("context"), str):
        raise ValueError(f'inputs must be {{"question": str, "context": str}}, got {str(item)[:80]!r}')
    if not item["question"].strip() or not item["context"].strip():
        raise ValueError("inputs.question and inputs.context must not be empty")
    return item["question"], item["context"]
