"""The tokenizer files of a Hugging Face model folder, which a derived model copies from its source.

A delta's assembled reader and a shrunk model both keep their source's tokenizer; this module
sits below :mod:`koqa.models.delta` and :mod:`koqa.models.shrink` so neither imports the other for it.

>>> import tempfile; from pathlib import Path
>>> src, dst = Path(tempfile.mkdtemp()), Path(tempfile.mkdtemp())
>>> _ = (src / "vocab.txt").write_text("[PAD]\\n"); _ = (src / "model.safetensors").write_bytes(b"")
>>> copy_tokenizer(src, dst)
['vocab.txt']
"""

from __future__ import annotations

import shutil
from pathlib import Path

TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "sentencepiece.bpe.model", "spiece.model", "vocab.txt", "vocab.json", "merges.txt",
)


def copy_tokenizer(src: str | Path, dst: str | Path) -> list[str]:
    """Copy the tokenizer files that ``src`` has into ``dst`` (an existing folder); returns their names."""
    src, dst = Path(src), Path(dst)
    copied = [name for name in TOKENIZER_FILES if (src / name).is_file()]
    for name in copied:
        shutil.copyfile(src / name, dst / name)
    return copied
