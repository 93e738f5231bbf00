"""Workflows: ``@workflow`` classes, ``@step`` methods, persisted attributes, ``@job``.

A workflow class is Ruby's ``idempotently``: each distinct set of constructor arguments
(or an explicit ``key``) is one *run*, a row in ``acidic_job_keys``. ``Cls.run(...)``
acquires the run, then executes its steps in declaration order from the run's recovery
point. Each step is one database transaction holding the step's own writes, the run's
new recovery point and its persisted attributes, and any job staged with
``perform_transactionally``: all of it commits, or none of it does.

Control flow from a step, by its return value:

* ``return acidic_job.FINISH``: finish the run successfully when this step commits
  (Ruby's ``safely_finish_acidic_job``); later steps do not run.
* ``return acidic_job.goto("name")``: continue at the named step.
* a step declared with ``awaits=[task, ...]`` stages those jobs; it may return a dict
  ``{task: (args...)}`` with the positional arguments of each awaited job (default: none).
  The run then waits; the last awaited job to succeed re-enqueues the workflow, which
  resumes at the next step.

Anything else a step returns is ignored.
"""
from __future__ import annotations

import ast
import contextlib
import contextvars
import hashlib
import inspect
import logging
import textwrap
from typing import (Any, Callable, ClassVar, Dict, Iterable, Iterator, List, Mapping,
                    Optional, Sequence, Tuple, Type, TypeVar, Union, cast, overload)

from . import _native, adapters, events
from .codec import DEFAULT_CODEC, Codec, is_utf8
from .databases import Database, DatabaseLike, resolve
from .errors import (DeadRun, DecodeError, DuplicateStep, EncodeError, Error, InvalidArgument,
                     NoDefinedSteps, document)

log = logging.getLogger("acidic_job")

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["Workflow", "workflow", "step", "job", "FINISH", "goto", "GoTo", "current_step",
           "StepContext", "WorkflowSpec", "registry", "recoverable"]


class _Finish:
    """The sentinel a step returns to finish its run early."""

    _instance: ClassVar[Optional["_Finish"]] = None

    def __new__(cls) -> "_Finish":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "acidic_job.FINISH"


#: Return this from a step to finish the run successfully when the step commits.
FINISH = _Finish()


class GoTo:
    """Return ``acidic_job.goto(name)`` from a step to continue at another step."""

    __slots__ = ("step",)

    def __init__(self, step: str) -> None:
        if not isinstance(step, str):
            raise TypeError("goto() expects a step name (str)")
        self.step = step

    def __repr__(self) -> str:
        return f"acidic_job.goto({self.step!r})"


def goto(step: Union[str, Callable[..., Any]]) -> GoTo:
    """Continue at ``step`` (a name or the step method itself) after this step commits."""
    if callable(step) and hasattr(step, "__acidic_step__"):
        return GoTo(getattr(step, "__acidic_step__").name)
    return GoTo(step)  # type: ignore[arg-type]


class StepSpec:
    """What ``@step`` records on a method."""

    __slots__ = ("fn", "name", "awaits", "takes_tx")

    def __init__(self, fn: Callable[..., Any], awaits: Sequence[Any]) -> None:
        self.fn = fn
        self.name = fn.__name__
        self.awaits = tuple(awaits)
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if not params:
            raise TypeError(f"step {self.name}: a step is a method (self[, tx])")
        if len(params) > 2:
            raise TypeError(f"step {self.name}: a step takes (self) or (self, tx)")
        self.takes_tx = len(params) == 2


@overload
def step(fn: F) -> F: ...


@overload
def step(*, awaits: Sequence[Any] = ()) -> Callable[[F], F]: ...


def step(fn: Optional[F] = None, *, awaits: Sequence[Any] = ()) -> Any:
    """Mark a method of a ``@workflow`` class as a step: ``def name(self, tx)`` or
    ``def name(self)``. Steps run in the order they are defined.

    ``awaits``: Celery tasks or RQ jobs (``@acidic_job.rq.job``) this step fans out to.
    """
    if isinstance(awaits, (str, bytes)) or not isinstance(awaits, Iterable):
        raise TypeError("awaits must be a list of tasks or jobs")
    awaits = list(awaits)

    def mark(f: F) -> F:
        if not callable(f):
            raise TypeError("@acidic_job.step decorates a method")
        f.__acidic_step__ = StepSpec(f, awaits)  # type: ignore[attr-defined]
        return f

    if fn is not None:
        return mark(fn)
    return mark


