"""A koqa reader as a plain Hugging Face QA checkpoint plus an Inference Endpoints custom handler.

``koqa models export koqa:reader-small --out DIR`` writes into DIR:

* ``config.json``, the ``*.safetensors`` weights and the tokenizer files: what
  ``transformers.AutoModelForQuestionAnswering`` / ``AutoTokenizer`` load, without koqa;
* ``README.md``: the model card (Hub metadata, the reader's own card, how to call it);
* ``handler.py``: the Endpoints contract (``EndpointHandler(path)``; ``__call__({"inputs":
  {"question", "context"}, "parameters": {...}}) -> [{"answer", "score", "start", "end"}]``)
  with koqa's decoding, from :mod:`koqa.integrations.endpoint_handler`;
* ``spans.py`` and ``particles.py``: koqa's span scoring and Korean particle trimming,
  copied as they are (they import nothing of koqa), so the handler decodes as ``koqa read``;
* ``koqa-decoding.json``: the decoding defaults; ``requirements.txt``: what the handler adds
  to the Endpoints image (kiwipiepy for the particles).

>>> EXPORT_FILES
('handler.py', 'spans.py', 'particles.py', 'koqa-decoding.json', 'requirements.txt', 'README.md')
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from koqa.errors import InvalidInput, ModelUnavailable
from koqa.reader.qa import ReaderConfig
from koqa.settings import Settings

EXPORT_FILES = ("handler.py", "spans.py", "particles.py", "koqa-decoding.json", "requirements.txt", "README.md")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                   "sentencepiece.bpe.model", "spiece.model", "added_tokens.json")
_KOQA = Path(__file__).resolve().parents[1]
# the handler's own sources, copied into the export: each must stand without koqa
_COPIED = {"handler.py": _KOQA / "integrations" / "endpoint_handler.py", "spans.py": _KOQA / "reader" / "spans.py",
           "particles.py": _KOQA / "text" / "particles.py"}
REQUIREMENTS = "# torch comes with the Endpoints image\ntransformers>=5.2,<6\nnumpy>=1.26\nkiwipiepy>=0.20\n"


@dataclass(frozen=True)
class Export:
    """What ``export_reader`` wrote: the folder and its file names."""

    out_dir: Path
    files: tuple[str, ...]


def export_reader(name: str, out: str | Path, *, settings: Settings | None = None,
                  config: ReaderConfig = ReaderConfig()) -> Export:
    """Write reader ``name`` (koqa: name, folder or hub name) as a plain checkpoint + handler into ``out``.

    ``out`` must be new or empty. InvalidInput when ``name`` is not a question-answering
    checkpoint; ModelUnavailable when it has no safetensors weights or no fast tokenizer.
    """
    from koqa.models.registry import resolve_model

    src = Path(resolve_model(name, settings or Settings()))
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidInput("--out", str(out), "must be a new or empty folder")
    model_files = _model_files(name, src)
    out.mkdir(parents=True, exist_ok=True)
    for f in model_files:
        shutil.copy2(f, out / f.name)
    for target, source in _COPIED.items():
        text = source.read_text(encoding="utf-8")
        if re.search(r"^\s*(from|import) koqa\b", text, re.M):
            raise ModelUnavailable(f"{source} imports koqa; the exported handler must stand alone")
        (out / target).write_text(text, encoding="utf-8")
    decoding = {"max_seq_len": config.max_seq_len, "doc_stride": config.doc_stride,
                "max_question_len": config.max_question_len, "max_answer_len": config.max_answer_len,
                "top_k": 1, "handle_impossible_answer": False, "trim_particles": config.trim_particles}
    (out / "koqa-decoding.json").write_text(json.dumps(decoding, indent=2) + "\n", encoding="utf-8")
    (out / "requirements.txt").write_text(REQUIREMENTS, encoding="utf-8")
    (out / "README.md").write_text(model_card(name, src), encoding="utf-8")
    return Export(out, tuple(sorted(p.name for p in out.iterdir())))


def _model_files(name: str, src: Path) -> list[Path]:
    try:
        archs = json.loads((src / "config.json").read_text(encoding="utf-8")).get("architectures") or []
    except (OSError, ValueError):
        raise ModelUnavailable(f"{src} has no readable config.json") from None
    if not any(a.endswith("ForQuestionAnswering") for a in archs):
        raise InvalidInput("NAME", name, f"is not a question-answering checkpoint (architectures: {archs})")
    weights = sorted(src.glob("*.safetensors")) + sorted(src.glob("model.safetensors.index.json"))
    if not weights:
        raise ModelUnavailable(f"{src} has no safetensors weights; save the model with save_pretrained first")
    if not (src / "tokenizer.json").is_file():
        raise ModelUnavailable(f"{src} has no tokenizer.json: the reader needs a fast tokenizer (offset mappings)")
    return [src / "config.json", *weights, *[src / f for f in TOKENIZER_FILES if (src / f).is_file()]]


def model_card(name: str, src: Path) -> str:
    """The exported README: Hub metadata, the reader's own card (when it has one) and how to call it."""
    own = (src / "README.md").read_text(encoding="utf-8") if (src / "README.md").is_file() else f"# {name}\n"
    front = "" if own.startswith("---") else ("---\nlanguage: ko\nlibrary_name: transformers\n"
                                              "pipeline_tag: question-answering\ntags:\n- koqa\n- extractive-qa\n---\n\n")
    usage = f"""

## Using this export (written by `koqa models export {name}`)

A plain Hugging Face checkpoint: `AutoModelForQuestionAnswering.from_pretrained(this_folder)`
and `AutoTokenizer.from_pretrained(this_folder)` load it without koqa.

`handler.py` is a Hugging Face Inference Endpoints custom handler with koqa's decoding
(windows with stride, spans anchored at each window's [CLS], joint start/end softmax,
Korean particle trimming; defaults in `koqa-decoding.json`, extra packages in `requirements.txt`):

```python
from handler import EndpointHandler
handler = EndpointHandler(".")
handler({{"inputs": {{"question": "훈민정음을 만든 왕은?", "context": "세종대왕은 1443년 훈민정음을 창제하였다."}},
         "parameters": {{"top_k": 1}}}})
# [{{"answer": "세종대왕", "score": ..., "start": 0, "end": 4}}]
```

Parameters: `top_k`, `max_answer_len` (tokens), `handle_impossible_answer` (the empty answer
competes), `max_seq_len`, `doc_stride`, `max_question_len`, `trim_particles`.
"""
    return front + own.rstrip() + "\n" + usage
