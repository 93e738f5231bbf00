"""Type stub of acidic_job._native, the CPython extension over the C core (acidic_job.h).

Use the acidic_job package; this module is its thin native layer. Core calls that touch
the database release the GIL. A Store and its Runs serve one thread at a time. Options
left out are the core's AJ_UNSET: the core fills the defaults and validates.
"""
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

VERSION: str
RECOVERY_POINT_FINISHED: str
UNSET: int

RUN_READY: int
RUN_AWAITING: int
RUN_SUCCEEDED: int
RUN_FAILED: int
RUN_FINISHED_FAILED: int
RUN_DEAD: int
RUN_NEW: int

OK: int
ERROR: int
EINVALID: int
ENOMEM: int
EMISUSE: int
EDATABASE: int
ECONFLICT: int
EMISMATCH: int
ELOCKED: int
EUNKNOWN_RECOVERY_POINT: int
ENO_STEPS: int
EDUPLICATE_STEP: int
ESTEP: int
ENOTFOUND: int
ESCHEMA: int

EVENT_ACQUIRED: int
EVENT_SKIPPED: int
EVENT_STEP_STARTED: int
EVENT_STEP_COMMITTED: int
EVENT_STEP_FAILED: int
EVENT_FINISHED: int
EVENT_STAGED: int
EVENT_ENQUEUED: int
EVENT_DRAINED: int
EVENT_RECOVERED: int

SYNC_FULL: int
SYNC_NORMAL: int
SYNC_OFF: int

Param = Union[None, int, str, bytes]
Cell = Union[None, int, str, bytes]
EnqueueCallback = Callable[[int, str, str, str], bool]


class TxBody:
    """The core's work inside a host transaction: call it once; True when it succeeded
    (commit), False when it failed (roll back)."""

    def __call__(self) -> bool: ...


#: the host transaction of a borrowed store: atomically(body) -> committed
Atomically = Callable[[TxBody], bool]


class Event:
    """One core event (aj_event); fields as in acidic_job.h."""

    type: int
    run_id: int
    key: Optional[str]
    job_name: Optional[str]
    step: Optional[str]
    status: int
    code: int
    message: Optional[str]
    duration_us: int
    staged_id: int
    adapter: Optional[str]
    staged_job: Optional[str]
    accepted: bool
    count: int
    attempt: int
    resumed: bool
    dead: bool
    attributes: Optional[str]


class Store:
    """A database connection with the acidic_job tables (aj_store)."""

    @property
    def driver(self) -> str: ...
    @property
    def borrowed(self) -> bool: ...
    @property
    def closed(self) -> bool: ...
    @property
    def pid(self) -> int: ...
    @property
    def options(self) -> Dict[str, int]: ...
    def migrate(self) -> None: ...
    def set_enqueue(self, fn: Optional[EnqueueCallback]) -> None: ...
    def set_events(self, fn: Optional[Callable[[Event], Any]], mask: int = ...) -> None: ...
    def drain(self, older_than_ms: int) -> int: ...
    def ack(self, staged_id: int) -> bool: ...
    def recover(self, limit: int = ...) -> Tuple[int, int]: ...
    def exec(self, sql: str, params: Optional[Sequence[Param]] = ...) -> List[Tuple[Cell, ...]]: ...
    def in_transaction(self) -> bool: ...
    def last_insert_rowid(self) -> Optional[int]: ...
    def close(self) -> None: ...


class Workflow:
    """An ordered list of uniquely named steps (aj_workflow)."""

    def __init__(self, steps: Sequence[Union[str, Tuple[str, Sequence[str]]]]) -> None: ...
    @property
    def steps(self) -> List[Tuple[str, Tuple[str, ...]]]: ...


class Run:
    """One execution of a workflow under an idempotency key (aj_run). ``Run(...)`` is
    aj_run_new (no I/O); ``resume`` is (adapter, job_name, payload), the job recovery
    enqueues to hand the run back to its queue."""

    def __init__(self, store: Store, workflow: Workflow, key: str, job_name: str,
                 args: Union[str, bytes, None] = ..., attributes: Union[str, bytes, None] = ...,
                 *, run_id: int = ..., resume: Optional[Tuple[str, str, str]] = ...) -> None: ...
    @property
    def id(self) -> int: ...
    @property
    def status(self) -> int: ...
    @property
    def key(self) -> str: ...
    @property
    def recovery_point(self) -> Optional[str]: ...
    @property
    def attributes(self) -> Optional[str]: ...
    @property
    def error(self) -> Optional[str]: ...
    @property
    def attempts(self) -> int: ...
    @property
    def store(self) -> Store: ...
    def step(self, callback: Callable[[str], Any]) -> int: ...
    def execute(self, callback: Callable[[str], Any]) -> int: ...
    def stage(self, adapter: str, job_name: str, payload: str,
              with_id: bool = ...) -> Optional[int]: ...
    def await_job(self, adapter: str, job_name: str, payload: str,
                  with_id: bool = ...) -> Optional[int]: ...
    def set_continuation(self, adapter: str, job_name: str, payload: str) -> None: ...
    def finish(self) -> None: ...
    def goto(self, step: str) -> None: ...
    def set_error(self, error: Union[str, bytes]) -> None: ...
    def set_attributes(self, doc: Union[str, bytes]) -> None: ...
    def close(self) -> None: ...


