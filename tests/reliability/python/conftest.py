"""Fixtures of the Python reliability suite: real SQLite files, a real PostgreSQL 15.

``db`` runs a test once per connection kind:
  sqlite3     a borrowed sqlite3.Connection on a fresh file
  sqlite-url  the same kind of file through a "sqlite:PATH" URL (owned store)
  psycopg     a borrowed psycopg 3 connection   \
  psycopg2    a borrowed psycopg2 connection     > each in a fresh PostgreSQL schema
  pg-url      a "postgresql://..." URL          /
The PostgreSQL server is AJ_TEST_PG_URL; AJ_TEST_PG_DIR and AJ_TEST_ROOT let tests restart
it (scripts/pg-server.sh restart DIR MODE). The plugin at the bottom prints
``SUMMARY reliability python-<part> <passed> <failed>`` per part (sqlite, postgres, api).
"""
from __future__ import annotations

import os
import sqlite3
import subprocess
import uuid
from collections import defaultdict
from typing import Any, Dict, List, Sequence
from urllib.parse import quote

import pytest

PG_URL = os.environ.get("AJ_TEST_PG_URL", "")
SQLITE_KINDS = ["sqlite3", "sqlite-url"]
PG_KINDS = ["psycopg", "psycopg2", "pg-url"]


def pg_url_with_schema(schema: str) -> str:
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options={quote('-csearch_path=' + schema)}"


def restart_pg(mode: str) -> None:
    """pg_ctl restart -m MODE (fast or immediate) of the test server."""
    root, pg_dir = os.environ.get("AJ_TEST_ROOT"), os.environ.get("AJ_TEST_PG_DIR")
    if not root or not pg_dir:
        pytest.fail("AJ_TEST_ROOT and AJ_TEST_PG_DIR must be set to restart the server")
    subprocess.run(["bash", f"{root}/scripts/pg-server.sh", "restart", pg_dir, mode],
                   check=True, stdout=subprocess.DEVNULL)


class Db:
    """One database for one test and an independent autocommit connection for checks."""

    def __init__(self, kind: str, tmp_path: Any) -> None:
        self.kind = kind
        self.group = "sqlite" if kind in SQLITE_KINDS else "postgres"
        self._conns: List[Any] = []
        if self.group == "sqlite":
            self.path = str(tmp_path / "test.db")
            self.url = f"sqlite:{self.path}"
            self._check = sqlite3.connect(self.path, isolation_level=None, timeout=10)
        else:
            if not PG_URL:
                pytest.fail("AJ_TEST_PG_URL is not set")
            import psycopg
            self.schema = "r_" + uuid.uuid4().hex[:12]
            with psycopg.connect(PG_URL, autocommit=True) as admin:
                admin.execute(f"CREATE SCHEMA {self.schema}")
            self.url = pg_url_with_schema(self.schema)
            self._check = psycopg.connect(self.url, autocommit=True)
        self.ph = "%s" if kind in ("psycopg", "psycopg2") else "?"

    @property
    def borrowed(self) -> bool:
        return self.kind not in ("sqlite-url", "pg-url")

    def connect(self, **kwargs: Any) -> Any:
        """What @acidic_job.workflow takes for this kind: a new connection, or the URL."""
        if self.kind == "sqlite3":
            conn = sqlite3.connect(self.path, **kwargs)
        elif self.kind == "psycopg":
            import psycopg
            conn = psycopg.connect(self.url, **kwargs)
        elif self.kind == "psycopg2":
            import psycopg2
            conn = psycopg2.connect(self.url, **kwargs)
        else:
            return self.url
        self._conns.append(conn)
        return conn

    def raw(self) -> Any:
        """A new plain connection of the database (not shared with acidic_job)."""
        if self.group == "sqlite":
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=10)
        else:
            import psycopg
            conn = psycopg.connect(self.url)
        self._conns.append(conn)
        return conn

    def sql(self, text: str, params: Sequence[Any] = ()) -> List[tuple]:
        """SQL with ``?`` placeholders on the check connection (autocommit). After a
        server restart the check connection is opened again."""
        if self.group == "postgres":
            import psycopg
            if self._check.broken or self._check.closed:
                self._check = psycopg.connect(self.url, autocommit=True)
            try:
                cur = self._check.execute(text.replace("?", "%s"), params or None)
            except psycopg.OperationalError:
                self._check = psycopg.connect(self.url, autocommit=True)
                cur = self._check.execute(text.replace("?", "%s"), params or None)
            return cur.fetchall() if cur.description else []
        return self._check.execute(text, params).fetchall()

    def app_table(self) -> None:
        self.sql("CREATE TABLE app_log (tag TEXT NOT NULL)")

    def app_rows(self, tag: str) -> int:
        return self.sql("SELECT count(*) FROM app_log WHERE tag = ?", (tag,))[0][0]

    def key(self, key: str) -> Dict[str, Any]:
        cols = ["locked_at", "recovery_point", "error_object", "attr_accessors", "job_name"]
        rows = self.sql(f"SELECT {', '.join(cols)} FROM acidic_job_keys "
                        "WHERE idempotency_key = ?", (key,))
        assert len(rows) == 1, rows
        return dict(zip(cols, rows[0]))

    def stage_rows(self, adapter: str, n: int) -> None:
        """Staged rows as a crashed process leaves them (never delivered)."""
        for i in range(n):
            self.sql("INSERT INTO staged_acidic_jobs (adapter, job_name, job_args, created_at,"
                     " updated_at) VALUES (?, 'job', ?, '2000-01-01 00:00:00',"
                     " '2000-01-01 00:00:00')", (adapter, '{"args":[%d],"kwargs":{}}' % i))

    def close(self) -> None:
        for c in self._conns:
            try:
                c.close()
            except Exception:
                pass
        self._check.close()
        if self.group == "postgres":
            import psycopg
            with psycopg.connect(PG_URL, autocommit=True) as admin:
                admin.execute(f"DROP SCHEMA {self.schema} CASCADE")


