"""The exception hierarchy of acidic_job.

Every error the package raises on its own is an :class:`Error`. Each error code of the
C core has one subclass, which registers itself with its code when it is defined
(``class LockedIdempotencyKey(Error, code=_native.ELOCKED)``); the extension raises the
class registered for the code it got. ``code`` holds the core's numeric code,
``code_name`` its stable name such as ``"AJ_ELOCKED"``.

Messages say what went wrong and what to do. The core's messages carry their own
advice; where the Python layer knows more about the situation than the message says (a
busy SQLite file, a connection that went away), it appends one hint in parentheses, and
only a hint that matches what the message reports.

A step's own exception is never wrapped: it is recorded on the run (as a JSON document
``{"class": ..., "message": ...}``, see :func:`document`) and re-raised unchanged. The
one exception is the database's own refusal met by a step on a borrowed connection (a
busy SQLite file, a serialization failure, a lost connection): it becomes the
acidic_job error for it, raised from the driver's exception.
"""
from __future__ import annotations

import json
import re
from typing import Any, Dict, Optional, Type

from . import _native

__all__ = [
    "Error", "InvalidArgument", "OutOfMemory", "MisuseError", "DatabaseError",
    "SerializationConflict", "MismatchedIdempotencyKeyAndJobArguments", "LockedIdempotencyKey",
    "UnknownRecoveryPoint", "NoDefinedSteps", "DuplicateStep", "StepFailed", "NotFound",
    "SchemaError", "EncodeError", "DecodeError", "DeadRun", "UnknownJobAdapter",
    "SerializedTransactionConflict", "document", "ActionNotApplicable",
]

#: core code -> exception class; the extension looks codes up here ("default": Error)
_BY_CODE: Dict[Any, Type["Error"]] = {}


