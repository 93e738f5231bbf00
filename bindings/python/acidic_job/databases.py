"""Databases: what ``database=`` of a workflow accepts, and the host transaction.

``db`` may be

* a URL string (``"sqlite:app.db"``, ``"sqlite::memory:"``, ``"postgresql://..."`` or a
  libpq conninfo): an *owned* store. The core opens its own connection, one per thread
  and per process (re-opened transparently in a child after ``fork``, e.g. in Celery's
  prefork pool), and runs every step as BEGIN ... COMMIT itself. Inside a step, ``tx`` is
  a small cursor over that connection with ``?`` placeholders on both databases;
* a ``sqlite3.Connection``, a psycopg 3 ``Connection`` or a psycopg2 ``connection``: a
  *borrowed* store. The core shares the application's connection: the step's own writes
  (through ``tx``, a cursor of that connection, in the driver's placeholder style) and
  the workflow's bookkeeping commit together. Whenever the core needs a transaction it
  calls the database's :meth:`BorrowedDatabase.atomically` (the ``aj_host_tx`` hook),
  which opens it with the driver, lets the core do its work, and commits or rolls back
  with the driver. The connection must not be in a transaction when a workflow starts
  (:class:`MisuseError` otherwise: commit first);
* a zero-argument callable returning any of the above: a *factory*, called once per
  thread and per process, and again when the connection it returned is broken (a
  database restart). Use it for borrowed connections in forking workers.

Threads: a URL database gives each thread its own connection. A borrowed connection is
shared; this layer serialises the workflows that use it with a lock, but the application
must not use the connection from another thread while a workflow runs on it (sqlite3
refuses other threads by default; psycopg connections would interleave transactions).

Fork: a borrowed connection is never used in a process other than the one that first
used it (:class:`MisuseError`); URL and factory databases open a new connection in the
child.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import weakref
from typing import (Any, Callable, Dict, Iterator, List, Optional, Protocol, Sequence, Tuple,
                    Union)

from . import _native
from .errors import DatabaseError, Error, InvalidArgument, MisuseError, SerializationConflict

DatabaseLike = Union[str, Any, Callable[[], Any]]

#: the store's enqueue callback: (staged_id, adapter, job_name, payload) -> pushed?
Enqueue = Callable[[int, str, str, str], bool]

#: the core's transaction body handed to ``atomically``: True when it succeeded
Body = Callable[[], bool]

_OPEN_TRANSACTION = ("the connection already has an open transaction: commit or roll it "
                     "back before running a workflow (every step commits its own "
                     "transaction)")


class Cursor(Protocol):
    """What a step's ``tx`` offers, whatever the database: the DB-API cursor methods a
    step uses. ``tx`` is a ``sqlite3.Cursor``, a psycopg or psycopg2 cursor on a borrowed
    connection, and a :class:`StoreCursor` on a URL store; annotate steps with this type
    (``def create_ride(self, tx: acidic_job.Cursor) -> None``).

    Placeholders are the driver's: ``?`` for sqlite3 and URL stores, ``%s`` for psycopg
    and psycopg2. ``INSERT ... RETURNING id`` then ``fetchone()[0]`` reads a new id on
    every database (SQLite 3.35 and later); ``lastrowid`` is SQLite's only.
    """

    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: str, params: Any = ...) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> List[Any]: ...


class StoreCursor:
    """The ``tx`` of a step on a URL store: DB-API flavoured, over ``aj_store_exec``.

    ``?`` placeholders on SQLite and PostgreSQL alike; parameters may be None, int, str or
    bytes. Values come back typed: integers and booleans as int, NULL as None, every
    other type as its text (numeric, timestamps, JSON...). ``rowcount`` is the number of
    rows returned. ``lastrowid`` is the rowid of the last INSERT on SQLite (as
    ``sqlite3.Cursor.lastrowid``) and None on PostgreSQL: use ``RETURNING`` there.
    """

    def __init__(self, store: _native.Store) -> None:
        self._store = store
        self._rows: List[Tuple[Any, ...]] = []
        self._pos = 0
        self.rowcount = -1
        self.lastrowid: Optional[int] = None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> "StoreCursor":
        self._rows = self._store.exec(sql, params)
        self._pos = 0
        self.rowcount = len(self._rows)
        self.lastrowid = self._store.last_insert_rowid()
        return self

    def executemany(self, sql: str, seq_of_params: Sequence[Sequence[Any]]) -> "StoreCursor":
        for params in seq_of_params:
            self.execute(sql, params)
        return self

    def fetchone(self) -> Optional[Tuple[Any, ...]]:
        if self._pos >= len(self._rows):
            return None
        row = self._rows[self._pos]
        self._pos += 1
        return row

    def fetchall(self) -> List[Tuple[Any, ...]]:
        rows = self._rows[self._pos:]
        self._pos = len(self._rows)
        return rows

    def __iter__(self) -> Iterator[Tuple[Any, ...]]:
        while True:
            row = self.fetchone()
            if row is None:
                return
            yield row

    def close(self) -> None:
        self._rows = []


class Database:
    """Resolves to the native store of the current thread and process."""

    borrowed = False

    def __init__(self, options: Dict[str, int], enqueue: Enqueue) -> None:
        self.options = options
        #: handed every store this database opens: sends committed staged jobs
        self.enqueue = enqueue
        #: held for a whole run: serialises the runs sharing one borrowed connection
        self.lock: Any = contextlib.nullcontext()

    def _configure(self, store: _native.Store) -> _native.Store:
        store.set_enqueue(self.enqueue)
        return store

    def current(self) -> "Database":
        """The database serving this thread (itself, except for factories)."""
        return self

    def broken(self) -> bool:
        """True when the connection cannot be used again (a borrowed connection the
        server closed); a factory then asks for a new one."""
        return False

    def step_error(self, exc: BaseException) -> Optional[Error]:
        """The acidic_job error standing for ``exc``, an exception a step raised, when it
        is the database refusing (busy, a serialization failure, a lost connection);
        None when it is the step's own."""
        return None

    # -- to be provided by subclasses -------------------------------------------
    def store(self) -> _native.Store:
        raise NotImplementedError

    def cursor(self, store: _native.Store) -> Any:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


