"""The root Typer app and the one place domain errors become CLI messages."""

from __future__ import annotations

import functools
import logging
import os
import sys
from typing import Callable, TypeVar

import typer

from koqa.errors import KoqaError

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Korean document question answering.")

F = TypeVar("F", bound=Callable)


def handles_errors(fn: F) -> F:
    """Wrap a command so a :class:`KoqaError` prints ``error: ...`` and exits 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except KoqaError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def main() -> None:
    # transformers draws a "Loading weights" bar on every model load: noise in a CLI (an explicit setting wins)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # pypdf logs what it repairs or fails on; a failure already shows as that file's "failed:" line
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    app(prog_name="koqa")


if __name__ == "__main__":
    sys.exit(main())
