"""Build-once model folders: atomic (temp dir + rename) and safe when processes race.

A folder is *current* when its ``koqa-build.json`` stamp carries the expected ``key`` (for
example the hash of the delta it was assembled from); anything else is rebuilt.  Builders
write into a fresh temporary directory on the same filesystem; only a finished folder is
renamed into place, so a reader never sees a half-written model.  An exclusive
``fcntl.flock`` on ``.<folder>.lock`` makes concurrent starters wait for the one that
builds and then reuse its result.

>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> build = lambda d: (d / "config.json").write_text("{}")
>>> path = ensure_built(root, "tiny", "v1", build)
>>> path.name, is_current(path, "v1"), is_current(path, "v2")
('tiny', True, False)
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

STAMP = "koqa-build.json"


def read_stamp(path: Path) -> dict | None:
    """The build stamp of a cached folder, or None when it is absent or unreadable."""
    try:
        return json.loads((Path(path) / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_current(path: Path, key: str) -> bool:
    stamp = read_stamp(path)
    return stamp is not None and stamp.get("key") == key


def folder_size(path: Path) -> int:
    """Total bytes of the files under ``path`` (0 when absent)."""
    path = Path(path)
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0


@contextmanager
def build_lock(root: Path, folder: str) -> Iterator[None]:
    """Hold the exclusive build lock of ``root/folder`` (blocks while another process has it)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{folder}.lock", "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def ensure_built(root: str | Path, folder: str, key: str, build: Callable[[Path], None], info: dict | None = None) -> Path:
    """``root/folder`` built by ``build(tmp_dir)`` unless already current for ``key``.

    ``info`` (provenance) is stored in the stamp beside ``key``.  Returns the folder path.
    """
    root = Path(root)
    dest = root / folder
    if is_current(dest, key):
        return dest  # fast path: no lock once built
    with build_lock(root, folder):
        if is_current(dest, key):  # another process finished while we waited
            return dest
        _remove_leftovers(root, folder)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder}.tmp-", dir=root))
        try:
            build(tmp)
            stamp = {"key": key, "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **(info or {})}
            (tmp / STAMP).write_text(json.dumps(stamp, indent=2, ensure_ascii=False), encoding="utf-8")
            _share(tmp)
            _swap_in(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return dest


def _share(folder: Path) -> None:
    """World-readable like any model download: mkdtemp (0700) and some writers (0600) are private."""
    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)


def _swap_in(tmp: Path, dest: Path) -> None:
    """Rename the finished ``tmp`` to ``dest``; a stale ``dest`` is moved aside first."""
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.rename(dest, old)
        os.rename(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, dest)


def _remove_leftovers(root: Path, folder: str) -> None:
    """Temp/old dirs of ``folder`` left by a killed builder (safe: we hold its lock)."""
    for pattern in (f".{folder}.tmp-*", f".{folder}.old-*"):
        for stale in root.glob(pattern):
            shutil.rmtree(stale, ignore_errors=True)