# --- the current step (for perform_transactionally) ---------------------------------

class StepContext:
    """The step being executed on this thread: its run, store and workflow instance."""

    __slots__ = ("spec", "instance", "run", "database", "store", "step", "args_doc")

    def __init__(self, spec: "WorkflowSpec", instance: Any, run: _native.Run,
                 database: Database, store: _native.Store, step: str, args_doc: str) -> None:
        self.args_doc = args_doc
        self.spec = spec
        self.instance = instance
        self.run = run
        self.database = database
        self.store = store
        self.step = step


_current: contextvars.ContextVar[Optional[StepContext]] = contextvars.ContextVar(
    "acidic_job_step", default=None)


def current_step() -> Optional[StepContext]:
    """The step executing in this thread (context), or None outside a step."""
    return _current.get()


#: job name -> workflow class (or function job), for continuations
registry: Dict[str, Any] = {}


_CODEC_ADVICE = ("pass JSON-compatible values or give the workflow a codec "
                 "(acidic_job.JSONCodec(default=..., object_hook=...))")


def _check_text(value: str, what: str) -> None:
    """Refuse a name the core cannot store: empty, with a NUL byte, not UTF-8."""
    if not value or "\0" in value or not is_utf8(value):
        raise InvalidArgument(f"{what} must be a non-empty str without NUL bytes or lone "
                              f"surrogates, got {value!r}")


#: How the run being started here can be enqueued again: (adapter, options) of the queue
#: job running it, set by the queue integrations (:func:`recoverable`).
_resume_via: contextvars.ContextVar[Optional[Tuple[str, Dict[str, Any]]]] = \
    contextvars.ContextVar("acidic_job_resume_via", default=None)


@contextlib.contextmanager
def recoverable(adapter: str, **options: Any) -> Iterator[None]:
    """Runs started inside this block are recoverable through ``adapter``: each records
    the job that resumes it (the adapter's continuation, under the run's idempotency key
    as its task or job id), which :func:`acidic_job.recover` enqueues when its worker
    died or its retry is due. The Celery task and RQ job of a workflow do this;
    ``options`` travel with the job (an RQ queue, say)."""
    token = _resume_via.set((adapter, options))
    try:
        yield
    finally:
        _resume_via.reset(token)


_SCALARS = (int, float, bool, type(None))


def _is_scalar(value: Any) -> bool:
    """A value every codec of JSON shape encodes, and that cannot change in place."""
    if type(value) in _SCALARS:
        return type(value) is not float or value == value and value not in (_INF, -_INF)
    return type(value) is str and is_utf8(value)


_INF = float("inf")


def _is_classvar(hint: Any) -> bool:
    if isinstance(hint, str):
        return hint.startswith(("ClassVar", "typing.ClassVar", "t.ClassVar"))
    return getattr(hint, "__origin__", None) is ClassVar or hint is ClassVar