def open(url: str, *, lock_timeout_ms: int = ..., busy_timeout_ms: int = ...,
         synchronous: int = ..., conflict_retries: int = ..., max_attempts: int = ...,
         retry_base_ms: int = ..., match_job_name: int = ...) -> Store: ...
def borrow_sqlite(connection: Any, *, atomically: Optional[Atomically] = ...,
                  lock_timeout_ms: int = ..., busy_timeout_ms: int = ...,
                  synchronous: int = ..., conflict_retries: int = ..., max_attempts: int = ...,
                  retry_base_ms: int = ..., match_job_name: int = ...) -> Store: ...
def borrow_pg(connection: Any, *, atomically: Optional[Atomically] = ...,
              libpq_state: int = ..., lock_timeout_ms: int = ..., busy_timeout_ms: int = ...,
              synchronous: int = ..., conflict_retries: int = ..., max_attempts: int = ...,
              retry_base_ms: int = ..., match_job_name: int = ...) -> Store: ...
def acquire(store: Store, workflow: Workflow, key: str, job_name: str,
            args: Union[str, bytes, None] = ..., attributes: Union[str, bytes, None] = ...,
            *, run_id: int = ..., resume: Optional[Tuple[str, str, str]] = ...) -> Run: ...
def sqlite_libversion() -> str: ...
def pq_libversion() -> int: ...
def code_name(code: int) -> str: ...
def _register_errors(mapping: Dict[Any, Any], document: Callable[[int, str], str]) -> None: ...


# --- operator operations (py_aj_admin.c): plain dicts for acidic_job.admin ----------
ESTATE: int
ADMIN_RUNNING: int
ADMIN_STRANDED: int
ADMIN_FAILED: int
ADMIN_DEAD: int
ADMIN_AWAITING: int
ADMIN_QUEUED: int
ADMIN_SUCCEEDED: int
ADMIN_DISCARDED: int
ADMIN_FINISHED: int
ADMIN_ALL_STATES: int
ADMIN_FORCE: int
ADMIN_NO_ENQUEUE: int
ADMIN_RETRY: int
ADMIN_RESET: int
ADMIN_UNLOCK: int
ADMIN_DISCARD: int

Progress = Callable[[int, int], Any]

def admin_list(store: Store, *, states: int = ..., job_name: Optional[str] = ...,
               key_prefix: Optional[str] = ..., updated_before_us: int = ...,
               updated_since_us: int = ..., after_id: int = ..., descending: bool = ...,
               limit: int = ...) -> Tuple[List[Dict[str, Any]], Optional[int]]: ...
def admin_show(store: Store, key: Optional[str] = ..., run_id: int = ...) -> Dict[str, Any]: ...
def admin_retry(store: Store, key: Optional[str] = ..., run_id: int = ...,
                flags: int = ...) -> None: ...
def admin_reset(store: Store, key: Optional[str], run_id: int, step: str,
                flags: int = ...) -> None: ...
def admin_unlock(store: Store, key: Optional[str] = ..., run_id: int = ...,
                 flags: int = ...) -> None: ...
def admin_discard(store: Store, key: Optional[str] = ..., run_id: int = ...,
                  flags: int = ...) -> None: ...
def admin_bulk(store: Store, action: int, step: Optional[str] = ..., flags: int = ...,
               progress: Optional[Progress] = ..., *, states: int = ...,
               job_name: Optional[str] = ..., key_prefix: Optional[str] = ...,
               updated_before_us: int = ..., updated_since_us: int = ..., after_id: int = ...,
               descending: bool = ..., limit: int = ...) -> Tuple[int, int]: ...
def admin_prune(store: Store, progress: Optional[Progress] = ..., *, states: int = ...,
                job_name: Optional[str] = ..., key_prefix: Optional[str] = ...,
                updated_before_us: int = ..., updated_since_us: int = ..., after_id: int = ...,
                descending: bool = ..., limit: int = ...) -> int: ...
def admin_stats(store: Store) -> Dict[str, Any]: ...
def admin_staged_list(store: Store, after_id: int,
                      limit: int) -> Tuple[List[Dict[str, Any]], Optional[int]]: ...
def admin_state_parse(name: str) -> int: ...
def admin_error_parse(document: Union[str, bytes]) -> Dict[str, Any]: ...
