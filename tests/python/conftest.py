"""Fixtures for the acidic_job Python suite: real databases, real Redis.

Every test that takes ``dbenv`` runs once per database kind:
  sqlite3     a borrowed sqlite3.Connection on a fresh file
  sqlite-url  the same kind of file through a "sqlite:PATH" URL (owned store)
  psycopg     a borrowed psycopg 3 connection    \
  psycopg2    a borrowed psycopg2 connection      > each in a fresh PostgreSQL schema
  pg-url      a "postgresql://..." URL            /

The plugin at the bottom prints ``SUMMARY python <part> <passed> <failed>`` per part:
sqlite / postgres (by the dbenv parameter), celery / rq (by module marker), api (the rest).
"""
from __future__ import annotations

import os
import sqlite3
import sys
import uuid
from collections import defaultdict
from typing import Any, Dict, List, Optional, Sequence
from urllib.parse import quote

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PG_URL = os.environ.get("AJ_TEST_PG_URL", "")
REDIS_URL = os.environ.get("AJ_TEST_REDIS_URL", "")

SQLITE_KINDS = ["sqlite3", "sqlite-url"]
PG_KINDS = ["psycopg", "psycopg2", "pg-url"]


def pg_url_with_schema(schema: str) -> str:
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options={quote('-csearch_path=' + schema)}"


class DbEnv:
    """One database for one test, plus an independent connection for assertions."""

    def __init__(self, kind: str, tmp_path: Any) -> None:
        self.kind = kind
        self.group = "sqlite" if kind in SQLITE_KINDS else "postgres"
        self._conns: List[Any] = []
        if self.group == "sqlite":
            path = str(tmp_path / "test.db")
            self.url = f"sqlite:{path}"
            self.path = path
            self._check = sqlite3.connect(path, isolation_level=None)
            self.ph = "?"
        else:
            if not PG_URL:
                pytest.fail("AJ_TEST_PG_URL is not set (tests/python/run.sh starts a server)")
            import psycopg
            self.schema = "t_" + uuid.uuid4().hex[:12]
            admin = psycopg.connect(PG_URL, autocommit=True)
            admin.execute(f"CREATE SCHEMA {self.schema}")
            admin.close()
            self.url = pg_url_with_schema(self.schema)
            self._check = psycopg.connect(self.url, autocommit=True)
            self.ph = "?" if kind == "pg-url" else "%s"
        self.db = self.make_db()

    @property
    def borrowed(self) -> bool:
        return self.kind not in ("sqlite-url", "pg-url")

    def make_db(self) -> Any:
        """What to pass to @acidic_job.workflow: a new connection of this kind, or the URL."""
        if self.kind == "sqlite3":
            conn = sqlite3.connect(self.path)
        elif self.kind == "psycopg":
            import psycopg
            conn = psycopg.connect(self.url)
        elif self.kind == "psycopg2":
            import psycopg2
            conn = psycopg2.connect(self.url)
        else:
            return self.url
        self._conns.append(conn)
        return conn

    def sql(self, text: str, params: Sequence[Any] = ()) -> List[tuple]:
        """Run SQL (``?`` placeholders) on the assertion connection, autocommit."""
        if self.group == "postgres":
            text = text.replace("?", "%s")
            cur = self._check.execute(text, params or None)
            return cur.fetchall() if cur.description else []
        return self._check.execute(text, params).fetchall()

    def keys_count(self) -> int:
        """Rows in acidic_job_keys; 0 when the store never created the table."""
        if self.group == "postgres":
            exists = self.sql("SELECT to_regclass('acidic_job_keys') IS NOT NULL")[0][0]
        else:
            exists = bool(self.sql("SELECT 1 FROM sqlite_master WHERE name = 'acidic_job_keys'"))
        return self.sql("SELECT count(*) FROM acidic_job_keys")[0][0] if exists else 0

    def table(self, name: str, columns: str = "id INTEGER, note TEXT") -> None:
        self.sql(f"CREATE TABLE {name} ({columns})")

    def key_row(self, job_name: Optional[str] = None) -> Dict[str, Any]:
        cols = ["idempotency_key", "job_name", "job_args", "locked_at", "recovery_point",
                "error_object", "attr_accessors"]
        where, params = ("WHERE job_name = ?", (job_name,)) if job_name else ("", ())
        rows = self.sql(f"SELECT {', '.join(cols)} FROM acidic_job_keys {where}", params)
        assert len(rows) == 1, rows
        return dict(zip(cols, rows[0]))

    def close(self) -> None:
        for c in self._conns:
            try:
                c.close()
            except Exception:
                pass
        self._check.close()
        if self.group == "postgres":
            import psycopg
            admin = psycopg.connect(PG_URL, autocommit=True)
            admin.execute(f"DROP SCHEMA {self.schema} CASCADE")
            admin.close()


@pytest.fixture(params=SQLITE_KINDS + PG_KINDS)
def dbenv(request: Any, tmp_path: Any) -> Any:
    env = DbEnv(request.param, tmp_path)
    yield env
    env.close()


@pytest.fixture(params=SQLITE_KINDS)
def sqlite_env(request: Any, tmp_path: Any) -> Any:
    env = DbEnv(request.param, tmp_path)
    yield env
    env.close()


@pytest.fixture(params=PG_KINDS)
def pg_env(request: Any, tmp_path: Any) -> Any:
    env = DbEnv(request.param, tmp_path)
    yield env
    env.close()


@pytest.fixture(params=["sqlite3", "psycopg", "psycopg2"])
def borrowed_env(request: Any, tmp_path: Any) -> Any:
    env = DbEnv(request.param, tmp_path)
    yield env
    env.close()