class WorkflowSpec:
    """Everything ``@workflow`` derives from a class (``Cls.__acidic_workflow__``)."""

    def __init__(self, cls: type, database: Database, name: str, codec: Codec,
                 steps: List[StepSpec], attributes: Dict[str, Any],
                 signature: inspect.Signature) -> None:
        self.cls = cls
        self.database = database
        self.name = name
        self.codec = codec
        self.steps = steps
        self.steps_by_name = {s.name: s for s in steps}
        self.attributes = attributes
        self.signature = signature
        native_steps = []
        for s in steps:
            names = tuple(adapters.describe(j)[1] for j in s.awaits)
            native_steps.append((s.name, names))
        self.native = _native.Workflow(native_steps)
        self._no_attributes = codec.encode({})  # a workflow without attributes, every step
        self.attribute_names = tuple(attributes)
        # Defaults are decoded from their document for each new instance (a mutable
        # default must not be shared), unless all of them are immutable scalars.
        self._defaults_doc = self._encode_named("attribute", attributes) if attributes else ""
        self._scalar_defaults = all(_is_scalar(v) for v in attributes.values())
        params = list(signature.parameters.values())
        # run(*args) binds positionally without inspect when every parameter is a plain
        # positional one and all of them are given (the common case)
        self._positional = tuple(p.name for p in params) if all(
            p.kind == p.POSITIONAL_OR_KEYWORD for p in params) else None

    # -- encoding -------------------------------------------------------------
    def _encode_named(self, what: str, values: Mapping[str, Any]) -> str:
        try:
            text = self.codec.encode(dict(values))
            if not is_utf8(text):
                raise ValueError("the document contains a lone surrogate, which UTF-8 "
                                 "cannot encode")
            return text
        except (TypeError, ValueError, OverflowError, RecursionError) as first:
            for name, value in values.items():
                try:
                    if not is_utf8(self.codec.encode({name: value})):
                        raise ValueError("it contains a lone surrogate, which UTF-8 cannot "
                                         "encode")
                except (TypeError, ValueError, OverflowError, RecursionError) as exc:
                    raise EncodeError(f"{what} {name!r} of {self.name} cannot be encoded: "
                                      f"{exc}; {_CODEC_ADVICE}") from exc
            raise EncodeError(f"the {what}s of {self.name} cannot be encoded: {first}; "
                              f"{_CODEC_ADVICE}") from first

    def check_attribute(self, name: str, value: Any) -> None:
        if not _is_scalar(value):  # a scalar always encodes
            self._encode_named("attribute", {name: value})

    def encode_attributes(self, instance: Any) -> str:
        if not self.attributes:
            return self._no_attributes
        values = {name: getattr(instance, name) for name in self.attribute_names}
        if self._scalar_defaults and all(values[name] is default
                                         for name, default in self.attributes.items()):
            return self._defaults_doc  # a new run's, mostly: no encoding
        return self._encode_named("attribute", values)

    def apply_attributes(self, instance: Any, doc: Optional[str]) -> None:
        """Set the instance's attributes from a stored document (None: the defaults).
        A document that does not decode to an object raises ValueError (or the codec's
        error)."""
        stored: Dict[str, Any] = {}
        if doc:
            decoded = self.codec.decode(doc)
            if not isinstance(decoded, dict):
                raise ValueError(f"it decodes to a {type(decoded).__name__}, not an object")
            stored = decoded
        if not self.attributes:
            return
        defaults = self.attributes
        if not self._scalar_defaults and any(name not in stored for name in defaults):
            defaults = self.codec.decode(self._defaults_doc)
        for name in self.attribute_names:
            object.__setattr__(instance, name, stored[name] if name in stored else defaults[name])

    def encode_arguments(self, args: Tuple[Any, ...], kwargs: Dict[str, Any]
                         ) -> Tuple[str, inspect.BoundArguments]:
        names = self._positional
        if names is not None and not kwargs and len(args) == len(names):
            arguments: Mapping[str, Any] = dict(zip(names, args))
            bound = inspect.BoundArguments(self.signature, arguments)  # type: ignore[arg-type]
            return self._encode_named("argument", arguments), bound
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.name}.run(): {exc}") from None
        bound.apply_defaults()
        return self._encode_named("argument", bound.arguments), bound

    def decode_arguments(self, doc: str) -> inspect.BoundArguments:
        arguments = self.codec.decode(doc) if doc else {}
        if not isinstance(arguments, dict):
            raise Error(f"the stored arguments of {self.name} are not an object: {doc!r}")
        return inspect.BoundArguments(self.signature, arguments)  # type: ignore[arg-type]

    # -- running --------------------------------------------------------------
    def new_instance(self, bound: inspect.BoundArguments) -> Any:
        instance = cast(Any, self.cls).__new__(self.cls)
        self.apply_attributes(instance, None)
        instance.__init__(*bound.args, **bound.kwargs)
        return instance

    def run(self, args: Tuple[Any, ...], kwargs: Dict[str, Any], key: Optional[str]) -> bool:
        if key is not None and not isinstance(key, str):
            raise TypeError(f"key must be a str, got {type(key).__name__}")
        if key is not None:
            _check_text(key, "the idempotency key")
        args_doc, bound = self.encode_arguments(args, kwargs)
        if key is None:
            key = hashlib.sha1(f"{self.name}\n{args_doc}".encode("utf-8")).hexdigest()
        instance = self.new_instance(bound)
        return self.perform(instance, key, args_doc)

    def resume(self, key: str, args_doc: str) -> bool:
        """Continue the run ``key`` (a continuation after awaited jobs, or a recovery)."""
        instance = self.new_instance(self.decode_arguments(args_doc))
        return self.perform(instance, key, args_doc)

    def perform(self, instance: Any, key: str, args_doc: str) -> bool:
        """Run (or resume) the run ``key``: the core acquires it in its first step's
        transaction and executes every step; this layer only runs each step's code."""
        via = _resume_via.get()
        resume = None
        if via is not None:
            resume = adapters.resume_job(via[0], self.name, self.cls.__module__, key,
                                         args_doc, via[1])
        database = self.database.current()
        with database.lock:
            store = database.store()
            store.set_events(events.handle, events.wanted())
            attrs_doc = self.encode_attributes(instance)
            run = _native.Run(store, self.native, key, self.name, args_doc, attrs_doc,
                              resume=resume)
            call = _StepCall(self, instance, run, database, store, args_doc, attrs_doc)
            token = events.running.set(call)
            try:
                status = run.execute(call)
                if status == _native.RUN_DEAD:
                    raise DeadRun(f"run {key!r} of {self.name} failed {run.attempts} times, "
                                  "the most its max_attempts allows: it is dead and runs "
                                  "again only when an operator retries it (its last error "
                                  "is in error_object)")
            finally:
                events.running.reset(token)
                run.close()
            return status == _native.RUN_SUCCEEDED


