"""Metadata filters: restrict retrieval to the documents whose fields match.

A filter maps a key to a value or a list of values. ``doc_id``, ``title`` and
``source`` are the document's own fields; any other key is a key of its ``meta``.
A document matches when every key matches (AND); a key matches when the document's
value equals the value, or any value of a list (OR); a list in ``meta`` (tags)
matches when any of its items does.

>>> f = check_filters({"source": "a.pdf", "dept": ["법무", "인사"]})
>>> matches(f, {"source": "a.pdf", "meta": {"dept": "인사"}}), matches(f, {"source": "a.pdf", "meta": {}})
(True, False)
>>> matches(check_filters({"tags": "계약"}), {"meta": {"tags": ["계약", "2024"]}})
True
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from koqa.errors import InvalidInput

Filters = Mapping[str, frozenset]  # key → accepted values, as made by check_filters
DOCUMENT_FIELDS = ("doc_id", "title", "source")
MAX_VALUES = 10_000  # e.g. the ids of the documents one user may read
_SCALARS = (str, int, float, bool)


def check_filters(filters: object) -> dict[str, frozenset] | None:
    """Validated filters (each key → the set of values it accepts), or None for no filter."""
    if filters is None:
        return None
    if not isinstance(filters, Mapping):
        raise InvalidInput("filters", filters, 'must map keys to a value or a list of values, e.g. {"source": "a.pdf"}')
    out = {}
    for key, value in filters.items():
        if not isinstance(key, str) or not key.strip():
            raise InvalidInput("filters", key, "keys must be non-empty strings")
        values = value if isinstance(value, (list, tuple, set, frozenset)) else [value]
        if not values or len(values) > MAX_VALUES or not all(isinstance(v, _SCALARS) for v in values):
            raise InvalidInput(f"filters.{key}", value,
                               f"must be a string, number or boolean, or a list of 1 to {MAX_VALUES} of them")
        out[key] = frozenset(_typed(v) for v in values)
    return out or None


def matches(filters: Filters, document: Mapping[str, Any]) -> bool:
    """Whether ``document`` (its fields, with ``meta`` a mapping) passes every filter."""
    meta = document.get("meta") or {}
    for key, wanted in filters.items():
        value = document.get(key) if key in DOCUMENT_FIELDS else meta.get(key)
        items = value if isinstance(value, list) else [value]
        if not any(isinstance(v, _SCALARS) and _typed(v) in wanted for v in items):
            return False
    return True


def unknown_keys(filters: Filters, metas: Sequence[Mapping | None]) -> list[str]:
    """The meta keys of ``filters`` that no document's ``meta`` in ``metas`` has (likely typos);
    none when there are no documents yet."""
    if not metas:
        return []
    wanted = {k for k in filters if k not in DOCUMENT_FIELDS}
    for meta in metas:
        wanted -= set(meta or ())
        if not wanted:
            break
    return sorted(wanted)


def _typed(value):
    """A set key under which True is not 1 (Python's ``True == 1``) while 1 still equals 1.0."""
    return (isinstance(value, bool), value)
