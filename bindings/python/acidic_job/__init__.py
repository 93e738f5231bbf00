"""acidic_job: idempotent, resumable multi-step workflows on SQLite and PostgreSQL.

A job becomes a workflow of named steps. Each step commits in one database transaction
together with the run's progress (its recovery point and persisted attributes) and with
the jobs it stages, so a retry resumes at the step that failed and a finished step's
writes happen exactly once::

    import sqlite3, acidic_job

    db = sqlite3.connect("app.db")

    class RideCreate(acidic_job.Workflow, database=db):
        ride_id: int | None = None          # persisted with each step

        def __init__(self, user_id: int, origin: str) -> None:
            self.user_id, self.origin = user_id, origin

        @acidic_job.step
        def create_ride(self, tx: acidic_job.Cursor) -> None:
            tx.execute("INSERT INTO rides (user_id, origin) VALUES (?, ?) RETURNING id",
                       (self.user_id, self.origin))
            self.ride_id = tx.fetchone()[0]

        @acidic_job.step
        def charge(self, tx: acidic_job.Cursor) -> None:
            ...

    RideCreate.run(42, "Paris")   # True once succeeded; a rerun resumes

See the README for databases, queues (Celery, RQ), threads and fork.
"""
from __future__ import annotations

import importlib.util
import logging

try:
    from . import _native
except ImportError:
    if importlib.util.find_spec(f"{__name__}._native") is not None:
        raise  # the extension is there but does not load: its own error says why
    raise ImportError(
        f"acidic_job: the compiled extension acidic_job._native is missing from {__path__[0]}: "
        "install the package (pip install --no-build-isolation .) and run Python from "
        "outside the source folder") from None
from .errors import (ActionNotApplicable, DatabaseError, DeadRun, DecodeError, DuplicateStep,
                     EncodeError, Error, InvalidArgument, LockedIdempotencyKey,
                     MismatchedIdempotencyKeyAndJobArguments, MisuseError, NoDefinedSteps,
                     NotFound, OutOfMemory, SchemaError, SerializationConflict,
                     SerializedTransactionConflict, StepFailed, UnknownJobAdapter,
                     UnknownRecoveryPoint)
from .events import StepTrace, add_step_hook, remove_step_hook
from .codec import Codec, JSONCodec
from .databases import Cursor, StoreCursor
from .workflow import (FINISH, FunctionJob, GoTo, Workflow, current_step, goto, job,
                       recoverable, step, workflow)
from .queues import Recovered, ack, drain, perform_transactionally, recover

# A library's logger has a NullHandler and no other (the logging HOWTO): the application
# decides where records go; without its configuration none reach stderr.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = _native.VERSION
VERSION = _native.VERSION

__all__ = [
    "Workflow", "workflow", "step", "job", "FINISH", "goto", "GoTo", "FunctionJob", "current_step",
    "recoverable",
    "perform_transactionally", "ack", "drain", "recover", "Recovered", "Codec", "JSONCodec",
    "Cursor", "StoreCursor", "StepTrace", "add_step_hook", "remove_step_hook",
    "Error", "InvalidArgument", "OutOfMemory", "MisuseError", "DatabaseError",
    "SerializationConflict", "SerializedTransactionConflict",
    "MismatchedIdempotencyKeyAndJobArguments", "LockedIdempotencyKey", "UnknownRecoveryPoint",
    "NoDefinedSteps", "DuplicateStep", "StepFailed", "NotFound", "SchemaError", "EncodeError",
    "DecodeError", "DeadRun",
    "UnknownJobAdapter", "ActionNotApplicable", "VERSION", "__version__",
]