class _StepCall:
    """The callable the core calls for each step of one run; its state is what the
    instance's attributes were last set from."""

    def __init__(self, spec: WorkflowSpec, instance: Any, run: _native.Run,
                 database: Database, store: _native.Store, args_doc: str,
                 attrs_doc: str) -> None:
        self.spec = spec
        self.instance = instance
        self.run = run
        self.database = database
        #: the attribute document the instance holds (a new run's own)
        self.synced: Optional[str] = attrs_doc
        #: the exception the failing step raised (events report it)
        self.error: Optional[BaseException] = None
        self.context = StepContext(spec, instance, run, database, store, "", args_doc)

    def _sync(self, doc: Optional[str]) -> None:
        """Give the instance the run's attributes: those stored on a resumed run (the
        first step), or those before a step the core runs again (a retried conflict)."""
        spec = self.spec
        try:
            spec.apply_attributes(self.instance, doc)
        except Exception as exc:
            raise DecodeError(
                f"the attr_accessors column of run {self.run.key!r} (id {self.run.id}) of "
                f"{spec.name} cannot be decoded: {exc}; fix or clear the column (the run "
                "is unlocked and keeps this error until then)") from exc
        self.synced = doc

    def __call__(self, step_name: str) -> None:
        spec = self.spec
        run = self.run
        context = self.context
        context.step = step_name
        token = _current.set(context)
        try:
            doc = run.attributes
            if doc != self.synced:
                self._sync(doc)
            step_spec = spec.steps_by_name[step_name]
            if step_spec.takes_tx:
                tx = self.database.cursor(context.store)
                try:
                    result = step_spec.fn(self.instance, tx)
                finally:
                    close = getattr(tx, "close", None)
                    if close is not None:
                        try:
                            close()
                        except Exception:
                            pass
            else:
                result = step_spec.fn(self.instance)
            if result is not None or step_spec.awaits:
                self._apply(step_spec, result)
            attributes = spec.encode_attributes(self.instance)
            if attributes != doc:  # unchanged attributes cost no write
                run.set_attributes(attributes)
                self.synced = attributes
        except BaseException as exc:
            error = self.database.step_error(exc)
            self.error = error or exc
            try:
                run.set_error(document(self.error))
            except Exception:
                pass
            if error is not None:
                raise error from exc
            raise
        finally:
            _current.reset(token)

    def _apply(self, step_spec: StepSpec, result: Any) -> None:
        if result is FINISH:
            self.run.finish()
            return
        if isinstance(result, GoTo):
            self.run.goto(result.step)
            return
        if not step_spec.awaits:
            return
        per_job: Mapping[Any, Any] = result if isinstance(result, Mapping) else {}
        first_adapter = None
        for job_ref in step_spec.awaits:
            adapter, name = adapters.describe(job_ref)
            first_adapter = first_adapter or adapter
            args = per_job.get(job_ref, per_job.get(name, ()))
            if not isinstance(args, (tuple, list)):
                args = (args,)
            payload = adapters.encode_payload(job_ref, tuple(args), {})
            self.run.await_job(adapter, name, payload)
        assert first_adapter is not None
        spec = self.spec
        cont_name, cont_payload = adapters.continuation(
            first_adapter, spec.name, spec.cls.__module__, self.run.key, self.context.args_doc)
        self.run.set_continuation(first_adapter, cont_name, cont_payload)


