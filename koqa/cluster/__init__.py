"""Cluster mode: PostgreSQL + pgvector as the one store, Ray Serve for the reader, Ray Data for ingest.

Everything here needs the ``cluster`` extra (``pip install 'koqa[cluster]'``); the embedded
default (SQLite + FAISS + bm25s) never imports it.
"""
