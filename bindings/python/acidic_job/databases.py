"""Databases: what ``database=`` of a workflow accepts, and the transaction around a step.

``db`` may be

* a URL string (``"sqlite:app.db"``, ``"sqlite::memory:"``, ``"postgresql://..."`` or a
  libpq conninfo): an *owned* store. The core opens its own connection, one per thread
  and per process (re-opened transparently in a child after ``fork``, e.g. in Celery's
  prefork pool), and runs every step as BEGIN ... COMMIT itself. Inside a step, ``tx`` is
  a small cursor over that connection with ``?`` placeholders on both databases;
* a ``sqlite3.Connection``, a psycopg 3 ``Connection`` or a psycopg2 ``connection``: a
  *borrowed* store. The core shares the application's connection: the step's own writes
  (through ``tx``, a cursor of that connection, in the driver's placeholder style) and
  the workflow's bookkeeping commit together. This layer opens the transaction with the
  driver's API (it checks that the native connection really is in a transaction, since
  sqlite3 and psycopg2 open theirs lazily), commits or rolls it back with the driver's API,
  and reports the outcome to the core (``aj_store_settle``). The connection must not be in
  a transaction when a workflow starts (:class:`MisuseError` otherwise: commit first);
* a zero-argument callable returning any of the above: a *factory*, called once per
  thread and per process. Use it for borrowed connections in forking workers.

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
import os
import sys
import threading
import weakref
from typing import (Any, Callable, Dict, Iterator, List, Optional, Protocol, Sequence, Tuple,
                    Union)

from . import _native
from .errors import DatabaseError, InvalidArgument, MisuseError

DatabaseLike = Union[str, Any, Callable[[], Any]]

#: the store's enqueue callback: (staged_id, adapter, job_name, payload) -> pushed?
Enqueue = Callable[[int, str, str, str], bool]


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
    """Resolves to the native store of the current thread and process, and wraps each
    core call that writes in the right transaction."""

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

    # -- to be provided by subclasses -------------------------------------------
    def store(self) -> _native.Store:
        raise NotImplementedError

    def cursor(self, store: _native.Store) -> Any:
        raise NotImplementedError

    @contextlib.contextmanager
    def transaction(self, store: _native.Store) -> Iterator[None]:
        """Owned stores: nothing (the core does its own transactions)."""
        yield

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
    """Common part of the borrowed connections."""

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
            store = self._configure(self._borrow())
            with self.transaction(store):
                store.migrate()
            self._store = store
        return self._store

    # The host transaction, through the driver's own API.
    def _in_host_transaction(self) -> bool:
        raise NotImplementedError

    def _begin(self) -> None:
        raise NotImplementedError

    def _commit(self) -> None:
        self.conn.commit()

    def _rollback(self) -> None:
        self.conn.rollback()

    def cursor(self, store: _native.Store) -> Any:
        """``tx`` for a step: a cursor of the borrowed connection."""
        return self.conn.cursor()

    def begin(self, store: _native.Store) -> None:
        if self._in_host_transaction() or store.in_transaction():
            raise MisuseError(
                "the connection already has an open transaction: commit or roll it back "
                "before running a workflow (every step commits its own transaction)")
        self._begin()
        if not store.in_transaction():
            self._rollback()
            raise MisuseError("could not open a transaction on the borrowed connection")

    def commit(self, store: _native.Store) -> None:
        try:
            self._commit()
        except BaseException:
            self.rollback(store)
            raise
        store.settle(True)

    def rollback(self, store: _native.Store) -> None:
        try:
            self._rollback()
        finally:
            store.settle(False)

    @contextlib.contextmanager
    def transaction(self, store: _native.Store) -> Iterator[None]:
        """One host transaction: begin, body, commit (rollback on any exception)."""
        self.begin(store)
        try:
            yield
        except BaseException:
            self.rollback(store)
            raise
        self.commit(store)

    def close(self) -> None:
        store, self._store = self._store, None
        if store is not None and self._pid == os.getpid():
            store.close()


class SqliteDatabase(BorrowedDatabase):
    """A borrowed ``sqlite3.Connection``. ``tx`` is ``conn.cursor()`` (``?`` placeholders).

    The transaction is opened with an explicit ``BEGIN IMMEDIATE`` (Python's sqlite3 would
    open it lazily, at the first write, and a deferred transaction can fail to upgrade to a
    write lock under concurrency); ``conn.commit()`` / ``conn.rollback()`` close it.
    """

    def _borrow(self) -> _native.Store:
        return _native.borrow_sqlite(self.conn, **self.options)

    def _in_host_transaction(self) -> bool:
        return bool(self.conn.in_transaction)

    def _begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def describe(self) -> str:
        return "sqlite3"


class Psycopg3Database(BorrowedDatabase):
    """A borrowed psycopg 3 ``Connection``. ``tx`` is ``conn.cursor()`` (``%s`` placeholders).

    The transaction is opened with one ``BEGIN`` sent on the connection's libpq handle
    (psycopg reads the transaction status from libpq, so it then neither sends a BEGIN of
    its own nor forgets to commit: one round trip, as ``conn.transaction()`` costs) and
    closed with ``conn.commit()`` / ``conn.rollback()``.
    """

    def _borrow(self) -> _native.Store:
        # the extension checks the class, the libpq copy and that it is open
        return _native.borrow_pg(self.conn, **self.options)

    def _in_host_transaction(self) -> bool:
        from psycopg import pq
        return bool(self.conn.pgconn.transaction_status != pq.TransactionStatus.IDLE)

    def _begin(self) -> None:
        from psycopg import pq
        result = self.conn.pgconn.exec_(b"BEGIN")
        if result.status != pq.ExecStatus.COMMAND_OK:
            message = (result.error_message or b"").decode("utf-8", "replace").strip()
            raise DatabaseError(f"BEGIN failed on the psycopg connection: {message}")

    def describe(self) -> str:
        return "psycopg"


class Psycopg2Database(BorrowedDatabase):
    """A borrowed psycopg2 ``connection``. ``tx`` is ``conn.cursor()`` (``%s`` placeholders).

    In autocommit mode psycopg2's ``commit()`` does nothing, so the transaction is then
    driven with explicit BEGIN / COMMIT / ROLLBACK statements.
    """

    def _borrow(self) -> _native.Store:
        return _native.borrow_pg(self.conn, **self.options)

    def _in_host_transaction(self) -> bool:
        import psycopg2.extensions as ext
        return bool(self.conn.info.transaction_status != ext.TRANSACTION_STATUS_IDLE)

    def _exec(self, sql: str) -> None:
        with self.conn.cursor() as cur:
            cur.execute(sql)

    def _begin(self) -> None:
        self._exec("BEGIN" if self.conn.autocommit else "SELECT 1")

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

    def describe(self) -> str:
        return "psycopg2"


class FactoryDatabase(Database):
    """A callable returning a connection or a URL, called once per thread and process."""

    def __init__(self, factory: Callable[[], Any], options: Dict[str, int],
                 enqueue: Enqueue) -> None:
        super().__init__(options, enqueue)
        self.factory = factory
        self._local = threading.local()

    def current(self) -> Database:
        local = self._local
        db = getattr(local, "db", None)
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


_OPTION_NAMES = ("lock_timeout_ms", "busy_timeout_ms", "synchronous", "conflict_retries")


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


def resolve(db: DatabaseLike, *, enqueue: Enqueue, lock_timeout: Optional[float] = None,
            busy_timeout: Optional[float] = None, synchronous: Optional[str] = None,
            conflict_retries: Optional[int] = None) -> Database:
    """Turn what the user passed into a :class:`Database` whose stores send committed
    staged jobs with ``enqueue``. Timeouts are in seconds."""
    if isinstance(db, Database):
        return db
    options: Dict[str, int] = {}
    if lock_timeout is not None:
        if not isinstance(lock_timeout, (int, float)) or isinstance(lock_timeout, bool) \
                or lock_timeout < 0:
            raise TypeError("lock_timeout must be a non-negative number of seconds")
        options["lock_timeout_ms"] = int(lock_timeout * 1000)
    if busy_timeout is not None:
        if not isinstance(busy_timeout, (int, float)) or isinstance(busy_timeout, bool) \
                or busy_timeout < 0:
            raise TypeError("busy_timeout must be a non-negative number of seconds")
        options["busy_timeout_ms"] = int(busy_timeout * 1000)
    if synchronous is not None:
        levels = {"full": _native.SYNC_FULL, "normal": _native.SYNC_NORMAL, "off": _native.SYNC_OFF}
        if not isinstance(synchronous, str) or synchronous.lower() not in levels:
            raise TypeError("synchronous must be 'full', 'normal' or 'off'")
        options["synchronous"] = levels[synchronous.lower()]
    if conflict_retries is not None:
        if not isinstance(conflict_retries, int) or isinstance(conflict_retries, bool) \
                or conflict_retries < 0:
            raise TypeError("conflict_retries must be a non-negative int")
        options["conflict_retries"] = conflict_retries
    if callable(db) and not isinstance(db, str) and not _looks_like_connection(db):
        return FactoryDatabase(db, options, enqueue)
    return _resolve_plain(db, options, enqueue)


def _looks_like_connection(obj: Any) -> bool:
    return hasattr(obj, "cursor") and hasattr(obj, "commit")
