"""The ``acidic-job`` command: operator tools over :mod:`acidic_job.admin`.

``acidic-job COMMAND --database URL ...`` (or ``python -m acidic_job COMMAND``)::

    list      runs, filtered by state, job, key prefix and age; pages by cursor
    show      one run in full: steps, error, attributes, staged jobs, batch
    retry     retry a run at its recovery point (--all: every run a filter selects)
    reset     run a run again from a step (--to-step)
    unlock    release the lock of a run whose worker died
    discard   finish a run as failed, so that it never runs again
    drain     send staged jobs that were never delivered
    recover   hand stranded and due failed runs back to their queue
    prune     delete finished runs older than an age (--finished-before 7d)
    stats     counts by state and job, oldest stranded run, staged backlog, batches

``--database`` takes a SQLite path or URL (``sqlite:app.db``) or a PostgreSQL URL or
conninfo, else ``$ACIDIC_JOB_DATABASE_URL``. ``--lock-timeout`` must be the workers' (a
run locked more recently is running and refused unless ``--force``). ``--json`` prints
what the dashboard's API returns. Exit codes: 0 done; 1 nothing matched, or the action
was refused (the message says why), or the database failed; 2 a usage error.

Retry and reset stage the run's resume job in the action's transaction. The command
has no application, so it can send the job only through an adapter it can import:
``--import yourapp.tasks`` (the module that calls ``acidic_job.celery.install`` or
``acidic_job.rq.install``) or ``--rq-redis URL``. Without one, the job stays staged and
the application's next drain sends it (its workers, or ``acidic-job drain --import
yourapp.tasks``).
"""
from __future__ import annotations

import importlib
import json
import logging
import os
import re
import sys
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from . import VERSION
from .adapters import installed
from .admin import (STATES, Admin, Batch, Run, RunDetail, Staged, Stats, parse_states,
                    to_json_value)
from .errors import (ActionNotApplicable, Error, InvalidArgument, LockedIdempotencyKey,
                     NotFound, UnknownRecoveryPoint)

__all__ = ["main", "cli", "parse_duration", "database_url"]

F = TypeVar("F", bound=Callable[..., Any])

#: exit codes
OK, NOTHING, USAGE = 0, 1, 2

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s|ms)?", re.I)
_UNITS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(text: str) -> timedelta:
    """``7d``, ``1h30m``, ``90s``, ``500ms``, ``2w``, or a number of seconds."""
    s = text.strip().lower()
    pos, total = 0, 0.0
    while pos < len(s):
        m = _DURATION.match(s, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"{text!r} is not a duration (e.g. 7d, 1h30m, 90s)")
        total += float(m.group(1)) * _UNITS[(m.group(2) or "s").lower()]
        pos = m.end()
        while pos < len(s) and s[pos] == " ":
            pos += 1
    if not s:
        raise ValueError("an empty duration")
    return timedelta(seconds=total)


def parse_time(text: str) -> datetime:
    """An ISO 8601 date or time (``2026-12-01``, ``2026-12-01T09:30``, ``...Z``); UTC
    unless it names its offset."""
    t = text.strip()
    if t.endswith(("Z", "z")):
        t = t[:-1] + "+00:00"
    when = datetime.fromisoformat(t)
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def database_url(value: str) -> str:
    """The store URL for ``--database``: URLs and conninfo strings as given, a plain path
    as ``sqlite:PATH``."""
    v = value.strip()
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", v) or "=" in v:
        return v  # a URL (the core refuses a scheme it does not know) or a conninfo
    return f"sqlite:{v}"


def missing_sqlite_file(url: str) -> Optional[str]:
    """The path of a ``sqlite:`` URL whose file does not exist, else None: opening it
    would create an empty database, and an operator command has nothing to do in one."""
    if not url.startswith("sqlite:"):
        return None
    path = url[len("sqlite:"):]
    if path.startswith("//"):
        path = path[2:]
    if path == ":memory:" or os.path.exists(path):
        return None
    return path


# --- the shared options ---------------------------------------------------------------

