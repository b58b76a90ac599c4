"""``koqa models export``: a plain Hugging Face checkpoint + an Inference Endpoints handler that decodes as koqa does."""

from __future__ import annotations

import ast
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from koqa.cli import app
from koqa.errors import InvalidInput
from koqa.integrations.hf_export import EXPORT_FILES, export_reader

CONTEXT = ("훈민정음은 조선의 제4대 왕인 세종대왕이 1443년에 창제하고 1446년에 반포한 문자이다. "
           "처음 만들어진 훈민정음은 자음 17자와 모음 11자, 모두 28자로 이루어져 있었다. ") * 6
QUESTIONS = ["훈민정음을 창제한 왕은?", "훈민정음은 몇 자로 이루어졌는가?", "훈민정음이 반포된 해는?"]


def _handler_class(folder: Path, monkeypatch):
    """``handler.EndpointHandler`` loaded from the folder the way the runtime does, with koqa unimportable."""
    monkeypatch.setitem(sys.modules, "koqa", None)  # any `import koqa...` in the handler now fails
    spec = importlib.util.spec_from_file_location("handler", folder / "handler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.EndpointHandler


def _koqa_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    return [m for m in names if m.split(".")[0] == "koqa"]


@pytest.fixture(scope="module")
def exported(tiny_model_dir, tmp_path_factory) -> Path:
    return export_reader(str(tiny_model_dir), tmp_path_factory.mktemp("export") / "out").out_dir


@pytest.fixture(scope="module")
def handler(exported):
    with pytest.MonkeyPatch.context() as monkeypatch:
        return _handler_class(exported, monkeypatch)(str(exported))


def test_export_is_a_plain_checkpoint(exported):
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    names = {p.name for p in exported.iterdir()}
    assert set(EXPORT_FILES) | {"config.json", "model.safetensors", "tokenizer.json"} <= names
    assert AutoTokenizer.from_pretrained(exported).is_fast
    assert type(AutoModelForQuestionAnswering.from_pretrained(exported)).__name__ == "ElectraForQuestionAnswering"
    for name in ("handler.py", "spans.py", "particles.py"):
        assert not _koqa_imports(exported / name), name
    card = (exported / "README.md").read_text()
    assert card.startswith("---\nlanguage: ko") and "EndpointHandler" in card
    assert "kiwipiepy" in (exported / "requirements.txt").read_text()


@pytest.mark.parametrize("options", [{"top_k": 3}, {"top_k": 2, "handle_impossible_answer": True},
                                     {"top_k": 1, "max_seq_len": 64, "doc_stride": 16, "trim_particles": False}])
def test_handler_decodes_as_the_koqa_reader(handler, tiny_reader, options):
    koqa_options = {k: v for k, v in options.items() if k != "top_k"}
    expected = [tiny_reader.read(q, CONTEXT, top_k=options["top_k"], **koqa_options) for q in QUESTIONS]
    for q, spans in zip(QUESTIONS, expected):
        got = handler({"inputs": {"question": q, "context": CONTEXT}, "parameters": options})
        assert [(a["answer"], a["start"], a["end"]) for a in got] == [(s.text, s.start, s.end) for s in spans]
        assert [a["score"] for a in got] == pytest.approx([s.prob for s in spans], rel=1e-4)
    batch = handler({"inputs": [{"question": q, "context": CONTEXT} for q in QUESTIONS], "parameters": options})
    assert [[a["answer"] for a in one] for one in batch] == [[s.text for s in spans] for spans in expected]


@pytest.mark.parametrize("data, message", [
    ({"question": "왕은?"}, "inputs"),
    ({"inputs": {"question": "왕은?"}}, "inputs must be"),
    ({"inputs": {"question": " ", "context": "세종"}}, "must not be empty"),
    ({"inputs": {"question": "왕은?", "context": "세종"}, "parameters": {"top_k": 0}}, "parameters.top_k"),
    ({"inputs": {"question": "왕은?", "context": "세종"}, "parameters": {"max_seq_len": 100000}}, "max_seq_len"),
    ({"inputs": {"question": "왕은?", "context": "세종"}, "parameters": {"temperature": 1}}, "temperature"),
])
def test_handler_refuses_bad_requests_naming_them(handler, data, message):
    with pytest.raises(ValueError, match=message):
        handler(data)


def test_export_refuses_bad_names_and_folders(exported, tiny_model_dir, tmp_path):
    with pytest.raises(InvalidInput, match="--out"):
        export_reader(str(tiny_model_dir), exported)
    encoder = tmp_path / "encoder"
    shutil.copytree(tiny_model_dir, encoder)
    config = json.loads((encoder / "config.json").read_text())
    (encoder / "config.json").write_text(json.dumps({**config, "architectures": ["ElectraModel"]}))
    out = CliRunner().invoke(app, ["models", "export", str(encoder), "--out", str(tmp_path / "x")])
    assert out.exit_code == 2 and "not a question-answering checkpoint" in out.output
    assert "Traceback" not in out.output and not (tmp_path / "x").exists()


# the Endpoints runtime: a fresh interpreter in which koqa cannot be imported
RUNTIME = """
import json, sys
sys.modules["koqa"] = None
sys.path.insert(0, sys.argv[1])
from handler import EndpointHandler
handler = EndpointHandler(path=sys.argv[1])
out = [handler({"inputs": {"question": p["question"], "context": p["context"]}, "parameters": {"top_k": 1}})
       for p in map(json.loads, open(sys.argv[2], encoding="utf-8"))]
print(json.dumps(out, ensure_ascii=False))
"""


@pytest.mark.slow
def test_exported_reader_small_answers_as_koqa_read(shared_dir, tmp_path):
    from koqa.training.korquad import read_train_spec

    data = shared_dir / "data" / "korquad" / "KorQuAD_v1.0_dev.json.gz"
    if not data.is_file():
        pytest.skip(f"needs KorQuAD dev at {data}")
    out = CliRunner().invoke(app, ["models", "export", "koqa:reader-small", "--out", str(tmp_path / "export")])
    assert out.exit_code == 0, out.output
    examples, _ = read_train_spec(f"korquad-eval:{data}:50")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"question": e.question, "context": e.context}, ensure_ascii=False) + "\n"
                             for e in examples), encoding="utf-8")
    read = CliRunner().invoke(app, ["read", "--pairs", str(pairs), "--reader", "koqa:reader-small",
                                    "--backend", "torch-fp32"])
    assert read.exit_code == 0, read.output
    koqa_answers = [json.loads(line)["answers"][0] for line in read.stdout.splitlines() if line.strip()]
    runtime = subprocess.run([sys.executable, "-c", RUNTIME, str(tmp_path / "export"), str(pairs)],
                             capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert runtime.returncode == 0, runtime.stderr[-2000:]
    handler_answers = [one[0] for one in json.loads(runtime.stdout)]
    assert len(handler_answers) == len(koqa_answers) == 50
    assert [(a["answer"], a["start"], a["end"]) for a in handler_answers] == \
           [(a["text"], a["start"], a["end"]) for a in koqa_answers]
    assert [a["score"] for a in handler_answers] == pytest.approx([a["prob"] for a in koqa_answers], rel=1e-3)


def test_the_cli_and_the_integrations_package_import_no_framework():
    code = ("import sys, koqa, koqa.integrations, koqa.integrations.hf_export, koqa.cli; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'haystack', 'langchain_core', 'torch'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr[-2000:]
