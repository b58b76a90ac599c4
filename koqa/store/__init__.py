"""Storage: the SQL truth (SQLAlchemy), per-collection FAISS and BM25 index files, the write path
and the consistency doctor. The query path (hybrid retrieval, fusion) lives in :mod:`koqa.retriever`."""