class Error(Exception):
    """Base class of every acidic_job error.

    A subclass passes ``code=`` (a core error code) to become the class raised for it.
    """

    #: numeric code of the C core (negative), or 0 for errors of the Python layer
    code: int = 0
    #: stable name of the code, e.g. "AJ_ELOCKED"
    code_name: str = ""

    def __init_subclass__(cls, code: Optional[int] = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if code is None:
            return
        if code in _BY_CODE:
            raise TypeError(f"core code {code} is already raised as {_BY_CODE[code].__name__}")
        cls.code = code
        cls.code_name = _native.code_name(code)
        _BY_CODE[code] = cls

    def __init__(self, message: str, code: Optional[int] = None,
                 code_name: Optional[str] = None) -> None:
        # the extension passes the code it got (the class's own, but for a code no class
        # registered, raised as Error)
        if code is not None:
            self.code = code
        if code_name is not None:
            self.code_name = code_name
        self.message = message
        hint = self.hint_for(message)
        super().__init__(f"{message} ({hint})" if hint and hint not in message else message)

    @classmethod
    def hint_for(cls, message: str) -> str:
        """What to do, when ``message`` does not say it already; "" for no hint."""
        return ""


def _utf8_json(doc: Dict[str, str]) -> str:
    text = json.dumps(doc, sort_keys=True, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a message holding a lone surrogate: JSON escapes instead
        text = json.dumps(doc, sort_keys=True)
    return text


def document(exc: BaseException) -> str:
    """The error recorded on a run whose step raised ``exc``:
    ``{"class": "module.QualName", "message": str(exc)}`` (``builtins.ValueError`` for
    built-in classes)."""
    cls = type(exc)
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not hide the original exception
        message = repr(exc)
    return _utf8_json({"class": f"{cls.__module__}.{cls.__qualname__}", "message": message})


def _core_document(code: int, message: str) -> str:
    """The document of a failure the core detected (its error encoder): the class that
    the core's code is raised as."""
    cls = _BY_CODE.get(code, Error)
    return _utf8_json({"class": f"{cls.__module__}.{cls.__qualname__}", "message": message})


_BY_CODE["default"] = Error
_native._register_errors(_BY_CODE, _core_document)


def _sqlstate(message: str) -> str:
    found = re.search(r"\(SQLSTATE ([0-9A-Z]{5})\)", message)
    return found.group(1) if found else ""


class InvalidArgument(Error, ValueError, code=_native.EINVALID):
    """A bad argument: empty, containing a NUL byte or a lone surrogate, a malformed URL..."""


class OutOfMemory(Error, MemoryError, code=_native.ENOMEM):
    pass


class MisuseError(Error, code=_native.EMISUSE):
    """The call does not fit the state: no open transaction on a borrowed connection,
    a store used after fork or from two threads, staging outside a step, a run closed
    from inside its own step."""


class DatabaseError(Error, code=_native.EDATABASE):
    """The database or the connection failed."""

    #: SQLSTATE classes of failures that a later retry can get past: connection
    #: exception, insufficient resources, operator intervention, system error
    _TRANSIENT = ("08", "53", "57", "58")
    #: SQLSTATE classes of a statement that fails the same way every time: data
    #: exception, syntax error or access rule violation, program limit exceeded
    _PERMANENT = ("22", "42", "54")
    _SQLITE_PERMANENT = ("no such table", "no such column", "syntax error", "has no column")

    @classmethod
    def hint_for(cls, message: str) -> str:
        state = _sqlstate(message)
        if message.startswith("connection lost") or state[:2] in cls._TRANSIENT:
            return "the server or the connection failed; the step can be retried once it is back"
        if state[:2] in cls._PERMANENT or any(s in message for s in cls._SQLITE_PERMANENT):
            return "a retry runs the same statement again: fix the statement or the schema first"
        return ""


class SerializationConflict(DatabaseError, code=_native.ECONFLICT):
    """Serialization failure, deadlock or busy database, after the core's own retries."""

    @classmethod
    def hint_for(cls, message: str) -> str:
        if "one writer" in message:
            return ""  # the message says it all
        if message.startswith("SQLite"):
            return ("SQLite allows one writer at a time and another connection held the "
                    "write lock longer than the busy timeout; run the job again, or raise "
                    "busy_timeout")
        state = _sqlstate(message)
        if state == "40P01":
            return "it waited on another transaction that waited on it; run the job again"
        if state == "40001":
            return "another transaction changed the same rows; run the job again"
        return "run the job again"


#: the name acidic_job 0.7.0 (Ruby) uses
SerializedTransactionConflict = SerializationConflict


class MismatchedIdempotencyKeyAndJobArguments(Error, code=_native.EMISMATCH):
    """The idempotency key exists with different job arguments, or belongs to a run of
    another job (the message names both)."""


class LockedIdempotencyKey(Error, code=_native.ELOCKED):
    """Another worker holds the run (within the lock timeout), or this run lost its lock."""


class UnknownRecoveryPoint(Error, code=_native.EUNKNOWN_RECOVERY_POINT):
    """The run's recovery point is not a step of the workflow (steps renamed or removed),
    or a step returned ``goto`` to a step that does not exist."""

    @classmethod
    def hint_for(cls, message: str) -> str:
        if "recovery point" in message:
            return "keep a step under its old name until its runs have finished"
        return ""


class NoDefinedSteps(Error, code=_native.ENO_STEPS):
    """A workflow without steps."""


class DuplicateStep(Error, code=_native.EDUPLICATE_STEP):
    """Two steps with one name."""


class StepFailed(Error, code=_native.ESTEP):
    """The step callback reported a failure without a Python exception."""


class NotFound(Error, code=_native.ENOTFOUND):
    """No such run or staged job."""


class SchemaError(Error, code=_native.ESCHEMA):
    """The tables cannot serve the call: written by a newer acidic_job, or an index that
    cannot hold the value (the message names it and the migration that replaces it)."""


class EncodeError(Error, TypeError):
    """An argument or attribute the codec cannot encode. Nothing was written for it."""


class DecodeError(Error, ValueError):
    """A document stored on a run cannot be decoded (garbage in ``attr_accessors``, say).
    The run is unlocked and the error recorded on it; the message names the run and the
    column."""


class DeadRun(Error):
    """The run failed ``max_attempts`` times: it is not run again (nor recovered) until an
    operator retries it. Its attempts and last error are on its row."""


class UnknownJobAdapter(Error):
    """perform_transactionally on something that is neither a Celery task nor an RQ job,
    or a staged job whose adapter is not installed in this process."""


class ActionNotApplicable(Error, code=_native.ESTATE):
    """An operator action (:mod:`acidic_job.admin`, ``acidic-job``) that does not apply to
    the run as it is: retrying a finished or awaiting run, unlocking an unlocked one,
    discarding a finished one, or retrying a run that has no resume job (started without
    a queue: retry it with ``enqueue=False`` and run it again yourself). Nothing was
    changed; the message says why."""
