"""Hugging Face Hub names (``org/model``): local cache first, never a surprise download.

* Already in the local HF cache (config + weights) → the cached snapshot folder, so
  loading needs no network at all.
* Not cached and offline (``Settings.hub_offline``: ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``) → ModelUnavailable
  that says how to point at a local folder instead.
* Not cached and online → one metadata request checks that the model exists and the hub is
  reachable (no weights are fetched here); the name is returned for ``from_pretrained`` to
  download at load time.  Failure → ModelUnavailable with the same advice.

>>> resolve_hub_name("org/not-cached", offline=True)        # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
koqa.errors.ModelUnavailable: model 'org/not-cached' is not in the local Hugging Face cache ...
"""

from __future__ import annotations

import re
from pathlib import Path
from koqa.errors import ModelUnavailable

HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_WEIGHTS = ("*.safetensors", "pytorch_model*.bin", "*.onnx")


def looks_like_hub_name(name: str) -> bool:
    return bool(HUB_NAME.match(name)) and ".." not in name


def resolve_hub_name(name: str, *, offline: bool, cache_dir: str | Path | None = None) -> str:
    """A local snapshot folder for a cached hub model, else ``name`` if the hub can serve it."""
    cached = cached_snapshot(name, cache_dir)
    if cached is not None:
        return str(cached)
    if offline:
        raise ModelUnavailable(_advice(name, "is not in the local Hugging Face cache and the hub is offline (HF_HUB_OFFLINE)"))
    _probe(name)
    return name


def cached_snapshot(name: str, cache_dir: str | Path | None = None) -> Path | None:
    """The snapshot folder of ``name`` in the HF cache when it holds a config and weights."""
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(name, local_files_only=True, cache_dir=cache_dir))
    except Exception:  # not cached, or not a valid repo id: both mean "not usable offline"
        return None
    has_config = (folder / "config.json").is_file() or (folder / "modules.json").is_file()
    has_weights = any(next(folder.rglob(p), None) for p in _WEIGHTS)
    return folder if has_config and has_weights else None


def _probe(name: str) -> None:
    """Ask the hub for the model's metadata: reachable and existing, or ModelUnavailable."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        HfApi().model_info(name, timeout=10)
    except GatedRepoError:
        raise ModelUnavailable(_advice(name, "is gated on the Hugging Face Hub (log in with `hf auth login`)")) from None
    except RepositoryNotFoundError:
        raise ModelUnavailable(_advice(name, "does not exist on the Hugging Face Hub")) from None
    except Exception as exc:  # connection refused, DNS, timeout, proxy ...
        raise ModelUnavailable(_advice(name, f"cannot be fetched: the Hugging Face Hub is unreachable ({type(exc).__name__})")) from None


def _advice(name: str, problem: str) -> str:
    return (
        f"model {name!r} {problem}. Point at a local folder instead: pass its path "
        "(e.g. --reader /path/to/model, or KOQA_READER / KOQA_EMBEDDER=/path/to/model), "
        f"or download it where there is network (`hf download {name} --local-dir DIR`) and copy DIR here; "
        "built-in models need no network: koqa:e5-small-ko, koqa:reader-small, koqa:reader-fast"
    )
