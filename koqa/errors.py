"""Typed errors. The CLI and HTTP API translate these (and only these) to messages/4xx.

>>> e = InvalidInput("question", "", "must not be empty")
>>> str(e)
"question: must not be empty (got '')"
>>> e.field
'question'
>>> import pickle; str(pickle.loads(pickle.dumps(e))) == str(e)   # crosses process boundaries
True
"""

from __future__ import annotations


class KoqaError(Exception):
    """Base class of every error koqa raises on purpose."""

    status_code = 400


class InvalidInput(KoqaError, ValueError):
    """A caller passed a bad value; ``field`` names it."""

    def __init__(self, field: str, value: object, reason: str):
        self.field, self.value, self.reason = field, value, reason
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"{field}: {reason} (got {shown})")

    def __reduce__(self):
        return type(self), (self.field, self.value, self.reason)


class NotFound(KoqaError, LookupError):
    """A named thing (collection, document, model) does not exist."""

    status_code = 404

    def __init__(self, kind: str, name: str, hint: str = ""):
        self.kind, self.name = kind, name
        self.hint = hint
        super().__init__(f"{kind} not found: {name!r}" + (f". {hint}" if hint else ""))

    def __reduce__(self):
        return type(self), (self.kind, self.name, self.hint)


class ModelUnavailable(KoqaError):
    """A model cannot be loaded (e.g. a hub name with no network)."""

    status_code = 422


class IndexMismatch(KoqaError):
    """An index was built with another embedder or chunker than the one in use."""

    status_code = 409