def _collect_steps(cls: type) -> List[StepSpec]:
    found: Dict[str, StepSpec] = {}
    for klass in reversed(cls.__mro__):
        for attr, value in vars(klass).items():
            spec = getattr(value, "__acidic_step__", None)
            if isinstance(spec, StepSpec):
                if spec.name in found and attr != spec.name:
                    raise DuplicateStep(f"two steps named {spec.name!r} in {cls.__qualname__}: "
                                        "give every step a unique name")
                found.pop(attr, None)  # an override keeps the subclass's position
                found[attr] = spec
    return list(found.values())


def _collect_attributes(cls: type, codec: Codec, name: str) -> Dict[str, Any]:
    attributes: Dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        annotations = vars(klass).get("__annotations__", {})
        for attr, hint in annotations.items():
            if attr.startswith("_") or _is_classvar(hint) or attr not in vars(klass):
                continue
            default = vars(klass)[attr]
            if callable(default) or isinstance(default, (property, staticmethod, classmethod)):
                continue
            attributes[attr] = default
    try:
        codec.encode(attributes)
    except (TypeError, ValueError, OverflowError) as exc:
        for attr, value in attributes.items():
            try:
                codec.encode({attr: value})
            except (TypeError, ValueError, OverflowError) as e:
                raise EncodeError(f"the default of attribute {attr!r} of {name} cannot be "
                                  f"encoded: {e}; {_CODEC_ADVICE}") from e
        raise EncodeError(f"the attribute defaults of {name} cannot be encoded: {exc}; "
                          f"{_CODEC_ADVICE}") from exc
    return attributes


def _settings(db: DatabaseLike, name: Optional[str], codec: Optional[Codec],
              **options: Any) -> Tuple[Database, Optional[str], Codec]:
    """Validate what a workflow is declared with (both forms)."""
    database = resolve(db, enqueue=adapters.dispatch, **options)
    the_codec: Codec = codec if codec is not None else DEFAULT_CODEC
    if not (callable(getattr(the_codec, "encode", None)) and
            callable(getattr(the_codec, "decode", None))):
        raise TypeError("codec must have encode(value) -> str and decode(str) -> value")
    if name is not None:
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        _check_text(name, "the workflow name")
    return database, name, the_codec


def _is_step_decorator(node: ast.expr) -> bool:
    if isinstance(node, ast.Call):
        node = node.func
    return (isinstance(node, ast.Name) and node.id == "step") or \
        (isinstance(node, ast.Attribute) and node.attr == "step")