class Duration(click.ParamType):
    name = "DURATION"

    def convert(self, value: Any, param: Any, ctx: Any) -> timedelta:
        if isinstance(value, timedelta):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class Time(click.ParamType):
    name = "TIME"

    def convert(self, value: Any, param: Any, ctx: Any) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_time(str(value))
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 date or time (e.g. 2026-12-01 or "
                      "2026-12-01T09:30Z)", param, ctx)


class States(click.ParamType):
    name = "STATE"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        try:
            parse_states(str(value))
        except InvalidArgument as exc:
            self.fail(exc.message, param, ctx)
        return str(value)


def database_options(f: F) -> F:
    """--database, --lock-timeout, --json, --import: on every command."""
    f = click.option("--json", "as_json", is_flag=True,
                     help="Print JSON (the dashboard API's documents) instead of text.")(f)
    f = click.option("--import", "imports", multiple=True, metavar="MODULE",
                     help="Import MODULE first: the application's module that installs its "
                          "queue adapters (acidic_job.celery.install / rq.install), so "
                          "staged jobs are sent at once. Repeatable.")(f)
    f = click.option("--lock-timeout", type=float, metavar="SECONDS",
                     envvar="ACIDIC_JOB_LOCK_TIMEOUT",
                     help="The workers' lock timeout: a run locked more recently is running "
                          "(refused without --force), longer is stranded. Default 90, or "
                          "$ACIDIC_JOB_LOCK_TIMEOUT.")(f)
    f = click.option("--database", "--url", "database", metavar="URL",
                     envvar="ACIDIC_JOB_DATABASE_URL",
                     help="A SQLite path or URL (sqlite:app.db), a PostgreSQL URL "
                          "(postgresql://...) or conninfo; default $ACIDIC_JOB_DATABASE_URL.")(f)
    return f


def rq_options(f: F) -> F:
    f = click.option("--rq-queue", default="default", show_default=True,
                     help="The RQ queue for --rq-redis.")(f)
    f = click.option("--rq-redis", metavar="URL",
                     help="Install the RQ adapter on this Redis (instead of --import).")(f)
    return f


def filter_options(f: F) -> F:
    """The filters of list and of the bulk forms of the actions."""
    f = click.option("--since", type=Time(), metavar="TIME",
                     help="Runs updated at or after TIME (ISO 8601, UTC by default).")(f)
    f = click.option("--older-than", type=Duration(), metavar="DURATION",
                     help="Runs last updated more than DURATION ago (1h, 7d, 90s).")(f)
    f = click.option("--key-prefix", metavar="PREFIX", help="Runs whose key starts with PREFIX.")(f)
    f = click.option("--job", metavar="NAME", help="Runs of this job.")(f)
    f = click.option("--state", "states", multiple=True, type=States(),
                     help="Runs in STATE: " + ", ".join(STATES) + ", finished (succeeded and "
                          "discarded). Repeatable, or comma-separated.")(f)
    return f


