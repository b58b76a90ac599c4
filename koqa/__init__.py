"""koqa — Korean document question answering.

Heavy parts (torch, transformers, FAISS) load lazily: ``import koqa`` is cheap.
"""

from koqa.errors import IndexMismatch, InvalidInput, KoqaError, ModelUnavailable, NotFound
from koqa.types import Answer, Document, Hit, Passage

__version__ = "0.1.0"

__all__ = [
    "Answer", "Document", "Hit", "Passage",
    "KoqaError", "InvalidInput", "NotFound", "ModelUnavailable", "IndexMismatch",
    "Corpus", "QAPipeline",
]


def __getattr__(name: str):
    if name == "QAPipeline":
        from koqa.pipeline import QAPipeline

        return QAPipeline
    if name == "Corpus":
        from koqa.pipeline.corpus import Corpus

        return Corpus
    raise AttributeError(name)
