"""File loaders: .txt .md .html .pdf .docx and JSON-lines → NFC :class:`Document` s.

A file's document id is stable across re-ingests: the user's ``id`` for JSON-lines
records, otherwise a hash of the file's absolute path (so an edited file replaces its
old version). Records without an id get a content hash. A file that cannot be read
raises :class:`LoadError` naming it; directories are walked recursively and only files
with a known suffix are taken from them (hidden files and folders are skipped).

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
>>> _ = p.write_text("한글 문서", encoding="utf-8")
>>> [d.title for d in load_documents([p])]
['a']
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import unicodedata
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from koqa.errors import KoqaError
from koqa.types import Document

SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".jsonl")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# Bounds checked on a .docx before any XML is parsed: a small zip can expand to gigabytes
# (or to millions of empty paragraphs) and cost minutes of CPU and memory to parse.
DOCX_MAX_UNZIPPED = 64 * 1024 * 1024
DOCX_MAX_PARAGRAPHS = 100_000


class LoadError(KoqaError):
    """A file (or a record in it) could not be turned into a document."""

    def __init__(self, source: str, reason: str):
        self.source, self.reason = source, reason
        super().__init__(f"{source}: {reason}")


def normalize_text(text: str) -> str:
    """NFC, ``\\n`` line ends, no control characters: what every stored text looks like."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", unicodedata.normalize("NFC", text))


def content_id(text: str, title: str = "") -> str:
    """A content hash id for documents that come without one."""
    return "h" + hashlib.sha256(f"{title}\x00{text}".encode()).hexdigest()[:16]


def path_id(path: Path) -> str:
    return "f" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]


def make_document(text: str, *, doc_id: str = "", title: str = "", source: str = "",
                  meta: dict[str, Any] | None = None) -> Document:
    """Normalise and validate one document; empty text, text that is not valid Unicode (a lone
    surrogate such as ``"\\ud800"`` from JSON) and an id with ``/`` (it could not be addressed in
    a URL) are a :class:`LoadError`."""
    for name, value in (("text", text), ("title", title), ("id", doc_id),
                        ("meta", json.dumps(meta or {}, ensure_ascii=False))):
        bad = _SURROGATE.search(value)
        if bad:
            raise LoadError(source or doc_id or "document",
                            f"{name} holds a lone surrogate {bad.group()!r} at {bad.start()}: not valid Unicode")
    if "/" in doc_id:
        raise LoadError(source or doc_id, f"id {doc_id!r} must not contain '/'")
    text, title = normalize_text(text).strip("\n"), normalize_text(title).strip()
    if not text.strip():
        raise LoadError(source or doc_id or "document", "no text to index (empty document)")
    return Document(id=doc_id or content_id(text, title), text=text, title=title, source=source, meta=meta or {})


def iter_files(paths: Sequence[Path]) -> Iterator[Path | LoadError]:
    """Files named directly, and known-suffix files under directories; missing paths as errors."""
    for path in paths:
        path = Path(path)
        if path.is_dir():
            for sub in sorted(path.rglob("*")):
                rel = sub.relative_to(path).parts
                if sub.is_file() and sub.suffix.lower() in SUFFIXES and not any(p.startswith(".") for p in rel):
                    yield sub
        elif path.is_file():
            yield path
        elif path.exists():
            yield LoadError(str(path), "not a regular file")
        else:
            yield LoadError(str(path), "no such file or directory")


def load_documents(paths: Sequence[Path]) -> Iterator[Document | LoadError]:
    """Every document under ``paths``; failures come back as :class:`LoadError` values, never raised."""
    for item in iter_files(paths):
        if isinstance(item, LoadError):
            yield item
            continue
        try:
            yield from load_file(item)
        except LoadError as exc:
            yield exc


def load_file(path: Path) -> list[Document | LoadError]:
    """Load one file; raises :class:`LoadError` if it is unusable. JSON-lines records that
    are bad come back as :class:`LoadError` items among the documents."""
    suffix = path.suffix.lower()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoadError(str(path), f"cannot read file ({exc.strerror or exc})") from None
    if suffix == ".jsonl":
        return load_jsonl(path, data)
    loader = _LOADERS.get(suffix, _load_text)
    text, title = loader(path, data)
    # the resolved path: ingesting a folder by a relative and then an absolute path is the same source
    return [make_document(text, doc_id=path_id(path), title=title or path.stem, source=str(path.resolve()),
                          meta={"type": suffix.lstrip(".") or "txt"})]


