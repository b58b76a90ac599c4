"""Model names → local folders. (Placeholder; the models issue replaces this.)

Every model option accepts a built-in name (``koqa:...``), a local folder, or a hub name.
"""

from __future__ import annotations

from pathlib import Path

_SHARED = Path(__file__).resolve().parents[3] / "shared" / "models"


def resolve_model(name: str) -> str:
    """Return something ``from_pretrained`` accepts for ``name``."""
    if name == "koqa:e5-small-ko":
        return str(_SHARED / "me5-small-ko")
    return name