class UrlDatabase(Database):
    """An owned store per thread and per process."""

    def __init__(self, url: str, options: Dict[str, int], enqueue: Enqueue) -> None:
        super().__init__(options, enqueue)
        if "\0" in url or not url.strip():
            raise InvalidArgument("the database URL is empty or contains a NUL byte")
        self.url = url
        self._local = threading.local()

    def store(self) -> _native.Store:
        local = self._local
        store: Optional[_native.Store] = getattr(local, "store", None)
        if store is not None and store.pid == os.getpid() and not store.closed:
            return store
        # A store inherited across fork is dropped, not closed: aj_store_free in the child
        # releases memory without touching the parent's connection.
        local.store = None
        local.store = self._configure(_native.open(self.url, **self.options))
        return local.store

    def cursor(self, store: _native.Store) -> StoreCursor:
        return StoreCursor(store)

    def close(self) -> None:
        store = getattr(self._local, "store", None)
        self._local.store = None
        if store is not None and store.pid == os.getpid():
            store.close()

    def describe(self) -> str:
        return "url"


_connection_locks: "weakref.WeakKeyDictionary[Any, threading.RLock]" = weakref.WeakKeyDictionary()
_connection_locks_by_id: Dict[int, threading.RLock] = {}
_locks_guard = threading.Lock()


def _lock_for(conn: Any) -> threading.RLock:
    """One lock per connection object, shared by every workflow borrowing it."""
    with _locks_guard:
        try:
            lock = _connection_locks.get(conn)
            if lock is None:
                lock = _connection_locks[conn] = threading.RLock()
        except TypeError:  # not weak-referenceable
            lock = _connection_locks_by_id.setdefault(id(conn), threading.RLock())
        return lock