class Env:
    """What a command works with: the Admin, the consoles, the output mode."""

    def __init__(self, database: Optional[str], lock_timeout: Optional[float], as_json: bool,
                 imports: Tuple[str, ...] = (), rq_redis: Optional[str] = None,
                 rq_queue: str = "default") -> None:
        self.as_json = as_json
        ctx = click.get_current_context(silent=True)
        self.command = ctx.info_name if ctx is not None else ""
        self.out = _console(sys.stdout, stderr=False)
        self.err = _console(sys.stderr, stderr=True)
        if not database:
            raise click.UsageError("no database: pass --database URL (or --url URL), or set "
                                   "ACIDIC_JOB_DATABASE_URL")
        if lock_timeout is not None and lock_timeout <= 0:
            raise click.BadParameter("must be > 0 seconds", param_hint="--lock-timeout")
        self.url = database_url(database)
        missing = missing_sqlite_file(self.url)
        if missing is not None:
            self.fail(NOTHING, f"no SQLite database at {missing!r}: check the path of "
                               "--database (acidic-job never creates a database)")
        for module in imports:
            try:
                importlib.import_module(module)
            except ImportError as exc:
                self.fail(USAGE, f"--import {module}: {exc}")
        if rq_redis:
            from redis import Redis

            from . import rq as aj_rq
            aj_rq.install(self.url, Redis.from_url(rq_redis), rq_queue, recover_every=None)
        self.admin = Admin(self.url, lock_timeout=lock_timeout)

    # -- output ---------------------------------------------------------------------
    def json(self, doc: Any) -> None:
        click.echo(json.dumps(to_json_value(doc), indent=2, ensure_ascii=False))

    def line(self, text: str) -> None:
        click.echo(text)

    def print(self, renderable: Any) -> None:
        """Print a table or text: styled on a terminal; plain, without the trailing
        spaces of table cells, in a file or a pipe."""
        if self.out.is_terminal:
            self.out.print(renderable)
            return
        with self.out.capture() as captured:
            self.out.print(renderable)
        click.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))

    def fail(self, code: int, message: str, error: Optional[Error] = None) -> None:
        """Print one line (and, with --json, the API's error document) and exit."""
        one_line = " ".join(message.split())
        if self.as_json:
            name = error.code_name if error is not None and error.code_name else "error"
            self.json({"error": {"code": name, "message": one_line}})
        click.echo(f"acidic-job {self.command}: {one_line}", err=True)
        raise SystemExit(code)

    # -- progress -------------------------------------------------------------------
    def progress(self, label: str) -> "ProgressReporter":
        return ProgressReporter(self.err if self.err.is_terminal else None, label)


def _console(stream: Any, stderr: bool) -> Console:
    if stream.isatty():
        return Console(stderr=stderr, highlight=False)
    # a file or a pipe: no colours, no wrapping at 80 columns
    width = int(os.environ.get("COLUMNS") or 0) or 200
    return Console(stderr=stderr, highlight=False, width=width, no_color=True,
                   color_system=None, soft_wrap=True)


class ProgressReporter:
    """A progress bar on a terminal; nothing otherwise (the command prints a count)."""

    def __init__(self, console: Optional[Console], label: str) -> None:
        self.console = console
        self.label = label
        self.done = 0
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> "ProgressReporter":
        if self.console is not None:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn)
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(),
                                 console=self.console, transient=False)
            self._bar.__enter__()
            self._task = self._bar.add_task(self.label, total=None)
        return self

    def __call__(self, done: int, total: int) -> None:
        self.done = done
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=max(total, done))

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


def run_command(env_args: Dict[str, Any], body: Callable[[Env], int]) -> None:
    """Build the Env and run ``body``, turning acidic_job's errors into one line and an
    exit code."""
    env = Env(**env_args)
    try:
        code = body(env)
    except KeyboardInterrupt:
        click.echo(f"acidic-job {env.command}: interrupted; what was committed before stays",
                   err=True)
        raise SystemExit(130)
    except LockedIdempotencyKey as exc:
        message = str(exc)
        if "force" in message:
            message += " (--force)"
        env.fail(NOTHING, message, exc)
    except (NotFound, ActionNotApplicable, UnknownRecoveryPoint) as exc:
        env.fail(NOTHING, str(exc), exc)
    except InvalidArgument as exc:
        message = str(exc)
        if "more than one run" in message:
            message += " (pass --id ID)"
        env.fail(USAGE, message, exc)
    except Error as exc:
        env.fail(NOTHING, str(exc), exc)
    finally:
        env.admin.close()
    raise SystemExit(code)


# --- formatting -------------------------------------------------------------------------

