"""Codecs: how arguments, attributes and staged job payloads become documents.

The core stores documents verbatim and compares job arguments byte for byte, so a codec
must be deterministic: equal values give equal bytes. The default :class:`JSONCodec`
sorts keys and uses compact separators, so rows are readable from SQL and other
languages. A codec is any object with ``encode(value) -> str`` and
``decode(text) -> value``.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Dict, Optional, Protocol


def is_utf8(text: str) -> bool:
    """Whether ``text`` encodes as UTF-8, as the database needs: only a lone surrogate
    does not. ``isascii`` is a flag test, so the common case costs nothing."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Codec(Protocol):
    """The codec interface (structural)."""

    def encode(self, value: Any) -> str: ...

    def decode(self, text: str) -> Any: ...


class JSONCodec:
    """Canonical JSON: ``sort_keys=True``, compact, no NaN.

    ``default`` converts values JSON does not know (as ``json.dumps(default=...)``),
    ``object_hook`` turns decoded objects back into them (as ``json.loads``)::

        codec = acidic_job.JSONCodec(
            default=lambda v: {"$date": v.isoformat()} if isinstance(v, date) else TypeError(),
            object_hook=lambda d: date.fromisoformat(d["$date"]) if "$date" in d else d)
    """

    def __init__(self, default: Optional[Callable[[Any], Any]] = None,
                 object_hook: Optional[Callable[[Dict[str, Any]], Any]] = None) -> None:
        self._default = default
        self._object_hook = object_hook
        # One encoder for every call: json.dumps with options builds a new one each time,
        # and attributes are encoded at every step.
        self._encoder = json.JSONEncoder(sort_keys=True, separators=(",", ":"),
                                         ensure_ascii=False, allow_nan=False,
                                         default=self._fallback)

    def _fallback(self, value: Any) -> Any:
        if self._default is not None:
            out = self._default(value)
            if not isinstance(out, BaseException):
                return out
        raise TypeError(f"a value of type {type(value).__name__} is not JSON serializable")

    def encode(self, value: Any) -> str:
        return self._encoder.encode(value)

    def decode(self, text: str) -> Any:
        return json.loads(text, object_hook=self._object_hook)


DEFAULT_CODEC = JSONCodec()