def _check_source_for_duplicate_steps(cls: type, steps: List[StepSpec]) -> None:
    """The decorator form sees the class after its body ran, when a second ``@step def
    charge`` has already replaced the first. Read the class's source instead. Only a
    source that matches the live class counts (the surviving step's first line is the
    last definition's), so a missing, edited or ambiguous source never raises."""
    try:
        lines, first = inspect.findsource(cls)
        tree = ast.parse(textwrap.dedent("".join(inspect.getblock(lines[first:]))))
    except (OSError, TypeError, SyntaxError, IndexError):
        return
    if not tree.body or not isinstance(tree.body[0], ast.ClassDef):
        return
    by_name = {s.name: s for s in steps}
    seen: Dict[str, int] = {}
    for item in tree.body[0].body:
        if not isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) or \
                not any(_is_step_decorator(d) for d in item.decorator_list):
            continue
        if item.name in seen and item.name in by_name:
            live = by_name[item.name].fn
            line = first + min(d.lineno for d in item.decorator_list)  # 1-based
            if getattr(getattr(live, "__code__", None), "co_firstlineno", None) == line:
                raise DuplicateStep(
                    f"two steps named {item.name!r} in {cls.__qualname__} (lines "
                    f"{first + seen[item.name]} and {first + item.lineno}): the second "
                    "replaces the first; give every step a unique name")
        seen[item.name] = item.lineno


def _define(cls: type, database: Database, name: Optional[str], codec: Codec,
            form: str) -> WorkflowSpec:
    """Derive the WorkflowSpec of ``cls`` and register it (both forms)."""
    job_name = name or f"{cls.__module__}.{cls.__qualname__}"
    if "run" in vars(cls):
        raise TypeError(f"{cls.__qualname__} defines 'run', which {form} provides (rename "
                        "the method)")
    steps = _collect_steps(cls)
    if not steps:
        raise NoDefinedSteps(f"{cls.__qualname__} has no steps: decorate at least one "
                             "method with @acidic_job.step")
    attributes = _collect_attributes(cls, codec, job_name)
    init = cls.__init__  # type: ignore[misc]
    if init is object.__init__:
        signature = inspect.Signature()
    else:
        sig = inspect.signature(init)
        params = list(sig.parameters.values())[1:]
        if any(p.name == "key" for p in params):
            raise TypeError(f"{cls.__qualname__}.__init__ must not take a parameter named "
                            "'key' (run() reserves it for the idempotency key)")
        signature = sig.replace(parameters=params)
    spec = WorkflowSpec(cls, database, job_name, codec, steps, attributes, signature)
    registry[job_name] = cls
    return spec


class _WorkflowNamespace(Dict[str, Any]):
    """The namespace a :class:`Workflow` class body runs in. It sees every definition in
    order, so a second ``@step def charge`` raises DuplicateStep instead of silently
    replacing the first."""

    def __setitem__(self, key: str, value: Any) -> None:
        if isinstance(getattr(self.get(key), "__acidic_step__", None), StepSpec):
            raise DuplicateStep(f"two steps named {key!r} in {self.get('__qualname__', '?')}: "
                                "the second replaces the first; give every step a unique "
                                "name")
        super().__setitem__(key, value)


class _WorkflowType(type):
    """The metaclass of :class:`Workflow`: only gives class bodies their namespace."""

    @classmethod
    def __prepare__(mcs, cls_name: str, bases: Tuple[type, ...], /,
                    **kwargs: Any) -> Dict[str, Any]:
        # positional-only: the class keyword name= (the job name) passes through kwargs
        return _WorkflowNamespace()


