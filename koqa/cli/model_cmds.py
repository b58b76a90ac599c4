"""``koqa models``: list, prepare and resolve models; make and apply reader deltas."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from koqa.cli.app import app, handles_errors
from koqa.settings import Settings

models_app = typer.Typer(help="Built-in models and the model cache.", no_args_is_help=False)
app.add_typer(models_app, name="models")


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _print_status(statuses, as_json: bool, settings: Settings) -> None:
    from koqa.reader.backend import resolve_backend

    choice = resolve_backend(settings.reader_backend)  # the backend every reader would load on here
    if as_json:
        rows = [{
            "name": s.model.name, "path": str(s.path), "built": s.built, "size_bytes": s.size_bytes,
            "available": s.available, "description": s.model.description,
            "provenance": s.model.provenance, "licence": s.model.licence, "note": s.note,
            **({"backend": choice.backend, "backend_reason": choice.reason} if s.model.delta else {}),
        } for s in statuses]
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for s in statuses:
        state = f"built, {_mb(s.size_bytes)}" if s.built else ("not built" if s.available else "not available")
        typer.echo(f"{s.model.name}  [{state}]")
        typer.echo(f"  path:       {s.path}")
        typer.echo(f"  model:      {s.model.description}")
        typer.echo(f"  provenance: {s.model.provenance}")
        typer.echo(f"  licence:    {s.model.licence}")
        if s.note:
            typer.echo(f"  note:       {s.note}")
    typer.echo(f"reader backend: {choice.backend} ({choice.reason})")


@models_app.callback(invoke_without_command=True)
@handles_errors
def models(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the built-in models: cache path, whether built, size, provenance, licence."""
    if ctx.invoked_subcommand is None:
        from koqa.models.registry import list_models

        settings = Settings.from_env()
        _print_status(list_models(settings), as_json, settings)


@models_app.command()
@handles_errors
def prepare(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Build the model cache now (the base encoder; the reader when its delta exists)."""
    from koqa.models.registry import prepare_models

    settings = Settings.from_env()
    _print_status(prepare_models(settings), as_json, settings)


@models_app.command()
@handles_errors
def resolve(name: str = typer.Argument(..., help="koqa: name, folder or hub name.")) -> None:
    """Print the local folder for NAME (builds a built-in on first use)."""
    from koqa.models.registry import resolve_model

    typer.echo(resolve_model(name, Settings.from_env()))


@models_app.command("make-delta")
@handles_errors
def make_delta_cmd(
    tuned: Path = typer.Option(..., help="Fine-tuned model folder (safetensors)."),
    out: Path = typer.Option(..., help="Delta folder to write (e.g. models/koqa-reader-small)."),
    base: str = typer.Option("koqa:e5-small-ko", help="Base it was tuned from: koqa: name or folder."),
    bits: int = typer.Option(8, help="8, or 4 for half the size of changed full-rank matrices (more error)."),
    int4_within: float = typer.Option(None, help="With 8 bits: int4 for each matrix whose max weight error stays "
                                                 "within this (mixed precision, e.g. 1e-4)."),
) -> None:
    """Store TUNED as a small delta on BASE (int8/int4/low-rank deltas, exact small tensors)."""
    from koqa.models.delta import make_delta
    from koqa.models.registry import resolve_model

    report = make_delta(resolve_model(base, Settings.from_env()), tuned, out,
                        base_name=base if base.startswith("koqa:") else str(base), bits=bits,
                        int4_within=int4_within)
    typer.echo(f"wrote {report.out_dir}: {_mb(report.size_bytes)}, max |weight error| "
               f"{report.max_abs_error:.3g}, tensors by codec {report.methods}")


@models_app.command("apply-delta")
@handles_errors
def apply_delta_cmd(
    delta: Path = typer.Option(..., help="Delta folder (delta.json, delta.safetensors, config.json)."),
    out: Path = typer.Option(..., help="Folder to write the assembled model into."),
    base: str = typer.Option("koqa:e5-small-ko", help="Base: koqa: name or folder."),
) -> None:
    """Assemble a delta onto its base into a normal Hugging Face folder."""
    from koqa.models.delta import apply_delta
    from koqa.models.registry import resolve_model

    typer.echo(apply_delta(resolve_model(base, Settings.from_env()), delta, out))


@models_app.command()
@handles_errors
def shrink(
    source: str = typer.Argument(..., help="QA model or encoder: koqa: name or folder."),
    keep: str = typer.Option(..., help="Encoder layers to keep, 0-based, e.g. 0,2,4,6,8,10."),
    out: Path = typer.Option(..., help="Folder to write the shallower model into."),
) -> None:
    """Copy SOURCE with only some encoder layers (start of a fast reader: then `koqa train --teacher`)."""
    from koqa.errors import InvalidInput
    from koqa.models.registry import resolve_model
    from koqa.models.shrink import shrink_layers

    try:
        layers = [int(x) for x in keep.split(",")]
    except ValueError:
        raise InvalidInput("keep", keep, "must be comma-separated layer numbers, e.g. 0,2,4") from None
    typer.echo(shrink_layers(resolve_model(source, Settings.from_env()), out, layers))


@models_app.command()
@handles_errors
def average(
    a: str = typer.Argument(..., help="Model A: koqa: name or folder."),
    b: str = typer.Argument(..., help="Model B (same architecture): koqa: name or folder."),
    out: Path = typer.Option(..., help="Folder to write the averaged model into."),
    weight: float = typer.Option(0.5, help="Share of A: WEIGHT * A + (1 - WEIGHT) * B."),
) -> None:
    """Average the weights of two fine-tunes of one model (a model soup)."""
    from koqa.models.average import average_folders
    from koqa.models.registry import resolve_model

    settings = Settings.from_env()
    typer.echo(average_folders(resolve_model(a, settings), resolve_model(b, settings), out, weight=weight))


@models_app.command("export")
@handles_errors
def export_cmd(
    name: str = typer.Argument(..., help="QA reader: koqa: name, folder or hub name."),
    out: Path = typer.Option(..., help="New or empty folder to write the checkpoint and handler into."),
    trim_particles: bool = typer.Option(True, help="The handler cuts trailing Korean particles by default."),
) -> None:
    """Write NAME as a plain Hugging Face QA checkpoint with an Inference Endpoints handler.py."""
    from koqa.integrations.hf_export import export_reader
    from koqa.reader.qa import ReaderConfig

    report = export_reader(name, out, settings=Settings.from_env(), config=ReaderConfig(trim_particles=trim_particles))
    typer.echo(f"wrote {report.out_dir}: {', '.join(report.files)}")
