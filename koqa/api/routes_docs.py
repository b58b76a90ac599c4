"""Collection and document routes: list, upload (files or JSON records), get, delete."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import tempfile
from dataclasses import replace
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from koqa.api.state import ServerState, state
from koqa.api.schemas import CollectionOut, DocumentIn, DocumentOut, ErrorBody, IngestRequest, IngestResponse
from koqa.errors import NotFound
from koqa.types import Document

router = APIRouter(tags=["documents"])

ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 404, 413, 415, 422)}
MAX_FILES = 1000

_UPLOAD_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object", "required": ["documents"], "properties": {
                "documents": {"type": "array", "items": DocumentIn.model_json_schema()}}}},
            "multipart/form-data": {"schema": {"type": "object", "properties": {
                "files": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
        },
    }
}


@router.get("/collections", response_model=list[CollectionOut], responses=ERRORS)
async def list_collections(st: ServerState = Depends(state)) -> list[CollectionOut]:
    names = await st.in_store(st.store.collections)
    return [CollectionOut(name=name) for name in names]


@router.delete("/collections/{name}", responses=ERRORS)
async def delete_collection(name: str, st: ServerState = Depends(state)) -> dict:
    await st.in_store(st.store.delete_collection, name, write=True)
    return {"deleted": name}


@router.post("/collections/{name}/documents", response_model=IngestResponse, responses=ERRORS,
             openapi_extra=_UPLOAD_DOC)
async def add_documents(name: str, request: Request, st: ServerState = Depends(state)) -> IngestResponse:
    """Ingest JSON records (``{"documents": [{"text", "id"?, "title"?, ...}]}``) or uploaded files
    (multipart field ``files``; .txt .md .html .pdf .docx .jsonl). All or nothing: a bad record or file
    rejects the whole request before anything is stored. The collection is created if needed."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        docs = _records(await request.body())
        report = await st.in_store(_ingest, st.store, name, docs, write=True)
        ids = [d.id for d in docs]
    elif ctype == "multipart/form-data":
        async with request.form(max_files=MAX_FILES, max_fields=MAX_FILES) as form:
            uploads = [v for v in form.getlist("files") if isinstance(v, UploadFile)]
            report, ids = await _ingest_uploads(st, name, uploads)
    else:
        raise HTTPException(415, {"field": "content-type",
                                  "message": f"send application/json or multipart/form-data, not {ctype or 'nothing'!r}"})
    return IngestResponse(collection=name, documents=ids, **report.counts,
                          errors=[{"source": src, "reason": why} for src, why in report.failed])


@router.get("/collections/{name}/documents", response_model=list[DocumentOut], responses=ERRORS)
async def list_documents(name: str, limit: int | None = Query(None, ge=1, le=1_000_000),
                         offset: int = Query(0, ge=0, le=2**31), st: ServerState = Depends(state)) -> list[DocumentOut]:
    """The documents of a collection ordered by id: all, or ``limit`` of them from ``offset`` (a page)."""
    docs = await st.in_store(st.store.list_documents, name, limit=limit, offset=offset)
    return [DocumentOut(id=d.id, title=d.title, source=d.source, meta=dict(d.meta)) for d in docs]


@router.get("/collections/{name}/documents/{doc_id}", response_model=DocumentOut, responses=ERRORS)
async def get_document(name: str, doc_id: str, st: ServerState = Depends(state)) -> DocumentOut:
    d = await st.in_store(st.store.get_document, name, doc_id)
    return DocumentOut(id=d.id, title=d.title, source=d.source, text=d.text, meta=dict(d.meta))


@router.delete("/collections/{name}/documents/{doc_id}", responses=ERRORS)
async def delete_document(name: str, doc_id: str, st: ServerState = Depends(state)) -> dict:
    await st.in_store(st.store.delete_document, name, doc_id, write=True)
    return {"deleted": doc_id, "collection": name}