def _fixture(kinds: List[str]) -> Any:
    @pytest.fixture(params=kinds)
    def make(request: Any, tmp_path: Any) -> Any:
        env = Db(request.param, tmp_path)
        yield env
        env.close()
    return make


db = _fixture(SQLITE_KINDS + PG_KINDS)
sqlite_db = _fixture(SQLITE_KINDS)
pg_db = _fixture(PG_KINDS)
url_db = _fixture(["sqlite-url", "pg-url"])
borrowed_db = _fixture(["sqlite3", "psycopg", "psycopg2"])
pg_url_db = _fixture(["pg-url"])
psycopg_db = _fixture(["psycopg"])
borrowed_pg_db = _fixture(["psycopg", "psycopg2"])
sqlite3_db = _fixture(["sqlite3"])
sqlite_url_db = _fixture(["sqlite-url"])


# --- SUMMARY lines -----------------------------------------------------------------------

_FIXTURES = ("db", "sqlite_db", "pg_db", "url_db", "borrowed_db", "pg_url_db", "psycopg_db",
             "borrowed_pg_db", "sqlite3_db", "sqlite_url_db")
_parts: Dict[str, str] = {}
_outcomes: Dict[str, Dict[str, str]] = defaultdict(dict)


def pytest_collection_modifyitems(items: List[Any]) -> None:
    prefix = os.environ.get("AJ_TEST_PART_PREFIX", "python-")
    for item in items:
        part = "api"
        callspec = getattr(item, "callspec", None)
        for name in _FIXTURES:
            kind = callspec.params.get(name) if callspec else None
            if kind is not None:
                part = "sqlite" if kind in SQLITE_KINDS else "postgres"
        _parts[item.nodeid] = prefix + part


def pytest_runtest_logreport(report: Any) -> None:
    seen = _outcomes[_parts.get(report.nodeid, "python-api")]
    if report.failed:
        seen[report.nodeid] = "failed"
    elif report.when == "call" and report.passed and seen.get(report.nodeid) != "failed":
        seen[report.nodeid] = "passed"
    elif report.skipped and report.nodeid not in seen:
        seen[report.nodeid] = "skipped"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for part in sorted(_outcomes):
        values = list(_outcomes[part].values())
        bad = sum(1 for nodeid, outcome in _outcomes[part].items()
                  if outcome == "passed" and nodeid.split("::")[0].endswith("test_bad_input.py"))
        if bad:  # the bad inputs tried, for the figures of a run
            terminalreporter.write_line(f"BAD-INPUTS {part} {bad}")
        terminalreporter.write_line(f"SUMMARY reliability {part} {values.count('passed')} "
                                    f"{values.count('failed')}")