def load_jsonl(path: Path, data: bytes | None = None) -> list[Document | LoadError]:
    """Each line ``{"id", "title", "text", "meta"}``; a bad line becomes a :class:`LoadError`."""
    raw = _decode(path, path.read_bytes() if data is None else data)
    out: list[Document | LoadError] = []
    for n, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict) or not isinstance(rec.get("text"), str):
                raise LoadError(where, 'expected a JSON object with a string "text"')
            meta = rec.get("meta") or {}
            if not isinstance(meta, dict):
                raise LoadError(where, '"meta" must be a JSON object')
            out.append(make_document(rec["text"], doc_id=str(rec.get("id") or ""), title=str(rec.get("title") or ""),
                                     source=where, meta=meta))
        except json.JSONDecodeError as exc:
            out.append(LoadError(where, f"invalid JSON ({exc.msg})"))
        except LoadError as exc:
            out.append(exc)
    return out


def _decode(path: Path, data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise LoadError(str(path), "binary file (not text)")
    for encoding in ("utf-8-sig", "cp949"):  # cp949: legacy Korean files
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        printable = sum(c.isprintable() or c in "\n\t\r" for c in text[:20000])
        if printable < 0.95 * len(text[:20000]):
            raise LoadError(str(path), "binary file (not text)")
        return text
    raise LoadError(str(path), "not UTF-8 or CP949 text")


def _load_text(path: Path, data: bytes) -> tuple[str, str]:
    return _decode(path, data), ""


def _load_markdown(path: Path, data: bytes) -> tuple[str, str]:
    text = _decode(path, data)
    heading = re.search(r"^#\s+(.+)$", text, flags=re.MULTILINE)
    return text, heading.group(1).strip() if heading else ""


def _load_html(path: Path, data: bytes) -> tuple[str, str]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_decode(path, data), "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(["script", "style", "noscript", "template", "head", "svg"]):
        tag.decompose()
    lines = (re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in soup.get_text("\n").splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip(), title


def _load_pdf(path: Path, data: bytes) -> tuple[str, str]:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise LoadError(str(path), "encrypted PDF")
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
        title = str((reader.metadata or {}).get("/Title") or "")
    except (PyPdfError, ValueError, KeyError, TypeError) as exc:
        raise LoadError(str(path), f"unreadable PDF ({exc})") from None
    text = "\n\n".join(p for p in pages if p)
    if not text:
        raise LoadError(str(path), "PDF has no text layer (scanned images need OCR first)")
    return text, title


def _load_docx(path: Path, data: bytes) -> tuple[str, str]:
    import zipfile

    from docx import Document as Docx
    from lxml import etree

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            unzipped = sum(i.file_size for i in z.infolist())
            if unzipped > DOCX_MAX_UNZIPPED:
                raise LoadError(str(path), f"a .docx that expands to {unzipped:,} bytes (the limit is {DOCX_MAX_UNZIPPED:,})")
            with z.open("word/document.xml") as f:
                paragraphs = sum(chunk.count(b"<w:p>") + chunk.count(b"<w:p ") for chunk in iter(lambda: f.read(1 << 20), b""))
        if paragraphs > DOCX_MAX_PARAGRAPHS:
            raise LoadError(str(path), f"{paragraphs:,} paragraphs (the limit is {DOCX_MAX_PARAGRAPHS:,})")
        # python-docx's parser resolves no entities and keeps libxml2's limits (depth 256, 10 MB text
        # nodes): a hostile document.xml is an XMLSyntaxError, reported as an unreadable file.
        doc = Docx(io.BytesIO(data))
        blocks = [p.text for p in doc.paragraphs if p.text.strip()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, ValueError, EOFError, etree.LxmlError) as exc:
        raise LoadError(str(path), f"unreadable .docx ({type(exc).__name__}: {str(exc)[:200]})") from None
    for table in doc.tables:
        for row in table.rows:
            cells = [c.text.strip() for c in row.cells if c.text.strip()]
            if cells:
                blocks.append(" | ".join(dict.fromkeys(cells)))
    return "\n\n".join(blocks), doc.core_properties.title or ""


_LOADERS: dict[str, Callable[[Path, bytes], tuple[str, str]]] = {
    ".md": _load_markdown, ".markdown": _load_markdown, ".html": _load_html, ".htm": _load_html,
    ".pdf": _load_pdf, ".docx": _load_docx,
}