def _records(raw: bytes) -> list[Document]:
    from koqa.ingest.loaders import LoadError, make_document

    try:
        req = IngestRequest.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None
    docs = []
    for i, r in enumerate(req.documents):
        try:
            docs.append(make_document(r.text, doc_id=r.id or "", title=r.title, source=r.source, meta=r.meta))
        except LoadError as exc:
            raise HTTPException(422, {"field": f"documents[{i}].text", "message": exc.reason}) from None
    return _unique(docs, "documents")


async def _ingest_uploads(st: ServerState, name: str, uploads: list[UploadFile]):
    """Every file is parsed before anything is stored, so one bad file rejects the request whole."""
    from koqa.ingest.loaders import SUFFIXES

    if not uploads:
        raise HTTPException(422, {"field": "files", "message": "no file in the multipart field 'files'"})
    for i, up in enumerate(uploads):
        fname = up.filename or ""
        base = Path(fname).name
        if "\x00" in fname or not base:
            raise HTTPException(422, {"field": f"files[{i}]", "message": f"file name {fname!r} is not a plain file name"})
        size = len(base.encode("utf-8", "surrogatepass"))
        if size > 255:
            raise HTTPException(422, {"field": f"files[{i}]",
                                      "message": f"file name of {size} bytes: at most 255 are allowed"})
        if Path(fname).suffix.lower() not in SUFFIXES:
            raise HTTPException(415, {"field": f"files[{i}]", "message":
                                      f"unsupported file type {up.filename!r}; supported: {' '.join(SUFFIXES)}"})
    with tempfile.TemporaryDirectory(prefix="koqa-upload-") as tmp:
        files = []
        for i, up in enumerate(uploads):
            path = Path(tmp) / str(i) / Path(up.filename).name  # the bare name, never a client's path
            path.parent.mkdir()
            path.write_bytes(await up.read())
            files.append(path)
        docs = await asyncio.to_thread(_parse_uploads, name, files, st.config.parse_limits)
    report = await st.in_store(_ingest, st.store, name, docs, write=True)
    return report, [d.id for d in docs]


def _parse_uploads(collection: str, files: list[Path], limits) -> list[Document]:
    from koqa.ingest.isolated import load_files_isolated
    from koqa.ingest.loaders import LoadError

    try:
        parsed = load_files_isolated(files, limits)
    except LoadError as exc:
        field = "files" if len(files) > 1 else "files[0]"
        raise HTTPException(422, {"field": field, "message": exc.reason}) from None
    docs: list[Document] = []
    for i, (path, items) in enumerate(zip(files, parsed)):
        for item in items:
            if isinstance(item, LoadError):
                where = item.source.replace(str(path), path.name)
                raise HTTPException(422, {"field": f"files[{i}]", "message": f"{where}: {item.reason}"})
            if path.suffix.lower() != ".jsonl":  # a file's id follows its name, so re-uploading replaces it
                item = replace(item, id=_upload_id(collection, path.name), source=path.name)
            docs.append(item)
    return _unique(docs, "files")


def _upload_id(collection: str, filename: str) -> str:
    return "u" + hashlib.sha256(f"{collection}\x00{filename}".encode()).hexdigest()[:16]


def _unique(docs: list[Document], field: str) -> list[Document]:
    seen: set[str] = set()
    for doc in docs:
        if doc.id in seen:
            raise HTTPException(422, {"field": field, "message": f"document id {doc.id!r} appears twice in one request"})
        seen.add(doc.id)
    return docs


def _ingest(store, name: str, docs: list[Document]):
    """Ingest all of ``docs`` or none: on an error, what this call added is removed again."""
    created = name not in store.collections()
    before = set() if created else {d.id for d in store.list_documents(name)}
    try:
        return store.ingest(name, docs, create=True)
    except Exception:
        if created and name in store.collections():
            store.delete_collection(name)
        elif not created:
            for doc in docs:
                if doc.id not in before:
                    with contextlib.suppress(NotFound):
                        store.delete_document(name, doc.id)
        raise
