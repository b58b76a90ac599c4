"""Parse untrusted files in a child process with a memory and a time limit.

A hostile file (a zip bomb that slips under the size checks, a PDF whose parser loops)
then costs one short-lived process, never the server: the child's memory goes back to
the system when it exits, and a parse past ``timeout_s`` is killed.  Used by the HTTP
upload route; the CLI parses in-process (its user owns the files and the machine).

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
>>> _ = p.write_text("한글 문서", encoding="utf-8")
>>> [[d.title for d in docs] for docs in load_files_isolated([p])]
[['a']]
"""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from koqa.ingest.loaders import LoadError, load_file
from koqa.types import Document


@dataclass(frozen=True)
class ParseLimits:
    """Address space (bytes) and wall time (seconds) one parsing child may use."""

    memory_bytes: int = 2 * 1024**3
    timeout_s: float = 120.0


def load_files_isolated(paths: Sequence[Path], limits: ParseLimits = ParseLimits()) -> list[list[Document | LoadError]]:
    """``load_file`` of each path, run in one child process; per file its documents or LoadErrors.

    A file that cannot be read at all comes back as ``[LoadError]`` for that file; a child
    stopped by its limits raises LoadError naming the limit (the whole batch failed).
    """
    # a fresh interpreter (not multiprocessing): nothing of the server is copied or re-imported into it
    cmd = [sys.executable, "-m", "koqa.ingest.isolated", str(limits.memory_bytes), *map(str, paths)]
    where = ", ".join(Path(p).name for p in paths)
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=limits.timeout_s)
    except subprocess.TimeoutExpired:
        raise LoadError(where, f"parsing took longer than {limits.timeout_s:g} s (the limit)") from None
    if done.returncode != 0:
        # a negative code is the signal that ended it: SIGKILL is what the kernel's OOM killer sends
        how = (f"killed by {signal.Signals(-done.returncode).name}" if done.returncode < 0
               else f"exit code {done.returncode}")
        raise LoadError(where, f"the parser stopped (over its {limits.memory_bytes / 2**20:,.0f} MiB memory limit "
                               f"or crashed: {how})")
    return [[_decode(item) for item in items] for items in json.loads(done.stdout)]


def _encode(item: Document | LoadError) -> dict:
    # JSON, not pickle: what comes back from a process that parsed hostile input is data, never code
    if isinstance(item, LoadError):
        return {"error": {"source": item.source, "reason": item.reason}}
    return {"document": dataclasses.asdict(item)}


def _decode(row: dict) -> Document | LoadError:
    return LoadError(**row["error"]) if "error" in row else Document(**row["document"])


def _child(memory_bytes: int, paths: list[str]) -> list[list[Document | LoadError]]:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    out: list[list[Document | LoadError]] = []
    for path in paths:
        try:
            out.append(load_file(Path(path)))
        except LoadError as exc:
            out.append([exc])
        except MemoryError:
            out.append([LoadError(path, "the file needs more memory to parse than the limit allows")])
    return out


if __name__ == "__main__":
    parsed = _child(int(sys.argv[1]), sys.argv[2:])
    sys.stdout.buffer.write(json.dumps([[_encode(item) for item in items] for items in parsed]).encode())
