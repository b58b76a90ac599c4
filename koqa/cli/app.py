"""The root Typer app and the one place domain errors become CLI messages."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from typing import Callable, TypeVar

import typer

from koqa.errors import InvalidInput, KoqaError

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


FILTER_HELP = "Only documents whose KEY (doc_id, title, source or a metadata key) is VALUE; repeat to allow more values."


def parse_filters(options: list[str] | None) -> dict[str, list] | None:
    """``["dept=법무", "dept=인사", "year=2024"]`` → ``{"dept": ["법무", "인사"], "year": ["2024", 2024]}``.

    A value that reads as a JSON number or boolean also matches metadata stored as one.
    """
    if not options:
        return None
    filters: dict[str, list] = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key.strip():
            raise InvalidInput("--filter", option, "must be KEY=VALUE, e.g. source=규정.pdf")
        values = filters.setdefault(key.strip(), [])
        values.append(value)
        try:
            parsed = json.loads(value)
        except ValueError:
            continue
        if isinstance(parsed, (int, float, bool)):
            values.append(parsed)
    return filters


def main() -> None:
    # transformers draws a "Loading weights" bar on every model load: noise in a CLI (an explicit setting wins)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # pypdf logs what it repairs or fails on; a failure already shows as that file's "failed:" line
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    app(prog_name="koqa")


if __name__ == "__main__":
    sys.exit(main())
