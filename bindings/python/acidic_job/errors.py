"""The exception hierarchy of acidic_job.

Every error the package raises on its own is an :class:`Error`. Each error code of the
C core has one subclass (``code`` holds the core's numeric code, ``code_name`` its stable
name such as ``"AJ_ELOCKED"``), and each message ends with what to do about it.

A step's own exception is never wrapped: it is recorded on the run (as a JSON document
``{"class": ..., "message": ...}``) and re-raised unchanged.
"""
from __future__ import annotations

from typing import ClassVar, Dict, Optional, Type

from . import _native

__all__ = [
    "Error", "InvalidArgument", "OutOfMemory", "MisuseError", "DatabaseError",
    "SerializationConflict", "MismatchedIdempotencyKeyAndJobArguments", "LockedIdempotencyKey",
    "UnknownRecoveryPoint", "NoDefinedSteps", "DuplicateStep", "StepFailed", "NotFound",
    "EncodeError", "UnknownJobAdapter", "SerializedTransactionConflict",
]


class Error(Exception):
    """Base class of every acidic_job error."""

    #: numeric code of the C core (negative), or 0 for errors of the Python layer
    code: int = 0
    #: stable name of the code, e.g. "AJ_ELOCKED"
    code_name: str = ""
    #: what to do about it; appended to the message
    hint: ClassVar[str] = ""

    def __init__(self, message: str, code: Optional[int] = None,
                 code_name: Optional[str] = None) -> None:
        if code is not None:
            self.code = code
        if code_name is not None:
            self.code_name = code_name
        self.message = message
        text = message
        if self.hint and self.hint not in message:
            text = f"{message} ({self.hint})"
        super().__init__(text)


class InvalidArgument(Error, ValueError):
    """A bad argument: empty, containing a NUL byte, a malformed URL..."""
    code, code_name = _native.EINVALID, "AJ_EINVALID"
    hint = "check the value passed"


class OutOfMemory(Error, MemoryError):
    code, code_name = _native.ENOMEM, "AJ_ENOMEM"


class MisuseError(Error):
    """The call does not fit the state: no open transaction on a borrowed connection,
    a store used after fork or from two threads, staging outside a step."""
    code, code_name = _native.EMISUSE, "AJ_EMISUSE"
    hint = "see the acidic_job README on borrowed connections, threads and fork"


class DatabaseError(Error):
    """The database or the connection failed."""
    code, code_name = _native.EDATABASE, "AJ_EDATABASE"
    hint = "check the database server and the connection URL; the step can be retried"


class SerializationConflict(DatabaseError):
    """Serialization failure, deadlock or busy database, after the core's own retries."""
    code, code_name = _native.ECONFLICT, "AJ_ECONFLICT"
    hint = "another transaction touched the same rows; run the job again"


#: the name acidic_job 0.7.0 (Ruby) uses
SerializedTransactionConflict = SerializationConflict


class MismatchedIdempotencyKeyAndJobArguments(Error):
    """The idempotency key exists with different job arguments."""
    code, code_name = _native.EMISMATCH, "AJ_EMISMATCH"
    hint = "use a new key for new arguments, or the same arguments for this key"


class LockedIdempotencyKey(Error):
    """Another worker holds the run (within the lock timeout), or this run lost its lock."""
    code, code_name = _native.ELOCKED, "AJ_ELOCKED"
    hint = "another worker is running this job; retry after the lock timeout"


class UnknownRecoveryPoint(Error):
    """The run's recovery point is not a step of the workflow (steps renamed or removed)."""
    code, code_name = _native.EUNKNOWN_RECOVERY_POINT, "AJ_EUNKNOWN_RECOVERY_POINT"
    hint = "keep a step under its old name until its runs have finished"


class NoDefinedSteps(Error):
    """A workflow without steps."""
    code, code_name = _native.ENO_STEPS, "AJ_ENO_STEPS"
    hint = "decorate at least one method with @acidic_job.step"


class DuplicateStep(Error):
    """Two steps with one name."""
    code, code_name = _native.EDUPLICATE_STEP, "AJ_EDUPLICATE_STEP"
    hint = "give every step a unique name"


class StepFailed(Error):
    """The step callback reported a failure without a Python exception."""
    code, code_name = _native.ESTEP, "AJ_ESTEP"


class NotFound(Error):
    """No such run or staged job."""
    code, code_name = _native.ENOTFOUND, "AJ_ENOTFOUND"


class EncodeError(Error, TypeError):
    """An argument or attribute the codec cannot encode. Nothing was written for it."""
    hint = "pass JSON-compatible values or configure a codec (acidic_job.JSONCodec(default=...))"


class UnknownJobAdapter(Error):
    """perform_transactionally on something that is neither a Celery task nor an RQ job,
    or a staged job whose adapter is not installed in this process."""
    hint = "use acidic_job.celery.install(app, db) / acidic_job.rq.install(db, connection)"


_BY_CODE: Dict[object, Type[Error]] = {
    cls.code: cls
    for cls in (InvalidArgument, OutOfMemory, MisuseError, DatabaseError, SerializationConflict,
                MismatchedIdempotencyKeyAndJobArguments, LockedIdempotencyKey,
                UnknownRecoveryPoint, NoDefinedSteps, DuplicateStep, StepFailed, NotFound)
}
_BY_CODE["default"] = Error
_native._register_errors(_BY_CODE)