class BorrowedDatabase(Database):
    """Common part of the borrowed connections: the store, and the host transaction
    (:meth:`atomically`) built from three driver calls each subclass provides."""

    borrowed = True

    def __init__(self, conn: Any, options: Dict[str, int], enqueue: Enqueue) -> None:
        super().__init__(options, enqueue)
        self.lock = _lock_for(conn)
        self.conn = conn
        self._store: Optional[_native.Store] = None
        self._pid: Optional[int] = None

    def _borrow(self) -> _native.Store:
        raise NotImplementedError

    def store(self) -> _native.Store:
        pid = os.getpid()
        if self._pid is None:
            self._pid = pid
        elif self._pid != pid:
            raise MisuseError(
                f"this {type(self.conn).__module__}.{type(self.conn).__name__} was first used "
                f"in process {self._pid} and cannot be used after fork (process {pid}): pass a "
                "URL or a connection factory (a callable) as the workflow's database instead")
        if self._store is None or self._store.closed:
            self._store = self._configure(self._borrow())
        return self._store

    def cursor(self, store: _native.Store) -> Any:
        """``tx`` for a step: a cursor of the borrowed connection."""
        return self.conn.cursor()

    # -- the host transaction ---------------------------------------------------
    def atomically(self, body: Body) -> bool:
        """The ``aj_host_tx`` hook: one transaction of the driver around the core's
        ``body``; True when it committed. What the driver raises becomes the acidic_job
        error for it (raised from the driver's exception): the core receives its code."""
        self._begin()
        try:
            ok = body()
            if ok:
                self._commit()
            else:
                self._rollback()
        except BaseException as exc:
            self._rollback_quietly()
            error = self.host_error(exc)
            if error is None:
                raise
            raise error from exc
        return ok

    def host_error(self, exc: BaseException) -> Optional[Error]:
        """The acidic_job error for an exception of the driver: SerializationConflict for
        a busy database or a serialization failure (the core retries), DatabaseError for
        the rest; None for what is not the driver's."""
        raise NotImplementedError

    def step_error(self, exc: BaseException) -> Optional[Error]:
        error = self.host_error(exc)
        return error if isinstance(error, SerializationConflict) or self.broken() else None

    def _begin(self) -> None:
        raise NotImplementedError

    def _commit(self) -> None:
        self.conn.commit()

    def _rollback(self) -> None:
        self.conn.rollback()

    def _rollback_quietly(self) -> None:
        try:
            self._rollback()
        except Exception:  # the connection is gone: nothing is open on it any more
            pass

    def close(self) -> None:
        store, self._store = self._store, None
        if store is not None and self._pid == os.getpid():
            store.close()


def _sqlite_busy(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED
    text = str(exc)
    return "database is locked" in text or "database table is locked" in text or \
        "database is busy" in text


class SqliteDatabase(BorrowedDatabase):
    """A borrowed ``sqlite3.Connection``. ``tx`` is ``conn.cursor()`` (``?`` placeholders).

    The transaction is a plain (deferred) ``BEGIN``: SQLite takes its database-wide write
    lock at the first write, and the core writes the run's progress last, so a step that
    calls a payment provider before writing does not block other writers meanwhile.
    ``conn.commit()`` / ``conn.rollback()`` close it.
    """

    def _borrow(self) -> _native.Store:
        return _native.borrow_sqlite(self.conn, atomically=self.atomically, **self.options)

    def _begin(self) -> None:
        conn = self.conn
        try:
            if conn.in_transaction:
                raise MisuseError(_OPEN_TRANSACTION)
            conn.execute("BEGIN")
        except Exception as exc:
            error = self.host_error(exc)
            if error is None:
                raise
            raise error from exc

    def host_error(self, exc: BaseException) -> Optional[Error]:
        import sqlite3
        if not isinstance(exc, sqlite3.Error):
            return None
        if _sqlite_busy(exc):
            return SerializationConflict(
                f"SQLite: {exc}: another connection held the write lock longer than this "
                "connection's busy timeout (SQLite allows one writer at a time); run the "
                "job again, or give the connection a longer timeout "
                "(sqlite3.connect(..., timeout=SECONDS))")
        return DatabaseError(f"SQLite: {exc}")

    def describe(self) -> str:
        return "sqlite3"


class _PostgresDatabase(BorrowedDatabase):
    """What psycopg 3 and psycopg2 share: SQLSTATEs and the broken-connection test."""

    #: SQLSTATEs the core retries: serialization failure, deadlock
    _CONFLICTS = ("40001", "40P01")

    #: the driver reads the transaction state from libpq, so the core may send BEGIN with
    #: its first statements and COMMIT with its last, in their round trips (aj_host_tx's
    #: begin_in_body and commit_in_body)
    _libpq_state = False

    def _borrow(self) -> _native.Store:
        # the extension checks the class, the libpq copy and that it is open
        return _native.borrow_pg(self.conn, atomically=self.atomically,
                                 libpq_state=self._libpq_state, **self.options)

    def _sqlstate(self, exc: BaseException) -> str:
        return str(getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None) or "")

    def host_error(self, exc: BaseException) -> Optional[Error]:
        if not self._is_driver_error(exc):
            return None
        state = self._sqlstate(exc)
        text = str(exc).strip()
        suffix = f" (SQLSTATE {state})" if state and state not in text else ""
        if state in self._CONFLICTS:
            return SerializationConflict(f"PostgreSQL: {text}{suffix}")
        if self.broken():
            return DatabaseError(f"connection lost: {text}{suffix}")
        return DatabaseError(f"PostgreSQL: {text}{suffix}")

    def _is_driver_error(self, exc: BaseException) -> bool:
        raise NotImplementedError