def _when(t: Optional[datetime]) -> str:
    return "" if t is None else t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _age(t: Optional[datetime]) -> str:
    if t is None:
        return ""
    seconds = max(0, int((datetime.now(timezone.utc) - t).total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def _error_line(run: Run, width: int = 60) -> str:
    if run.error_class is None and run.error_message is None:
        return ""
    text = ": ".join(p for p in (run.error_class, run.error_message) if p)
    return text if len(text) <= width else text[:width - 1] + "…"


def _describe(run: Run) -> str:
    return f"run {run.id} {run.key!r}" + (f" ({run.job_name})" if run.job_name else "")


def runs_table(runs: Tuple[Run, ...]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for name, justify in (("ID", "right"), ("KEY", "left"), ("JOB", "left"),
                          ("STATE", "left"), ("STEP", "left"), ("ATTEMPTS", "right"),
                          ("LOCKED FOR", "right"), ("ERROR", "left"), ("UPDATED", "left")):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for r in runs:
        table.add_row(str(r.id), Text(r.key), Text(r.job_name or ""), r.state,
                      Text(r.recovery_point or ""), str(r.attempts), _age(r.locked_at),
                      Text(_error_line(r)), _when(r.updated_at))
    return table


def _fields(rows: List[Tuple[str, str]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(no_wrap=True)
    table.add_column()
    for name, value in rows:
        table.add_row(name, Text(value))
    return table


def _staged_line(s: Staged) -> str:
    parts = [f"#{s.id}", s.adapter or "?", s.job_name or "?"]
    if s.batch_id:
        parts.append(f"batch {s.batch_id}")
    parts.append(f"staged {_when(s.created_at)}" if s.created_at else "")
    parts.append(f"sent {_when(s.delivered_at)}" if s.delivered_at else "never sent")
    return "  ".join(p for p in parts if p)


def _batch_line(b: Batch) -> str:
    cont = " ".join(p for p in (b.continuation_adapter, b.continuation_job_name) if p)
    return (f"#{b.id} of run {b.run_id}, step {b.step!r}: {b.remaining} job(s) to go"
            + (f"; then {cont}" if cont else "") + f"; opened {_when(b.created_at)}")


def print_detail(env: Env, d: RunDetail) -> None:
    r = d.run
    out = env
    out.print(Text(_describe(r), style="bold"))
    locked = f"since {_when(r.locked_at)} ({_age(r.locked_at)})" if r.locked_at else "no"
    if r.locked_at and r.locked_by:
        locked += f" by {r.locked_by}"
    rows = [("state", r.state), ("recovery point", r.recovery_point or ""),
            ("attempts", str(r.attempts)), ("locked", locked)]
    for name, t in (("created", r.created_at), ("last run", r.last_run_at),
                    ("updated", r.updated_at), ("recover at", r.recover_at),
                    ("dead since", r.dead_at)):
        if t is not None:
            rows.append((name, _when(t)))
    out.print(_fields(rows))
    if d.steps:
        out.print(Text("\nsteps", style="bold"))
        for s in d.steps:
            awaits = f"  (awaits {', '.join(s.awaits)})" if s.awaits else ""
            out.print(Text(f"  {s.state:<8} {s.name}{awaits}"))
    if d.error is not None:
        e = d.error
        out.print(Text(f"\nerror ({e.format})", style="bold"))
        out.print(Text(f"  {e.class_name or '(no class)'}"))
        for line in (e.message or "").splitlines() or [""]:
            out.print(Text(f"    {line}"))
        for line in e.backtrace:
            out.print(Text(f"      {line}"))
    if d.attributes is not None:
        out.print(Text(f"\nattributes ({d.attributes_format})", style="bold"))
        for line in (d.attributes_pretty() or "").splitlines():
            out.print(Text(f"  {line}"))
    if d.job_args is not None:
        out.print(Text("\narguments", style="bold"))
        out.print(Text(f"  {d.job_args}"))
    if d.staged:
        out.print(Text(f"\nstaged jobs ({len(d.staged)})", style="bold"))
        for job in d.staged:
            out.print(Text(f"  {_staged_line(job)}"))
    if d.batch is not None:
        out.print(Text("\nawaiting batch", style="bold"))
        out.print(Text(f"  {_batch_line(d.batch)}"))
    out.print(Text("\nresume job", style="bold"))
    if d.resume is None:
        out.print(Text("  none: retry and recovery cannot enqueue this run (started without "
                       "a queue); retry --no-enqueue and run it again from the application"))
    else:
        out.print(Text(f"  {d.resume.adapter} {d.resume.job_name or ''}".rstrip()))


def print_stats(env: Env, s: Stats) -> None:
    out = env
    out.print(Text(f"runs: {s.total}", style="bold"))
    if s.states:
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
        table.add_column("STATE")
        table.add_column("RUNS", justify="right")
        for c in s.states:
            table.add_row(c.state, str(c.count))
        out.print(table)
        out.print("")
    if s.jobs:
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
        table.add_column("JOB")
        for state in [c.state for c in s.states]:
            table.add_column(state.upper(), justify="right")
        by_job: Dict[str, Dict[str, int]] = {}
        for j in s.jobs:
            by_job.setdefault(j.job_name or "", {})[j.state] = j.count
        for job, counts in by_job.items():
            table.add_row(Text(job or "(none)"),
                          *[str(counts.get(c.state, "")) for c in s.states])
        out.print(table)
        out.print("")
    if s.oldest_stranded is not None:
        r = s.oldest_stranded
        by = f" by {r.locked_by}" if r.locked_by else ""
        out.print(Text(f"oldest stranded: {_describe(r)} at step {r.recovery_point}, locked "
                       f"{_age(r.locked_at)} ago{by}"))
    else:
        out.print("oldest stranded: none")
    oldest = ""
    if s.oldest_staged is not None:
        o = s.oldest_staged
        oldest = (f" (oldest: #{o.id} {o.adapter} {o.job_name}"
                  + (f", staged {_when(o.created_at)}" if o.created_at else "") + ")")
    out.print(Text(f"staged jobs not acknowledged: {s.staged_backlog}{oldest}"))
    batch = f" (oldest: {_batch_line(s.oldest_batch)})" if s.oldest_batch is not None else ""
    out.print(Text(f"open batches: {s.open_batches}{batch}"))


def _enqueue_note(d: RunDetail) -> str:
    if d.resume is None:
        return "it has no resume job: run it again from the application"
    adapter = d.resume.adapter
    if installed(adapter) is not None:
        return f"its resume job was handed to the {adapter} adapter"
    return (f"its resume job ({adapter}) is staged: the application's next drain sends it "
            f"(its workers, or acidic-job drain --import APP_MODULE)")


# --- commands ---------------------------------------------------------------------------

@click.group(context_settings={"help_option_names": ["-h", "--help"],
                               "max_content_width": 100})
@click.version_option(VERSION, prog_name="acidic-job", message="%(version)s")
def cli() -> None:
    """Operator tools for acidic_job: see every run, read its error and steps, and retry,
    reset, unlock or discard it without racing a live worker.

    Every command takes --database URL (or $ACIDIC_JOB_DATABASE_URL) and --json. Exit
    codes: 0 done, 1 nothing matched or refused, 2 usage error."""


@cli.command("list")
@database_options
@filter_options
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True,
              help="Runs per page.")
@click.option("--cursor", type=click.IntRange(0), metavar="ID",
              help="Start after this run id (a page's next cursor).")
@click.option("--order", type=click.Choice(["desc", "asc"]), default="desc", show_default=True,
              help="desc: newest runs first.")
def list_command(database: Optional[str], lock_timeout: Optional[float], as_json: bool,
                 imports: Tuple[str, ...], states: Tuple[str, ...], job: Optional[str],
                 key_prefix: Optional[str], older_than: Optional[timedelta],
                 since: Optional[datetime], limit: int, cursor: Optional[int],
                 order: str) -> None:
    """List runs, newest first, a page at a time (exit 1 when none matches)."""
    def body(env: Env) -> int:
        page = env.admin.list(states=",".join(states) or None, job=job, key_prefix=key_prefix,
                              older_than=older_than, since=since, cursor=cursor, limit=limit,
                              order=order)
        if env.as_json:
            env.json(page)
        elif not page.runs:
            env.line("no runs match")
        else:
            env.print(runs_table(page.runs))
            if page.next_cursor is not None:
                env.line(f"more: --cursor {page.next_cursor}")
        return OK if page.runs else NOTHING
    run_command(dict(database=database, lock_timeout=lock_timeout, as_json=as_json,
                     imports=imports), body)


def run_selector(f: F) -> F:
    f = click.option("--id", "run_id", type=click.IntRange(1), metavar="ID",
                     help="Name the run by its id (when a key names several runs).")(f)
    f = click.argument("key", required=False)(f)
    return f


def _one_run(key: Optional[str], run_id: Optional[int]) -> Any:
    if (key is None) == (run_id is None):
        raise click.UsageError("name one run: KEY or --id ID")
    return run_id if run_id is not None else key


@cli.command()
@database_options
@run_selector
def show(database: Optional[str], lock_timeout: Optional[float], as_json: bool,
         imports: Tuple[str, ...], key: Optional[str], run_id: Optional[int]) -> None:
    """Show one run: its steps (done, current, pending), its error, its attributes (JSON
    indented, YAML as text, never loaded), staged jobs, batch and resume job."""
    ref = _one_run(key, run_id)

    def body(env: Env) -> int:
        detail = env.admin.show(ref)
        if env.as_json:
            env.json(detail)
        else:
            print_detail(env, detail)
        return OK
    run_command(dict(database=database, lock_timeout=lock_timeout, as_json=as_json,
                     imports=imports), body)


def _action_command(action: str, summary: str, done: Callable[[Run, Optional[str]], str],
                    with_step: bool = False, with_enqueue: bool = False) -> Any:
    """retry, reset, unlock and discard: one run (KEY or --id) or --all of a filter."""

    @database_options
    @rq_options
    @run_selector
    @click.option("--all", "select_all", is_flag=True,
                  help="Every run the filter options select (in batches).")
    @filter_options
    @click.option("--batch-size", type=click.IntRange(1, 1000), metavar="N",
                  help="Runs per transaction with --all (default 100).")
    @click.option("--force", is_flag=True,
                  help="Act on a run whose lock is live: you know its worker is dead (its "
                       "next step then writes nothing).")
    def command(database: Optional[str], lock_timeout: Optional[float], as_json: bool,
                imports: Tuple[str, ...], rq_redis: Optional[str], rq_queue: str,
                key: Optional[str], run_id: Optional[int], select_all: bool,
                states: Tuple[str, ...], job: Optional[str], key_prefix: Optional[str],
                older_than: Optional[timedelta], since: Optional[datetime],
                batch_size: Optional[int], force: bool, to_step: Optional[str] = None,
                no_enqueue: bool = False) -> None:
        filtered = bool(states or job or key_prefix or older_than or since or batch_size)
        if select_all:
            if key is not None or run_id is not None:
                raise click.UsageError("--all acts on a filter: drop KEY and --id")
            if no_enqueue:
                raise click.UsageError("--no-enqueue takes one run")
        else:
            ref = _one_run(key, run_id)
            if filtered:
                raise click.UsageError("filter options (--state, --job, ...) need --all")

        def body(env: Env) -> int:
            if select_all:
                with env.progress(f"{action}") as progress:
                    result = env.admin.bulk(
                        action, states=",".join(states) or None, job=job,
                        key_prefix=key_prefix, older_than=older_than, since=since,
                        step=to_step, force=force, batch_size=batch_size, progress=progress)
                if env.as_json:
                    env.json(result)
                else:
                    env.line(f"{action}: {result.changed} run(s) changed, {result.skipped} "
                             "skipped")
                return OK if result.changed else NOTHING
            admin = env.admin
            if action == "retry":
                run = admin.retry(ref, force=force, enqueue=not no_enqueue)
            elif action == "reset":
                assert to_step is not None
                run = admin.reset(ref, to_step, force=force)
            elif action == "unlock":
                run = admin.unlock(ref, force=force)
            else:
                run = admin.discard(ref, force=force)
            if env.as_json:
                env.json({"ok": True, "run": run})
            else:
                note = None
                if no_enqueue:
                    note = "nothing enqueued (--no-enqueue): run it again from the application"
                elif with_enqueue:
                    note = _enqueue_note(admin.show(run.id))
                env.line(done(run, note))
            return OK
        run_command(dict(database=database, lock_timeout=lock_timeout, as_json=as_json,
                         imports=imports, rq_redis=rq_redis, rq_queue=rq_queue), body)

    command.__doc__ = summary
    if with_step:
        command = click.option("--to-step", required=True, metavar="STEP",
                               help="The step to run again from.")(command)
    if action == "retry":
        command = click.option("--no-enqueue", is_flag=True,
                               help="Stage no job: for a run without a resume job, which the "
                                    "application runs again itself.")(command)
    return cli.command(action)(command)


def _retried(run: Run, note: Optional[str]) -> str:
    return f"retried {_describe(run)}: it resumes at step {run.recovery_point!r}; {note}"


def _reset(run: Run, note: Optional[str]) -> str:
    return f"reset {_describe(run)} to step {run.recovery_point!r}; {note}"


def _unlocked(run: Run, note: Optional[str]) -> str:
    return (f"unlocked {_describe(run)}: recovery hands it back to its queue (acidic-job "
            "recover), or retry it")


def _discarded(run: Run, note: Optional[str]) -> str:
    return f"discarded {_describe(run)}: it never runs again (its row and error stay)"


_action_command("retry", "Retry a failed, dead, stranded or queued run at its recovery point "
                "(--all: every failed and dead run the filters select).", _retried,
                with_enqueue=True)
_action_command("reset", "Move a run's recovery point to --to-step and enqueue it: the steps "
                "from there on run again, with their writes.", _reset, with_step=True,
                with_enqueue=True)
_action_command("unlock", "Release the lock of a run whose worker died (--all: every "
                "stranded run the filters select).", _unlocked)
_action_command("discard", "Finish a run as failed so that it never runs again, keeping its "
                "row.", _discarded)


@cli.command()
@database_options
@rq_options
@click.option("--older-than", type=float, default=60.0, show_default=True, metavar="SECONDS",
              help="Only rows staged or last sent longer ago than this.")
def drain(database: Optional[str], lock_timeout: Optional[float], as_json: bool,
          imports: Tuple[str, ...], rq_redis: Optional[str], rq_queue: str,
          older_than: float) -> None:
    """Send the staged jobs that were committed but never acknowledged, through the
    adapters --import or --rq-redis installs (rows of other adapters stay)."""
    if older_than < 0:
        raise click.BadParameter("must be >= 0", param_hint="--older-than")

    def body(env: Env) -> int:
        delivered = env.admin.drain(older_than)
        if env.as_json:
            env.json({"delivered": delivered})
        else:
            env.line(f"delivered {delivered} staged job(s)")
        return OK
    run_command(dict(database=database, lock_timeout=lock_timeout, as_json=as_json,
                     imports=imports, rq_redis=rq_redis, rq_queue=rq_queue), body)


@cli.command()
@database_options
@rq_options
@click.option("--limit", type=click.IntRange(0), default=0, metavar="N",
              help="Look at N runs at most (default 0: all that are due).")
def recover(database: Optional[str], lock_timeout: Optional[float], as_json: bool,
            imports: Tuple[str, ...], rq_redis: Optional[str], rq_queue: str,
            limit: int) -> None:
    """Hand stranded runs, and failed runs whose retry is due, back to their queue (the
    workers do it periodically; this is the same sweep, e.g. from cron)."""
    def body(env: Env) -> int:
        done = env.admin.recover(limit)
        if env.as_json:
            env.json({"requeued": done.requeued, "dead": done.dead})
        else:
            env.line(f"requeued {done.requeued} run(s), {done.dead} dead")
        return OK
    run_command(dict(database=database, lock_timeout=lock_timeout, as_json=as_json,
                     imports=imports, rq_redis=rq_redis, rq_queue=rq_queue), body)


@cli.command()
@database_options
@click.option("--finished-before", type=Duration(), required=True, metavar="DURATION",
              help="Delete runs finished (last updated) more than DURATION ago: 7d, 12h.")
@click.option("--state", "states", multiple=True,
              type=click.Choice(["finished", "succeeded", "discarded"]),
              help="Only these finished states (default: both).")
@click.option("--job", metavar="NAME", help="Only runs of this job.")
@click.option("--batch-size", type=click.IntRange(1, 1000), metavar="N",
              help="Rows per transaction (default 100).")
def prune(database: Optional[str], lock_timeout: Optional[float], as_json: bool,
          imports: Tuple[str, ...], finished_before: timedelta, states: Tuple[str, ...],
          job: Optional[str], batch_size: Optional[int]) -> None:
    """Delete finished runs older than an age, in bounded batches (staged jobs stay). A
    progress bar on a terminal, the count otherwise; exit 0 also when none was due."""
    def body(env: Env) -> int:
        with env.progress("prune") as progress:
            deleted = env.admin.prune(finished_before, states=",".join(states) or None,
                                      job=job, batch_size=batch_size, progress=progress)
        if env.as_json:
            env.json({"deleted": deleted})
        else:
            env.line(f"deleted {deleted} finished run(s)")
        return OK
    run_command(dict(database=database, lock_timeout=lock_timeout, as_json=as_json,
                     imports=imports), body)


@cli.command()
@database_options
def stats(database: Optional[str], lock_timeout: Optional[float], as_json: bool,
          imports: Tuple[str, ...]) -> None:
    """Counts by state and job, the oldest stranded run, the staged backlog and its oldest
    row, and the open batches."""
    def body(env: Env) -> int:
        s = env.admin.stats()
        if env.as_json:
            env.json(s)
        else:
            print_stats(env, s)
        return OK
    run_command(dict(database=database, lock_timeout=lock_timeout, as_json=as_json,
                     imports=imports), body)


@cli.command()
@click.option("--database", "--url", "database", metavar="URL", envvar="ACIDIC_JOB_DATABASE_URL",
              help="A SQLite path or URL, a PostgreSQL URL or conninfo; default "
                   "$ACIDIC_JOB_DATABASE_URL.")
@click.option("--lock-timeout", type=float, metavar="SECONDS", envvar="ACIDIC_JOB_LOCK_TIMEOUT",
              help="The workers' lock timeout (default 90, or $ACIDIC_JOB_LOCK_TIMEOUT).")
@click.option("--import", "imports", multiple=True, metavar="MODULE",
              help="Import MODULE first: the module that installs the application's queue "
                   "adapters, so that retries, resets and drains reach the queue. Repeatable.")
@rq_options
@click.option("--host", default="127.0.0.1", show_default=True,
              help="The address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--allow-actions", is_flag=True,
              help="Allow retry, reset, unlock, discard and drain for anyone who reaches the "
                   "port (default: read-only).")
def web(database: Optional[str], lock_timeout: Optional[float], imports: Tuple[str, ...],
        rq_redis: Optional[str], rq_queue: str, host: str, port: int,
        allow_actions: bool) -> None:
    """Serve the dashboard (acidic_job.web) for a quick look: http://HOST:PORT/."""
    from . import web as dashboard

    env = Env(database, lock_timeout, False, imports, rq_redis, rq_queue)
    logging.getLogger("acidic_job").setLevel(logging.WARNING)
    app = dashboard.app(env.url, lock_timeout=lock_timeout, read_only=not allow_actions)
    mode = "actions allowed, for anyone who reaches it" if allow_actions else "read-only"
    env.err.print(f"acidic-job web: http://{host}:{port}/ ({mode}; Ctrl-C stops it)")
    dashboard.serve(app, host, port)


def main(argv: Optional[List[str]] = None, prog_name: str = "acidic-job") -> int:
    """The console script's entry point: the exit code."""
    # a job left staged for a drain is said once, by the command; failures still show
    logging.getLogger("acidic_job").setLevel(logging.ERROR)
    try:
        result = cli.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except click.UsageError as exc:  # one line, as every other error
        where = exc.ctx.command_path if exc.ctx is not None else prog_name
        help_hint = f" (see {where} --help)"
        click.echo(f"{where}: {' '.join(exc.format_message().split())}{help_hint}", err=True)
        return USAGE
    except click.ClickException as exc:
        click.echo(f"{prog_name}: {' '.join(exc.format_message().split())}", err=True)
        return exc.exit_code
    except click.Abort:
        click.echo(f"{prog_name}: interrupted", err=True)
        return 130
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return result if isinstance(result, int) else OK
