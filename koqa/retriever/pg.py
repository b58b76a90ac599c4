"""The query path in cluster mode: dense (pgvector HNSW), BM25 (tsvector + GIN) and hybrid RRF,
each a SQL query over ``passage_vectors`` (see :mod:`koqa.store.pgvector`).

Dense: ``ORDER BY embedding::vector(dim) <#> q`` on the collection's partial HNSW index with
``hnsw.ef_search`` and ``hnsw.iterative_scan = relaxed_order`` (pgvector 0.8), so a filtered
query keeps scanning until it has its rows; a filter matching at most ``exact_below``
passages, or an iterative scan that still came back short, is answered by exact search.
(PostgreSQL estimates any jsonb filter as very selective and would sort every match instead
of scanning HNSW; above ``exact_below`` the HNSW scan is forced for that one query.)

BM25: the same Okapi BM25 as :class:`koqa.store.bm25.BM25Index` (Lucene idf, k1 1.2, b 0.75),
exact: GIN finds the passages holding any query term, term frequencies come from the
tsvector's positions; the collection's size, mean length and each term's document frequency
are read once per collection generation. Filters never change those statistics (as in the
embedded mode).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Mapping, Sequence

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from koqa.errors import InvalidInput
from koqa.retriever.fusion import reciprocal_rank_fusion
from koqa.retriever.hybrid import HybridRetriever, check_request
from koqa.retriever.search import FUSION_DEPTH, RRF_K, Ranked
from koqa.store import sqlstore as sql
from koqa.store.documents import check_embedder
from koqa.store.filters import DOCUMENT_FIELDS
from koqa.store.pgvector import TABLE, filter_sql, tsquery_literal, vector_literal
from koqa.store.schema import IndexMetaRow
from koqa.types import Hit

__all__ = ["PgRetriever"]
K1, B = 1.2, 0.75


class PgRetriever(HybridRetriever):
    """:class:`~koqa.retriever.base.Retriever` over a :class:`~koqa.store.pgvector.PgVectorStore`.

    ``ef_search``: HNSW candidate list (recall vs speed; at least the depth asked for);
    ``exact_below``: filtered queries matching at most this many passages use exact search.
    """

    def __init__(self, store, embedder=None, analyzer=None, *, fusion_weights: Mapping[str, float] | None = None,
                 ef_search: int = 100, exact_below: int = 20_000):
        super().__init__(store, embedder, analyzer, fusion_weights=fusion_weights)
        self.ef_search, self.exact_below = ef_search, exact_below
        self._stats = _LexicalStats()

    def retrieve(self, query: str, k: int = 10, *, collection: str = "default", mode="hybrid",
                 filters: Mapping | None = None, query_vector: np.ndarray | None = None) -> list[Hit]:
        """As :meth:`HybridRetriever.retrieve`, answered by PostgreSQL."""
        filters = check_request(query, k, mode, filters)
        with self.store.session() as s, s.begin():
            coll = sql.get_collection(s, collection)
            meta = s.get(IndexMetaRow, coll.id)
            params: dict = {}
            where = f"collection_id = {int(coll.id)}"
            if filters:
                _check_keys(s, coll, filters)
                where += " AND " + filter_sql(filters, params)
            qvec = None
            if mode != "bm25" and meta.dim:
                if self.embedder is None:
                    raise InvalidInput("mode", mode, "needs an embedder; open the store with one or use mode='bm25'")
                check_embedder(coll.name, meta, self.embedder.name, self.embedder.dim)
                qvec = self.embedder.embed_queries([query])[0] if query_vector is None else query_vector
            terms = self.analyzer.terms(query) if mode != "dense" else []
            depth = max(k, FUSION_DEPTH) if mode == "hybrid" else k
            dense = self._dense(s, meta.dim, where, params, qvec, depth, bool(filters)) if qvec is not None else []
            idf = self._stats.idf(s, coll.id, coll.generation, terms) if terms else {}
            bm25 = _bm25(s, where, params, idf, depth) if idf else []
            ranked = self._fuse(s, meta.dim, qvec, idf, dense, bm25, k, mode, bool(terms))
            passages = self.store.passages(s, coll.id, [r.passage_id for r in ranked])
        return [Hit(passages[r.passage_id], r.score, r.scores, r.ranks) for r in ranked if r.passage_id in passages]

    def _dense(self, s: Session, dim: int, where: str, params: dict, qvec, depth: int, filtered: bool):
        params = {**params, "q": vector_literal(qvec), "depth": depth}
        dist = f"(embedding::vector({int(dim)})) <#> CAST(:q AS vector({int(dim)}))"
        matching = s.scalar(text(f"SELECT count(*) FROM {TABLE} WHERE {where}"), params) if filtered else None
        if matching == 0:
            return []
        if matching is None or matching > self.exact_below:
            # jsonb filters are estimated as very selective, so the planner would sort every match;
            # past exact_below matches the HNSW scan (filtering as it goes) is what we want
            force = "on" if matching is None else "off"
            s.execute(text("SELECT set_config('hnsw.ef_search', :ef, true), "
                           "set_config('hnsw.iterative_scan', 'relaxed_order', true), "
                           "set_config('enable_bitmapscan', :f, true), set_config('enable_seqscan', :f, true), "
                           "set_config('enable_sort', :f, true)"),
                      {"ef": str(min(1000, max(self.ef_search, depth))), "f": force})
            # relaxed_order may return rows slightly out of order: re-sort the materialised few
            rows = s.execute(text(f"WITH c AS MATERIALIZED (SELECT passage_id, {dist} AS d FROM {TABLE} "
                                  f"WHERE {where} ORDER BY d LIMIT :depth) "
                                  "SELECT passage_id, d FROM c ORDER BY d, passage_id"), params).all()
            s.execute(text("SELECT set_config('enable_bitmapscan', 'on', true), set_config('enable_seqscan', "
                           "'on', true), set_config('enable_sort', 'on', true)"))  # the BM25 query needs them
            if matching is None or len(rows) >= min(depth, matching):
                return [(r.passage_id, -float(r.d)) for r in rows]
        rows = s.execute(text(f"WITH m AS MATERIALIZED (SELECT passage_id, embedding FROM {TABLE} WHERE {where}) "
                              f"SELECT passage_id, {dist} AS d FROM m ORDER BY d, passage_id LIMIT :depth"),
                         params).all()
        return [(r.passage_id, -float(r.d)) for r in rows]

    def _fuse(self, s, dim, qvec, idf, dense, bm25, k: int, mode: str, with_terms: bool) -> list[Ranked]:
        rankings = {"dense": [i for i, _ in dense], "bm25": [i for i, _ in bm25]}
        if mode == "hybrid":
            order = [(pid, sc) for pid, sc, _ in reciprocal_rank_fusion(rankings, k=RRF_K, limit=k,
                                                                          weights=self.fusion_weights)]
        else:
            order = (dense if mode == "dense" else bm25)[:k]
        ids = [pid for pid, _ in order]
        dense_of, bm25_of = dict(dense), dict(bm25)
        if qvec is not None and (lack := [p for p in ids if p not in dense_of]):
            dense_of.update(_dense_scores(s, dim, qvec, lack))
        if idf and (lack := [p for p in ids if p not in bm25_of]):
            bm25_of.update(_bm25(s, "passage_id = ANY(:ids)", {"ids": lack}, idf, len(lack)))
        rank_of = {name: {p: r for r, p in enumerate(r_ids, 1)} for name, r_ids in rankings.items()}
        out = []
        for pid, score in order:
            scores = {"dense": dense_of[pid]} if pid in dense_of else {}
            if with_terms:
                scores["bm25"] = bm25_of.get(pid, 0.0)
            if mode == "hybrid":
                scores["hybrid"] = score
            out.append(Ranked(pid, float(score), scores, {n: r[pid] for n, r in rank_of.items() if pid in r}))
        return out


def _dense_scores(s: Session, dim: int, qvec, ids: Sequence[int]) -> dict[int, float]:
    rows = s.execute(text(f"SELECT passage_id, -((embedding::vector({int(dim)})) <#> CAST(:q AS vector({int(dim)}))) "
                          f"AS score FROM {TABLE} WHERE passage_id = ANY(:ids)"),
                     {"q": vector_literal(qvec), "ids": list(ids)}).all()
    return {r.passage_id: float(r.score) for r in rows}


def _bm25(s: Session, where: str, params: dict, idf: "_Idf", depth: int) -> list[tuple[int, float]]:
    """The ``depth`` best passages with a positive BM25 score among those ``where`` selects."""
    terms = list(idf.weights)
    params = {**params, "terms": terms, "idfs": [idf.weights[t] for t in terms], "tsq": tsquery_literal(terms),
              "avg": idf.avg, "depth": depth}
    rows = s.execute(text(
        f"WITH q AS (SELECT * FROM unnest(CAST(:terms AS text[]), CAST(:idfs AS float8[])) AS q(term, idf)) "
        f"SELECT v.passage_id, sum(q.idf * u.tf * {K1 + 1} / (u.tf + {K1} * (1 - {B} + {B} * v.n_terms / :avg))) "
        f"AS score FROM {TABLE} v CROSS JOIN LATERAL "
        f"(SELECT lexeme, cardinality(positions) AS tf FROM unnest(v.lex)) u JOIN q ON q.term = u.lexeme "
        f"WHERE {where} AND v.lex @@ CAST(:tsq AS tsquery) "
        f"GROUP BY v.passage_id ORDER BY score DESC, v.passage_id LIMIT :depth"), params).all()
    return [(r.passage_id, float(r.score)) for r in rows if r.score > 0]


class _Idf:
    def __init__(self, weights: dict[str, float], avg: float):
        self.weights, self.avg = weights, avg

    def __bool__(self) -> bool:
        return bool(self.weights)


class _LexicalStats:
    """Collection size, mean passage length and term document frequencies, per generation."""

    def __init__(self, size: int = 8):
        self.size = size
        self._items: OrderedDict[tuple[int, int], dict] = OrderedDict()
        self._lock = threading.Lock()

    def idf(self, s: Session, collection_id: int, generation: int, terms: Sequence[str]) -> _Idf:
        key = (collection_id, generation)
        with self._lock:
            entry = self._items.get(key)
        if entry is None:
            n, avg = s.execute(text(f"SELECT count(*), coalesce(avg(n_terms), 0) FROM {TABLE} "
                                    "WHERE collection_id = :c"), {"c": collection_id}).one()
            entry = {"n": int(n), "avg": max(float(avg), 1e-9), "df": {}}
        wanted = [t for t in dict.fromkeys(terms) if t and t not in entry["df"] and tsquery_literal([t])]
        if wanted:
            parts, params = [], {"c": collection_id}
            for i, t in enumerate(wanted):
                params[f"t{i}"], params[f"q{i}"] = t, tsquery_literal([t])
                parts.append(f"SELECT CAST(:t{i} AS text) AS term, (SELECT count(*) FROM {TABLE} WHERE "
                             f"collection_id = :c AND lex @@ CAST(:q{i} AS tsquery)) AS df")
            entry["df"].update({r.term: int(r.df) for r in s.execute(text(" UNION ALL ".join(parts)), params)})
        with self._lock:
            self._items[key] = entry
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        n = entry["n"]
        weights = {t: float(np.log1p((n - df + 0.5) / (df + 0.5)))
                   for t in dict.fromkeys(terms) if (df := entry["df"].get(t, 0)) > 0}
        return _Idf(weights, entry["avg"])


def _check_keys(s: Session, coll, filters: Mapping) -> None:
    """Refuse a meta key no document of the collection has, as :func:`koqa.store.sqlstore.filtered_passages` does."""
    keys = sorted(k for k in filters if k not in DOCUMENT_FIELDS)
    if not keys or not s.scalar(text("SELECT EXISTS (SELECT 1 FROM documents WHERE collection_id = :c)"),
                                {"c": coll.id}):
        return
    for key in keys:
        if not s.scalar(text("SELECT EXISTS (SELECT 1 FROM documents WHERE collection_id = :c "
                             "AND jsonb_exists(CAST(meta AS jsonb), :k))"), {"c": coll.id, "k": key}):
            raise InvalidInput(f"filters.{key}", key, f"no document in collection {coll.name!r} has this metadata key")
