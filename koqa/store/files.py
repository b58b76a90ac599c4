"""Crash-safe file replacement: write a temp file beside the target, fsync, rename.

A reader (or a process restarted after ``kill -9``) sees either the old file or the new
one, never a half-written one; leftover ``*.tmp-*`` files are removed by :func:`clean_temp`.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "x.bin"
>>> atomic_write(p, lambda f: f.write(b"ok")); p.read_bytes()
b'ok'
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import BinaryIO, Callable

TEMP_MARK = ".tmp-"


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(file)`` on a temp file, then atomically move it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}{TEMP_MARK}{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not supported on this platform
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def clean_temp(folder: Path, older_than_s: float = 300.0) -> list[Path]:
    """Remove temp files a killed writer left behind (old enough not to be in use)."""
    removed = []
    if folder.is_dir():
        now = time.time()
        for p in folder.iterdir():
            if TEMP_MARK in p.name and p.is_file() and now - p.stat().st_mtime >= older_than_s:
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed
