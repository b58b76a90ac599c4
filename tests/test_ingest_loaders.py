"""Loaders: every supported format, NFC, stable ids, and clear failures."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from koqa.ingest.loaders import LoadError, load_documents, load_file, make_document, normalize_text


def _docs(paths):
    items = list(load_documents(paths))
    return [i for i in items if not isinstance(i, LoadError)], [i for i in items if isinstance(i, LoadError)]


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF with ``text`` (ASCII) in Helvetica, with a correct xref table."""
    stream = f"BT /F1 18 Tf 20 100 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 400 200] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def test_text_and_markdown_are_nfc_with_titles(tmp_path):
    decomposed = unicodedata.normalize("NFD", "한글은 세종대왕이 만들었다.")
    (tmp_path / "a.txt").write_text(decomposed + "\r\n둘째 줄", encoding="utf-8")
    (tmp_path / "b.md").write_text("# 훈민정음\n\n백성을 가르치는 바른 소리", encoding="utf-8")
    docs, errors = _docs([tmp_path])
    assert not errors
    by_title = {d.title: d for d in docs}
    assert by_title["a"].text == "한글은 세종대왕이 만들었다.\n둘째 줄"
    assert unicodedata.is_normalized("NFC", by_title["a"].text)
    assert by_title["훈민정음"].source.endswith("b.md")


def test_ids_are_stable_across_reloads_and_follow_the_path(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("첫 버전", encoding="utf-8")
    first = load_file(p)[0]
    p.write_text("둘째 버전", encoding="utf-8")
    second = load_file(p)[0]
    assert first.id == second.id and first.text != second.text


def test_html_keeps_visible_text_only(tmp_path):
    (tmp_path / "p.html").write_text(
        "<html><head><title>한글날</title><style>p{color:red}</style><script>var secret=1;</script></head>"
        "<body><h1>한글날</h1><p>한글날은 10월 9일이다.</p><noscript>켜 주세요</noscript></body></html>",
        encoding="utf-8")
    doc = load_file(tmp_path / "p.html")[0]
    assert doc.title == "한글날"
    assert "10월 9일" in doc.text and "secret" not in doc.text and "color" not in doc.text and "켜 주세요" not in doc.text


def test_pdf_text_layer_and_a_pdf_without_one(tmp_path):
    from pypdf import PdfWriter

    (tmp_path / "t.pdf").write_bytes(minimal_pdf("Hello PDF world"))
    assert "Hello PDF world" in load_file(tmp_path / "t.pdf")[0].text
    w = PdfWriter()
    w.add_blank_page(200, 200)
    with open(tmp_path / "scan.pdf", "wb") as f:
        w.write(f)
    with pytest.raises(LoadError, match="no text layer"):
        load_file(tmp_path / "scan.pdf")
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    with pytest.raises(LoadError):
        load_file(tmp_path / "broken.pdf")


def test_docx_paragraphs_and_tables(tmp_path):
    import docx

    d = docx.Document()
    d.core_properties.title = "이순신"
    d.add_paragraph("이순신은 조선의 무신이다.")
    table = d.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "출생", "1545년"
    d.save(tmp_path / "y.docx")
    doc = load_file(tmp_path / "y.docx")[0]
    assert doc.title == "이순신" and "조선의 무신" in doc.text and "출생 | 1545년" in doc.text


def test_jsonl_records_and_bad_lines(tmp_path):
    (tmp_path / "r.jsonl").write_text(
        '{"id": "x1", "title": "독도", "text": "독도는 동해에 있다.", "meta": {"lang": "ko"}}\n'
        "\n"
        '{"title": "아이디 없음", "text": "내용"}\n'
        '{"text": 3}\n'
        "not json\n", encoding="utf-8")
    items = load_file(tmp_path / "r.jsonl")
    docs = [i for i in items if not isinstance(i, LoadError)]
    errors = [i for i in items if isinstance(i, LoadError)]
    assert [d.id for d in docs][0] == "x1" and docs[0].meta == {"lang": "ko"}
    assert docs[1].id.startswith("h")  # content hash
    assert [e.source.rsplit(":", 1)[1] for e in errors] == ["4", "5"]


def test_failures_are_values_not_exceptions(tmp_path):
    (tmp_path / "bin.txt").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "empty.txt").write_text("   \n", encoding="utf-8")
    (tmp_path / "ok.txt").write_text("정상 문서", encoding="utf-8")
    docs, errors = _docs([tmp_path / "bin.txt", tmp_path / "empty.txt", tmp_path / "missing.txt", tmp_path / "ok.txt"])
    assert [d.text for d in docs] == ["정상 문서"]
    reasons = {Path(e.source).name: e.reason for e in errors}
    assert "binary" in reasons["bin.txt"] and "empty" in reasons["empty.txt"]
    assert "no such file" in reasons["missing.txt"]


def test_cp949_text_is_decoded(tmp_path):
    (tmp_path / "old.txt").write_bytes("옛날 인코딩 문서입니다.".encode("cp949"))
    assert load_file(tmp_path / "old.txt")[0].text == "옛날 인코딩 문서입니다."


def test_directories_are_walked_recursively_skipping_hidden_and_unknown(tmp_path):
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "sub" / "deeper" / "x.txt").write_text("깊은 문서", encoding="utf-8")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "y.txt").write_text("숨은 문서", encoding="utf-8")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    docs, errors = _docs([tmp_path])
    assert [d.text for d in docs] == ["깊은 문서"] and not errors


def test_make_document_and_normalize():
    assert normalize_text("a\r\nb\x00c") == "a\nbc"
    with pytest.raises(LoadError):
        make_document("  ")
    assert make_document("본문", title="제목").id == make_document("본문", title="제목").id