class Workflow(metaclass=_WorkflowType):
    """Base class of a workflow (Ruby's ``idempotently``); the typed form::

        class RideCreate(acidic_job.Workflow, database=db):
            ride_id: int | None = None           # persisted with each step

            def __init__(self, user_id: int) -> None:
                self.user_id = user_id

            @acidic_job.step
            def create_ride(self, tx: acidic_job.Cursor) -> None: ...

        RideCreate.run(42)                       # True once the run has succeeded

    Class keywords: ``database`` (a URL, a sqlite3 / psycopg / psycopg2 connection, or
    a callable returning one; see :mod:`acidic_job.databases`), ``name`` (the job name
    stored with each run, default ``module.QualName``), ``codec`` (how arguments and
    attributes are encoded, default canonical JSON), ``lock_timeout`` (seconds, default
    90: how long a run stays locked by a worker that died), ``busy_timeout`` and
    ``synchronous`` (SQLite URL stores), ``conflict_retries`` (serialization failures
    the core retries), ``max_attempts`` (default 25: a run that has failed this many
    times is dead, and recovery no longer retries it; 0 for no limit) and ``retry_base``
    (seconds, default 15: recovery retries a failed run after this, doubling with each
    attempt up to an hour). An option left out takes the core's default. A class
    without ``database`` is an abstract base for workflows that name theirs; a subclass
    of a workflow is a workflow on the same database.

    ``run(*args, key=None, **kwargs)`` takes the arguments of ``__init__``; they
    identify the run unless ``key`` is given. Annotated class attributes with a default
    are persisted with each step.
    """

    __acidic_workflow__: ClassVar[WorkflowSpec]

    def __init_subclass__(cls, *, database: Optional[DatabaseLike] = None,
                          name: Optional[str] = None, codec: Optional[Codec] = None,
                          lock_timeout: Optional[float] = None,
                          busy_timeout: Optional[float] = None,
                          synchronous: Optional[str] = None,
                          conflict_retries: Optional[int] = None,
                          max_attempts: Optional[int] = None,
                          retry_base: Optional[float] = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        options = {k: v for k, v in (("lock_timeout", lock_timeout),
                                     ("busy_timeout", busy_timeout),
                                     ("synchronous", synchronous),
                                     ("conflict_retries", conflict_retries),
                                     ("max_attempts", max_attempts),
                                     ("retry_base", retry_base)) if v is not None}
        parent: Optional[WorkflowSpec] = getattr(cls, "__acidic_workflow__", None)
        if database is None:
            if options:
                raise TypeError(f"{cls.__qualname__}: {', '.join(options)} need database=")
            if parent is None:
                return  # an abstract base: its subclasses name their database
            db: DatabaseLike = parent.database
            codec = codec if codec is not None else parent.codec
        else:
            db = database
        the_database, the_name, the_codec = _settings(db, name, codec, **options)
        cls.__acidic_workflow__ = _define(cls, the_database, the_name, the_codec,
                                          "acidic_job.Workflow")

    @classmethod
    def run(cls, *args: Any, key: Optional[str] = None, **kwargs: Any) -> bool:
        """Run (or resume) the workflow; True once the run has succeeded, False while it
        awaits jobs. The arguments are those of ``__init__``."""
        spec: Optional[WorkflowSpec] = cls.__dict__.get("__acidic_workflow__")
        if spec is None:
            raise TypeError(f"{cls.__qualname__} is not a workflow: it names no database "
                            f"(class {cls.__name__}(acidic_job.Workflow, database=...))")
        return spec.run(args, kwargs, key)

    def __setattr__(self, attr: str, value: Any) -> None:
        spec: Optional[WorkflowSpec] = getattr(type(self), "__acidic_workflow__", None)
        if spec is not None and attr in spec.attributes:
            spec.check_attribute(attr, value)  # an unencodable value fails here, not later
        super().__setattr__(attr, value)


def workflow(db: DatabaseLike, *, name: Optional[str] = None, codec: Optional[Codec] = None,
             lock_timeout: Optional[float] = None, busy_timeout: Optional[float] = None,
             synchronous: Optional[str] = None, conflict_retries: Optional[int] = None,
             max_attempts: Optional[int] = None,
             retry_base: Optional[float] = None) -> Callable[[Type[T]], Type[T]]:
    """The decorator form of :class:`Workflow`, kept for compatibility:
    ``@acidic_job.workflow(db)`` on a plain class takes the same settings and gives the
    class the same ``run`` classmethod. Type checkers do not see what a class decorator
    adds (mypy reports ``"Type[RideCreate]" has no attribute "run"``): prefer
    ``class RideCreate(acidic_job.Workflow, database=db)``.
    """
    database, the_name, the_codec = _settings(
        db, name, codec, lock_timeout=lock_timeout, busy_timeout=busy_timeout,
        synchronous=synchronous, conflict_retries=conflict_retries, max_attempts=max_attempts,
        retry_base=retry_base)

    def decorate(cls: Type[T]) -> Type[T]:
        if not isinstance(cls, type):
            raise TypeError("@acidic_job.workflow decorates a class; use @acidic_job.job "
                            "for a function")
        if issubclass(cls, Workflow):
            raise TypeError(f"{cls.__qualname__} is an acidic_job.Workflow: pass database= "
                            "in its class line instead of decorating it")
        spec = _define(cls, database, the_name, the_codec, "@acidic_job.workflow")
        _check_source_for_duplicate_steps(cls, spec.steps)
        cls.__acidic_workflow__ = spec  # type: ignore[attr-defined]

        def run(klass: type, *args: Any, key: Optional[str] = None, **kwargs: Any) -> bool:
            """Run (or resume) the workflow; True once the run has succeeded."""
            the_spec: WorkflowSpec = getattr(klass, "__acidic_workflow__")
            return the_spec.run(args, kwargs, key)

        cls.run = classmethod(run)  # type: ignore[attr-defined]

        if spec.attributes:
            base_setattr = cls.__setattr__

            def __setattr__(self: Any, attr: str, value: Any) -> None:
                if attr in spec.attributes:
                    spec.check_attribute(attr, value)
                base_setattr(self, attr, value)

            cls.__setattr__ = __setattr__  # type: ignore[assignment]
        return cls

    return decorate


class FunctionJob:
    """A single-step workflow made from a function (``@acidic_job.job(db)``).

    ``fn(tx, *args, **kwargs)`` runs once per set of arguments (or per ``key``):
    ``fn.run(*args, key=None, **kwargs) -> bool``; calling the object is the same.
    """

    def __init__(self, fn: Callable[..., Any], spec: WorkflowSpec) -> None:
        self.fn = fn
        self.__acidic_workflow__ = spec
        self.__name__ = getattr(fn, "__name__", "job")
        self.__qualname__ = getattr(fn, "__qualname__", self.__name__)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def run(self, *args: Any, key: Optional[str] = None, **kwargs: Any) -> bool:
        return self.__acidic_workflow__.run(args, kwargs, key)

    __call__ = run

    def __repr__(self) -> str:
        return f"<acidic_job.job {self.__acidic_workflow__.name}>"


def job(db: DatabaseLike, *, name: Optional[str] = None, codec: Optional[Codec] = None,
        **options: Any) -> Callable[[Callable[..., Any]], FunctionJob]:
    """The function form: ``@acidic_job.job(db) def send(tx, user_id): ...``.

    The function is the one step of a workflow; its first parameter receives ``tx``, the
    others are the job's arguments (which identify the run, as for a class).
    """

    def decorate(fn: Callable[..., Any]) -> FunctionJob:
        if not callable(fn) or isinstance(fn, type):
            raise TypeError("@acidic_job.job decorates a function")
        sig = inspect.signature(fn)
        params = list(sig.parameters.values())
        if not params or params[0].kind not in (params[0].POSITIONAL_ONLY,
                                                params[0].POSITIONAL_OR_KEYWORD):
            raise TypeError(f"{fn.__qualname__}: the first parameter receives tx")
        job_sig = sig.replace(parameters=params[1:])
        if any(p.name == "key" for p in params[1:]):
            raise TypeError(f"{fn.__qualname__} must not take a parameter named 'key'")
        job_name = name or f"{fn.__module__}.{fn.__qualname__}"

        def body(self: Any, tx: Any) -> Any:
            return fn(tx, *self._bound.args, **self._bound.kwargs)

        body.__name__ = fn.__name__

        def init(self: Any, *args: Any, **kwargs: Any) -> None:
            self._bound = job_sig.bind(*args, **kwargs)

        cls = type(fn.__name__, (), {"__init__": init, fn.__name__: step(body),
                                     "__module__": fn.__module__,
                                     "__qualname__": fn.__qualname__})
        setattr(init, "__signature__", inspect.Signature(
            [inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)] + params[1:]))
        workflow(db, name=job_name, codec=codec, **options)(cls)
        fj = FunctionJob(fn, cls.__acidic_workflow__)  # type: ignore[attr-defined]
        registry[job_name] = fj
        return fj

    return decorate
