"""The ``koqa`` command line: a thin shell over the Python API.

Each role registers its commands in its own module; domain errors
(:class:`koqa.errors.KoqaError`) become a one-line message and exit code 2 here.
"""

from __future__ import annotations

import importlib

from koqa.cli.app import app, main

# Command modules register themselves on ``app`` when imported.
for _name in ("reader_cmds", "store_cmds", "model_cmds", "serve_cmds"):
    try:
        importlib.import_module(f"koqa.cli.{_name}")
    except ModuleNotFoundError as exc:  # a role not built yet
        if exc.name != f"koqa.cli.{_name}":
            raise

__all__ = ["app", "main"]