class Psycopg3Database(_PostgresDatabase):
    """A borrowed psycopg 3 ``Connection``. ``tx`` is ``conn.cursor()`` (``%s`` placeholders).

    psycopg reads the transaction status from libpq, so the core drives the transaction on
    the connection's libpq handle: it sends ``BEGIN`` with its first statements and
    ``COMMIT`` with its last, in their round trips (``begin_in_body`` and
    ``commit_in_body``), and psycopg neither sends a BEGIN of its own in a step nor
    forgets to commit: a 3-step run costs the round trips of three
    ``conn.transaction()`` blocks. A body the core did not commit is committed here; a
    failed one is rolled back with ``conn.rollback()`` (which also tells psycopg its
    prepared statements went with the transaction). The core's statements are prepared
    once per session and prepared again when psycopg's ``DEALLOCATE ALL`` after a
    rollback, or a pooler's ``DISCARD ALL``, dropped them.
    """

    def _begin(self) -> None:
        from psycopg import pq
        pgconn = self.conn.pgconn
        if self.broken():  # its transaction status is "unknown": say what it is
            raise DatabaseError("connection lost: the server closed the psycopg connection "
                                f"({pgconn.error_message.decode('utf-8', 'replace').strip()})")
        if pgconn.transaction_status != pq.TransactionStatus.IDLE:
            raise MisuseError(_OPEN_TRANSACTION)
        # the core sends BEGIN with its first statements (begin_in_body)

    _libpq_state = True  # psycopg reads the transaction state from libpq

    def _commit(self) -> None:
        # Raw too: psycopg's commit() is a generator round of its own for one statement,
        # and it keeps nothing about a commit (its prepared statements survive one).
        import psycopg
        from psycopg import pq
        pgconn = self.conn.pgconn
        if pgconn.transaction_status == pq.TransactionStatus.IDLE:
            return  # the core committed with its last statements
        result = pgconn.exec_(b"COMMIT")
        if result.status != pq.ExecStatus.COMMAND_OK:
            raise psycopg.errors.error_from_result(
                result, encoding=self.conn.info.encoding)

    def _is_driver_error(self, exc: BaseException) -> bool:
        import psycopg
        return isinstance(exc, psycopg.Error)

    def broken(self) -> bool:
        return bool(self.conn.closed or self.conn.broken)

    def describe(self) -> str:
        return "psycopg"


class Psycopg2Database(_PostgresDatabase):
    """A borrowed psycopg2 ``connection``. ``tx`` is ``conn.cursor()`` (``%s`` placeholders).

    In autocommit mode psycopg2's ``commit()`` does nothing, so the transaction is then
    driven with explicit BEGIN / COMMIT / ROLLBACK statements; otherwise psycopg2 opens
    it (a first statement) and ``commit()`` / ``rollback()`` close it.
    """

    def _exec(self, sql: str) -> None:
        with self.conn.cursor() as cur:
            cur.execute(sql)

    def _begin(self) -> None:
        import psycopg2
        import psycopg2.extensions as ext
        if self.broken():
            raise DatabaseError("connection lost: the server closed the psycopg2 connection")
        if self.conn.info.transaction_status != ext.TRANSACTION_STATUS_IDLE:
            raise MisuseError(_OPEN_TRANSACTION)
        try:
            self._exec("BEGIN" if self.conn.autocommit else "SELECT 1")
        except psycopg2.Error as exc:
            raise (self.host_error(exc) or DatabaseError(str(exc))) from exc

    def _commit(self) -> None:
        if self.conn.autocommit:
            self._exec("COMMIT")
        else:
            self.conn.commit()

    def _rollback(self) -> None:
        if self.conn.autocommit:
            self._exec("ROLLBACK")
        else:
            self.conn.rollback()

    def _is_driver_error(self, exc: BaseException) -> bool:
        import psycopg2
        return isinstance(exc, psycopg2.Error)

    def broken(self) -> bool:
        # psycopg2 learns of a lost connection only through its own calls; libpq's status
        # also covers the core's (ConnectionInfo.status is PQstatus: 0 is CONNECTION_OK)
        return bool(self.conn.closed) or self.conn.info.status != 0

    def describe(self) -> str:
        return "psycopg2"