@pytest.fixture(params=["sqlite-url", "pg-url"])
def url_env(request: Any, tmp_path: Any) -> Any:
    env = DbEnv(request.param, tmp_path)
    yield env
    env.close()


@pytest.fixture(params=["psycopg"])
def psycopg_env(request: Any, tmp_path: Any) -> Any:
    env = DbEnv(request.param, tmp_path)
    yield env
    env.close()


@pytest.fixture(params=["pg-url"])
def pg_url_env(request: Any, tmp_path: Any) -> Any:
    env = DbEnv(request.param, tmp_path)
    yield env
    env.close()


class OwnPostgres:
    """A PostgreSQL cluster of one test module, which its tests may restart (the shared
    server of the suite must stay up for the others)."""

    def __init__(self, directory: str) -> None:
        self.dir = directory
        self.url = self._script("start").stdout.strip()

    def _script(self, command: str, **env: str) -> Any:
        import subprocess
        # not the sanitizers of the ASan pass: PostgreSQL's binaries hang under them
        clean = {k: v for k, v in os.environ.items()
                 if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS")}
        return subprocess.run(["bash", os.path.join(ROOT, "scripts", "pg-server.sh"), command,
                               self.dir], check=command != "stop", capture_output=True,
                              text=True, env={**clean, **env})

    def restart(self, mode: str) -> None:
        """pg_ctl restart -m MODE: "immediate" cuts every connection without a word (a
        crash), "fast" terminates them."""
        self._script("restart", PG_STOP_MODE=mode)

    def stop(self) -> None:
        self._script("stop")


@pytest.fixture(scope="module")
def own_pg(tmp_path_factory: Any) -> Any:
    server = OwnPostgres(str(tmp_path_factory.mktemp("pg")))
    try:
        yield server
    finally:
        server.stop()


def pytest_configure(config: Any) -> None:
    config.addinivalue_line("markers", "part(name): the SUMMARY part of a test (celery, rq)")


# --- SUMMARY lines -----------------------------------------------------------------

_outcomes: Dict[str, Dict[str, str]] = defaultdict(dict)


def _part(item: Any) -> str:
    marker = item.get_closest_marker("part")
    if marker is not None:
        return marker.args[0]
    callspec = getattr(item, "callspec", None)
    if callspec is not None:
        for name in ("dbenv", "sqlite_env", "pg_env", "borrowed_env", "url_env", "pg_url_env",
                     "psycopg_env"):
            kind = callspec.params.get(name)
            if kind is not None:
                return "sqlite" if kind in SQLITE_KINDS else "postgres"
    return "api"


_parts: Dict[str, str] = {}


def pytest_collection_modifyitems(items: List[Any]) -> None:
    for item in items:
        _parts[item.nodeid] = _part(item)


def pytest_runtest_logreport(report: Any) -> None:
    part = _parts.get(report.nodeid, "api")
    seen = _outcomes[part]
    if report.failed:
        seen[report.nodeid] = "failed"
    elif report.when == "call" and report.passed and seen.get(report.nodeid) != "failed":
        seen[report.nodeid] = "passed"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for part in sorted(_outcomes):
        values = list(_outcomes[part].values())
        passed, failed = values.count("passed"), values.count("failed")
        prefix = os.environ.get("AJ_TEST_PART_PREFIX", "")
        terminalreporter.write_line(f"SUMMARY python {prefix}{part} {passed} {failed}")


# --- queue helpers ---------------------------------------------------------------------

def wait_for(predicate: Any, what: str, timeout: float = 90.0) -> Any:
    """Poll until predicate() is truthy. The timeout only guards against a hang; no test
    asserts on how long anything takes."""
    import time
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class Workers:
    """Worker subprocesses of one test module; each in its own process group."""

    def __init__(self, env: Dict[str, str], log_dir: str) -> None:
        self.env = env
        self.log_dir = log_dir
        self.procs: List[Any] = []

    def start(self, args: List[str], name: str) -> Any:
        import subprocess
        log = open(os.path.join(self.log_dir, f"{name}.log"), "w")
        proc = subprocess.Popen([sys.executable] + args, cwd=HERE, env=self.env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        proc.log_path = log.name  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def kill(self, proc: Any) -> None:
        import signal
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()

    def stop(self, proc: Any) -> None:
        """A warm shutdown (SIGTERM): an RQ scheduler releases its lock, which a killed
        one would hold for a minute."""
        import signal
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(30)
            except Exception:
                self.kill(proc)

    def stop_all(self) -> None:
        import signal
        for proc in self.procs:
            if proc.poll() is None:
                self.stop(proc)
            else:
                # reap stragglers of the group (prefork children)
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def log(self, proc: Any) -> str:
        with open(proc.log_path) as f:
            return f.read()


def queue_env(db: str, queue: str, scratch: str) -> Dict[str, str]:
    if not REDIS_URL:
        pytest.fail("AJ_TEST_REDIS_URL is not set (tests/python/run.sh starts a server)")
    env = dict(os.environ)
    env.update({"AJ_JOBS_DB": db, "AJ_JOBS_BROKER": REDIS_URL, "AJ_JOBS_QUEUE": queue,
                "AJ_JOBS_DIR": scratch, "PYTHONPATH": HERE})
    return env


@pytest.fixture(autouse=True)
def close_what_was_opened() -> Any:
    """Close what a test registered in shop_app.opened (PostgreSQL has a connection limit)."""
    yield
    app_module = sys.modules.get("shop_app")  # imported by the tests that use it
    while app_module is not None and app_module.opened:
        app_module.opened.pop().close()
