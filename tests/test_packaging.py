"""The wheel a user installs answers out of the box: reader deltas and calibrations are inside (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out)], check=True, capture_output=True)
    return next(out.glob("koqa-*.whl"))


def test_wheel_holds_the_package_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for reader in ("koqa-reader-small", "koqa-reader-fast"):
        for f in ("delta.json", "delta.safetensors", "config.json", "README.md"):
            assert f"koqa/models/builtin/{reader}/{f}" in names
    assert "koqa/pipeline/calibrations/koqa-reader-small.json" in names
    assert "koqa/api/static/index.html" in names
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "Requires-Dist: torch<3,>=2.6" in meta and "peft" not in meta


def test_the_installed_wheel_reads_korean_outside_the_checkout(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    code = ("import json, koqa; from koqa.reader import QAReader; from koqa.settings import Settings; "
            "r = QAReader.from_pretrained('koqa:reader-small', settings=Settings.from_env()); "
            "s = r.read('훈민정음을 만든 왕은?', '훈민정음은 1443년 세종대왕이 창제하였다.')[0]; "
            "print(json.dumps({'file': koqa.__file__, 'text': s.text, 'start': s.start}))")
    env = {**os.environ, "PYTHONPATH": str(target), "KOQA_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    env.pop("KOQA_BUILTIN_MODELS", None)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["file"].startswith(str(target)) and (got["text"], got["start"]) == ("세종대왕", 12)