class FactoryDatabase(Database):
    """A callable returning a connection or a URL, called once per thread and process,
    and again when the connection it returned broke."""

    def __init__(self, factory: Callable[[], Any], options: Dict[str, int],
                 enqueue: Enqueue) -> None:
        super().__init__(options, enqueue)
        self.factory = factory
        self._local = threading.local()

    def current(self) -> Database:
        local = self._local
        db: Optional[Database] = getattr(local, "db", None)
        if db is not None and getattr(local, "pid", None) == os.getpid() and db.broken():
            close = getattr(db, "close", None)
            if close is not None:
                close()
            db = None
        if db is None or getattr(local, "pid", None) != os.getpid():
            target = self.factory()
            if callable(target) and not isinstance(target, str) \
                    and not _looks_like_connection(target):
                raise TypeError("a database factory must return a URL or a connection")
            db = local.db = _resolve_plain(target, self.options, self.enqueue)
            local.pid = os.getpid()
        return db

    def store(self) -> _native.Store:
        return self.current().store()

    def cursor(self, store: _native.Store) -> Any:
        return self.current().cursor(store)

    def describe(self) -> str:
        return "factory"


def _resolve_plain(db: Any, options: Dict[str, int], enqueue: Enqueue) -> Database:
    if isinstance(db, str):
        return UrlDatabase(db, options, enqueue)
    mod = type(db).__module__ or ""
    if "sqlite3" in sys.modules:
        import sqlite3
        if isinstance(db, sqlite3.Connection):
            return SqliteDatabase(db, options, enqueue)
    if mod.startswith("psycopg2") and hasattr(db, "pgconn_ptr"):
        return Psycopg2Database(db, options, enqueue)
    if mod.startswith("psycopg") and hasattr(db, "pgconn"):
        return Psycopg3Database(db, options, enqueue)
    raise TypeError(
        f"expected a database URL (str), a sqlite3.Connection, a psycopg or psycopg2 "
        f"connection, or a callable returning one; got {type(db).__module__}.{type(db).__name__}")


#: the largest number of milliseconds the core takes (int64); it clamps further itself
_MAX_MS = 2 ** 63 - 1


def milliseconds(name: str, seconds: Any) -> int:
    """``seconds`` as the core's milliseconds. Types only: the core validates and clamps
    (an infinite timeout is the longest one)."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or \
            (isinstance(seconds, float) and math.isnan(seconds)) or seconds < 0:
        raise TypeError(f"{name} must be a non-negative number of seconds, got {seconds!r}")
    if seconds * 1000 >= _MAX_MS:
        return _MAX_MS
    return int(seconds * 1000)


def _count(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TypeError(f"{name} must be a non-negative int, got {value!r}")
    return value


def resolve(db: DatabaseLike, *, enqueue: Enqueue, lock_timeout: Optional[float] = None,
            busy_timeout: Optional[float] = None, synchronous: Optional[str] = None,
            conflict_retries: Optional[int] = None, max_attempts: Optional[int] = None,
            retry_base: Optional[float] = None) -> Database:
    """Turn what the user passed into a :class:`Database` whose stores send committed
    staged jobs with ``enqueue``. Timeouts are in seconds; an option left None takes the
    core's default."""
    if isinstance(db, Database):
        return db
    options: Dict[str, int] = {}
    if lock_timeout is not None:
        options["lock_timeout_ms"] = milliseconds("lock_timeout", lock_timeout)
    if busy_timeout is not None:
        options["busy_timeout_ms"] = milliseconds("busy_timeout", busy_timeout)
    if retry_base is not None:
        options["retry_base_ms"] = milliseconds("retry_base", retry_base)
    if synchronous is not None:
        levels = {"full": _native.SYNC_FULL, "normal": _native.SYNC_NORMAL, "off": _native.SYNC_OFF}
        if not isinstance(synchronous, str) or synchronous.lower() not in levels:
            raise TypeError("synchronous must be 'full', 'normal' or 'off'")
        options["synchronous"] = levels[synchronous.lower()]
    if conflict_retries is not None:
        options["conflict_retries"] = _count("conflict_retries", conflict_retries)
    if max_attempts is not None:
        options["max_attempts"] = _count("max_attempts", max_attempts)
    if callable(db) and not isinstance(db, str) and not _looks_like_connection(db):
        return FactoryDatabase(db, options, enqueue)
    return _resolve_plain(db, options, enqueue)


def _looks_like_connection(obj: Any) -> bool:
    return hasattr(obj, "cursor") and hasattr(obj, "commit")
