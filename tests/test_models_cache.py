"""Build-once cache folders: atomic rename, one builder when processes race, crash recovery."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path

import pytest

from koqa.models.cache import ensure_built, is_current, read_stamp

_fork = mp.get_context("fork")


def _slow_builder(log: Path):
    def build(tmp: Path) -> None:
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        (tmp / "part1").write_text("a")
        time.sleep(0.5)  # the racer must not see this half-built folder
        (tmp / "config.json").write_text("{}")

    return build


def _race(root: str, log: str, barrier, results) -> None:
    barrier.wait()
    path = ensure_built(Path(root), "tiny", "k1", _slow_builder(Path(log)))
    complete = (path / "part1").exists() and (path / "config.json").exists()
    results.put((str(path), complete))


def test_two_processes_build_once_and_both_get_the_complete_folder(tmp_path):
    barrier, results = _fork.Barrier(2), _fork.Queue()
    procs = [_fork.Process(target=_race, args=(str(tmp_path), str(tmp_path / "log"), barrier, results)) for _ in range(2)]
    for p in procs:
        p.start()
    got = [results.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert len((tmp_path / "log").read_text().split()) == 1  # one builder, the loser reused its result
    assert got[0] == got[1] == (str(tmp_path / "tiny"), True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tiny.lock", "log", "tiny"]


def _crash(root: str) -> None:
    def build(tmp: Path) -> None:
        (tmp / "half").write_text("x")
        os._exit(3)  # killed mid-build: no cleanup runs

    ensure_built(Path(root), "tiny", "k1", build)


def test_a_killed_builder_leaves_no_folder_and_the_next_build_cleans_up(tmp_path):
    p = _fork.Process(target=_crash, args=(str(tmp_path),))
    p.start()
    p.join(timeout=30)
    assert p.exitcode == 3
    assert not (tmp_path / "tiny").exists()
    assert list(tmp_path.glob(".tiny.tmp-*"))  # the leftover of the crash
    path = ensure_built(tmp_path, "tiny", "k1", lambda d: (d / "config.json").write_text("{}"))
    assert is_current(path, "k1") and not list(tmp_path.glob(".tiny.tmp-*"))


def test_a_failing_builder_leaves_nothing_and_releases_the_lock(tmp_path):
    def broken(tmp: Path) -> None:
        (tmp / "half").write_text("x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        ensure_built(tmp_path, "tiny", "k1", broken)
    assert not (tmp_path / "tiny").exists() and not list(tmp_path.glob(".tiny.tmp-*"))
    assert is_current(ensure_built(tmp_path, "tiny", "k1", lambda d: None), "k1")


def test_a_new_key_rebuilds_in_place_and_a_current_folder_is_reused(tmp_path):
    calls = []

    def build(version):
        def run(tmp: Path) -> None:
            calls.append(version)
            (tmp / "v").write_text(version)

        return run

    path = ensure_built(tmp_path, "m", "k1", build("1"), info={"licence": "MIT"})
    assert ensure_built(tmp_path, "m", "k1", build("again")) == path and calls == ["1"]
    assert read_stamp(path)["licence"] == "MIT"
    ensure_built(tmp_path, "m", "k2", build("2"))
    assert (path / "v").read_text() == "2" and calls == ["1", "2"]
    assert not list(tmp_path.glob(".m.old-*"))
    assert oct(path.stat().st_mode & 0o777) == "0o755"
