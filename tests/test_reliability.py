"""Hostile input gets a 4xx naming what is wrong, never a 500 (issue: reliability)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import json
import os
import signal
import time
import zipfile
from pathlib import Path

import httpx
import pytest
from test_api import Q, chunker, make_app, serve_in_thread, store  # noqa: F401  (fixtures)

from koqa.ingest.isolated import ParseLimits, load_files_isolated
from koqa.ingest.loaders import LoadError, load_file, load_jsonl

DOCX_CT = b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">' \
          b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>' \
          b'<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.' \
          b'wordprocessingml.document.main+xml"/></Types>'
DOCX_RELS = b'<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">' \
            b'<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/' \
            b'officeDocument" Target="word/document.xml"/></Relationships>'
W = b'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def docx(document_xml: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", DOCX_CT)
        z.writestr("_rels/.rels", DOCX_RELS)
        z.writestr("word/document.xml", document_xml)
    return buf.getvalue()


def body(inner: bytes) -> bytes:
    return b'<?xml version="1.0"?><w:document ' + W + b"><w:body>" + inner + b"</w:body></w:document>"


HOSTILE_DOCX = {
    "truncated": body(b"<w:p><w:r><w:t>\xed\x95\x9c\xea\xb8\x80</w:t></w:r></w:p>")[:-30],
    "huge text node": body(b"<w:p><w:r><w:t>" + b"a" * (11 * 1024 * 1024) + b"</w:t></w:r></w:p>"),
    "billion laughs": b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                      + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
                                 for i in range(1, 10))
                      + b"]><w:document " + W + b"><w:body><w:p><w:r><w:t>&lol9;</w:t></w:r></w:p></w:body></w:document>",
    "deep nesting": body(b"<w:p>" + b"<w:r>" * 300 + b"<w:t>x</w:t>" + b"</w:r>" * 300 + b"</w:p>"),
    "many paragraphs": body(b"<w:p></w:p>" * 150_000),
}


def test_a_good_docx_still_loads(tmp_path):
    path = tmp_path / "ok.docx"
    path.write_bytes(docx(body(b"<w:p><w:r><w:t>\xed\x95\x9c\xea\xb8\x80 \xeb\xac\xb8\xec\x84\x9c</w:t></w:r></w:p>")))
    assert load_file(path)[0].text == "한글 문서"


@pytest.mark.parametrize("case", sorted(HOSTILE_DOCX))
def test_hostile_docx_is_a_load_error_and_a_422(case, tmp_path, make_app):
    path = tmp_path / "bad.docx"
    path.write_bytes(docx(HOSTILE_DOCX[case]))
    with pytest.raises(LoadError):
        load_file(path)
    with serve_in_thread(make_app()) as url:
        r = httpx.post(url + "/collections/hostile/documents", files=[("files", ("bad.docx", path.read_bytes()))],
                       timeout=60)
        assert r.status_code == 422 and r.json()["error"]["field"] == "files[0]"
        assert "hostile" not in httpx.get(url + "/collections").text  # nothing stored, no collection left


def _multipart(filename: bytes, content: bytes) -> tuple[bytes, str]:
    """A body written by hand: httpx would percent-encode a NUL in the file name; a hostile client does not."""
    body = (b"--B\r\nContent-Disposition: form-data; name=\"files\"; filename=\"" + filename + b"\"\r\n"
            b"Content-Type: text/plain\r\n\r\n" + content + b"\r\n--B--\r\n")
    return body, "multipart/form-data; boundary=B"


@pytest.mark.parametrize("name", ["a\x00.txt", "가" * 90 + ".txt"])
def test_bad_upload_file_names_are_4xx(name, make_app):
    body, ctype = _multipart(name.encode(), "한글 문서".encode())
    with serve_in_thread(make_app()) as url:
        r = httpx.post(url + "/collections/named/documents", content=body, headers={"content-type": ctype})
        assert 400 <= r.status_code < 500 and r.json()["error"]["message"], r.text
        assert "named" not in httpx.get(url + "/collections").text


def test_a_lone_surrogate_record_fails_alone(tmp_path):
    lines = [json.dumps({"id": f"r{i}", "text": f"문서 {i}"}) for i in range(5)]
    lines.insert(2, '{"id": "bad", "text": "깨진 \\ud800 문자"}')
    lines.insert(3, json.dumps({"id": "a/b", "text": "슬래시"}))
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")
    items = load_jsonl(path)
    errors = [i for i in items if isinstance(i, LoadError)]
    assert len(items) - len(errors) == 5
    assert ["lone surrogate" in errors[0].reason, "'/'" in errors[1].reason] == [True, True]


def test_cli_ingest_of_a_file_with_one_bad_record(tmp_path):
    from typer.testing import CliRunner

    from koqa.cli import app

    path = tmp_path / "r.jsonl"
    path.write_text('{"id": "bad", "text": "\\ud800"}\n', encoding="utf-8")
    env = {"KOQA_HOME": str(tmp_path / "home"), "KOQA_EMBEDDER": "fake"}
    out = CliRunner().invoke(app, ["ingest", str(path), "--collection", "fresh"], env=env)
    assert "Traceback" not in out.output and "lone surrogate" in out.output
    listed = CliRunner().invoke(app, ["collections"], env=env)
    assert "fresh" not in listed.output  # the collection this failed ingest created is gone


def test_reader_limits_are_4xx(make_app):
    with serve_in_thread(make_app(max_queue=4)) as url:
        one = {"question": Q, "context": "세종대왕은 훈민정음을 창제하였다."}
        too_many = httpx.post(url + "/models/reader", json={"inputs": [one] * 5})
        assert too_many.status_code == 400 and "at most 4 inputs" in too_many.json()["error"]["message"]
        huge = httpx.post(url + "/models/reader", json={"inputs": {"question": Q, "context": "가" * 20_001}})
        assert huge.status_code == 422
        nul = httpx.post(url + "/ask", json={"question": "세종\x00대왕?", "collection": "history"})
        assert nul.status_code == 400 and nul.json()["error"]["field"] == "question"


def test_max_seq_len_beyond_the_models_positions_is_invalid(tiny_reader):
    from koqa.errors import InvalidInput

    limit = tiny_reader.tokenizer.model_max_length
    with pytest.raises(InvalidInput) as err:
        tiny_reader.read(Q, "세종대왕 " * 400, max_seq_len=limit + 512)
    assert err.value.field == "max_seq_len"


def test_health_detail_needs_the_key_when_one_is_set(make_app):
    with serve_in_thread(make_app(api_key="s3cret")) as url:
        assert httpx.get(url + "/health").json() == {"status": "ok"}
        assert "batcher" in httpx.get(url + "/health", headers={"X-API-Key": "s3cret"}).json()


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


@pytest.mark.parametrize("limits, reason", [(ParseLimits(timeout_s=0.2), "longer than 0.2 s"),
                                            (ParseLimits(memory_bytes=32 * 2**20), "more memory to parse than the limit")])
def test_uploads_parse_in_a_bounded_child_and_the_server_keeps_its_memory(limits, reason, make_app):
    flood = docx(body(b"<w:p><w:r><w:t>" + "가나다라 마바사 ".encode() * 8 + b"</w:t></w:r></w:p>" * 60_000))
    with serve_in_thread(make_app(parse_limits=limits)) as url:
        before = _rss_mib()
        r = httpx.post(url + "/collections/bounded/documents", files=[("files", ("flood.docx", flood))], timeout=60)
        assert r.status_code == 422 and reason in r.json()["error"]["message"], r.text
        assert _rss_mib() - before < 50  # the parse ran (and was stopped) in the child, not here
        assert httpx.get(url + "/health").status_code == 200  # the server goes on serving
        assert "bounded" not in httpx.get(url + "/collections").text


def _children_parsing() -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            pid, ppid = stat.parent.name, stat.read_text().rsplit(")", 1)[1].split()[1]
            if int(ppid) == os.getpid() and b"koqa.ingest.isolated" in (stat.parent / "cmdline").read_bytes():
                found.append(int(pid))
    return found


def test_a_parsing_child_that_dies_is_a_load_error_naming_how(tmp_path):
    # what the kernel's OOM killer does to a child past a cgroup limit: SIGKILL, no Python error
    path = tmp_path / "stalls.txt"
    os.mkfifo(path)  # reading it blocks (no writer ever comes), so the child is alive when it is killed
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        parse = pool.submit(load_files_isolated, [path], ParseLimits(timeout_s=30))
        deadline = time.monotonic() + 30
        while not (pids := _children_parsing()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert pids, "the parsing child never started"
        os.kill(pids[0], signal.SIGKILL)
        with pytest.raises(LoadError, match="crashed: killed by SIGKILL") as err:
            parse.result(timeout=30)
    assert err.value.source == "stalls.txt"


def test_isolated_parsing_matches_in_process_parsing(tmp_path):
    (tmp_path / "a.md").write_text("# 제목\n\n본문 문장.", encoding="utf-8")
    (tmp_path / "b.jsonl").write_text('{"id": "x", "text": "좋은 기록"}\n{"id": "y", "text": "\\ud800"}\n')
    isolated = load_files_isolated([tmp_path / "a.md", tmp_path / "b.jsonl"])
    here = [load_file(tmp_path / "a.md"), load_file(tmp_path / "b.jsonl")]
    assert isolated[0] == here[0]
    assert isolated[1][0] == here[1][0] and isinstance(isolated[1][1], LoadError)
    assert isolated[1][1].reason == here[1][1].reason


def test_files_only_count_in_the_files_field(make_app):
    with serve_in_thread(make_app()) as url:
        r = httpx.post(url + "/collections/field/documents", files=[("other", ("a.txt", "한글 문서".encode()))])
        assert r.status_code == 422 and r.json()["error"]["field"] == "files", r.text
