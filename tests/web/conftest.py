"""The dashboard's test harness: real servers (AcidicJob::Web mounted in Rails, served by
WEBrick; acidic_job.web served by wsgiref), real databases (SQLite files, PostgreSQL
databases on AJ_TEST_PG_URL), real workers (ActiveJob's async adapter in the Rails
process; RQ workers on AJ_TEST_REDIS_URL for Python), and a real headless Chromium
driven by Selenium.

Each target is one server kind on one database, seeded by its own language's real
workflows (ruby_app.rb seed, python_app.py seed) with the runs of SEEDED.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SCREENSHOTS = ROOT / "build" / "screenshots"
PG_URL = os.environ.get("AJ_TEST_PG_URL", "")
REDIS_URL = os.environ.get("AJ_TEST_REDIS_URL", "")
RUBY = os.environ.get("AJ_WEB_RUBY", "ruby")
PYTHON = os.environ.get("AJ_WEB_PYTHON", sys.executable)

# key -> state once seeding is done and the stranded run's lock has expired
SEEDED = {
    "ride-ok-1": "succeeded", "ride-ok-2": "succeeded", "ride-ok-3": "succeeded",
    "ride-fail-1": "failed", "ride-fail-2": "failed", "ride-fail-3": "failed",
    "ride-fail-4": "failed", "ride-fail-5": "failed",
    "fanout-1": "awaiting", "ride-stranded-1": "stranded",
}
XSS_MESSAGE = ("card declined <script>window.__aj_xss_error = 1</script>"
               "<img src=x onerror=\"window.__aj_xss_img = 1\">")
XSS_NOTE = "<script>window.__aj_xss_attr = 1</script><b>bold?</b>"
TARGETS = [("rails", "sqlite"), ("rails", "postgres"), ("wsgi", "sqlite"), ("wsgi", "postgres")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A server process on a free port; its output goes to a log file."""

    def __init__(self, name: str, argv: List[str], env: Dict[str, str], log: Path,
                 port: int) -> None:
        self.name, self.port, self.log = name, port, log
        self.base = f"http://127.0.0.1:{port}/acidic_job"
        self.log_file = open(log, "w")
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log_file,
                                     stderr=subprocess.STDOUT, cwd=HERE)
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({self.proc.returncode}):\n{self.output()}")
            try:
                urllib.request.urlopen(self.base + "/api/config", timeout=5).read()
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{name} did not answer:\n{self.output()}")
                time.sleep(0.3)

    def output(self) -> str:
        self.log_file.flush()
        return self.log.read_text(errors="replace")[-6000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)
        self.log_file.close()


class Target:
    """One server kind ("rails" or "wsgi") on one database ("sqlite" or "postgres")."""

    def __init__(self, kind: str, db: str, tmp: Path) -> None:
        self.kind, self.db, self.tmp = kind, db, tmp
        self.flag = tmp / "fixed.flag"  # its existence fixes ride-fail-2 .. -5
        if db == "sqlite":
            self.database = str(tmp / "dashboard.db")
        else:
            import psycopg
            name = f"aj_web_{kind}"
            with psycopg.connect(PG_URL, autocommit=True) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                c.execute(f'CREATE DATABASE "{name}"')
            base, _, query = PG_URL.partition("?")
            self.database = base.rsplit("/", 1)[0] + "/" + name + ("?" + query if query else "")
        self.env = dict(os.environ, AJ_WEB_DB=self.database, AJ_WEB_FLAG=str(self.flag),
                        AJ_WEB_REDIS=REDIS_URL, AJ_WEB_QUEUE=f"aj-web-{kind}-{db}")
        self.servers: List[Server] = []

    # -- the application's side --------------------------------------------------------
    def app_command(self, *args: str) -> List[str]:
        if self.kind == "rails":
            return [RUBY, "-W0", str(HERE / "ruby_app.rb"), args[0], self.database, *args[1:]]
        return [PYTHON, str(HERE / "python_app.py"), *args]

    def seed(self) -> None:
        done = subprocess.run(self.app_command("seed"), env=self.env, cwd=HERE,
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"seeding failed:\n{done.stdout}\n{done.stderr}")

    def serve(self, mode: str) -> Server:
        """mode "act": actions allowed (Rails' defaults; WSGI with an authorize hook);
        "default": outside Rails without a hook (read-only)."""
        port = free_port()
        if self.kind == "rails":
            argv = self.app_command("rails" if mode == "act" else "rack", str(port))
        else:
            argv = self.app_command("serve", str(port), mode)
        server = Server(f"{self.kind}-{mode}", argv, self.env,
                        self.tmp / f"server-{mode}-{port}.log", port)
        self.servers.append(server)
        return server

    def work(self, all_queues: bool = False) -> None:
        """Let a real worker run what is queued. Rails: the server's own async adapter
        does; Python: an RQ worker process, until its queues are empty (all_queues: the
        awaited jobs' queue too)."""
        if self.kind == "wsgi":
            argv = self.app_command("work", *(["--all"] if all_queues else []))
            done = subprocess.run(argv, env=self.env, cwd=HERE,
                                  capture_output=True, text=True, timeout=300)
            if done.returncode != 0:
                raise RuntimeError(f"the RQ worker failed:\n{done.stdout}\n{done.stderr}")

    # -- reading the database directly ---------------------------------------------------
    def query(self, sql: str, *params: Any) -> List[tuple]:
        if self.db == "sqlite":
            with sqlite3.connect(self.database, timeout=30) as c:
                return list(c.execute(sql, params))
        import psycopg
        with psycopg.connect(self.database, autocommit=True) as c:
            return list(c.execute(sql.replace("?", "%s"), params))

    def steps_run(self, key: str) -> List[str]:
        return [r[0] for r in self.query("SELECT step FROM step_log WHERE run_key = ? "
                                         "ORDER BY id", key)]

    def close(self) -> None:
        for server in self.servers:
            server.stop()


def api(server: Server, path: str, method: str = "GET", body: Optional[bytes] = None,
        headers: Optional[Dict[str, str]] = None) -> tuple:
    """(status, headers, parsed JSON or raw bytes) of one request, errors included."""
    request = urllib.request.Request(server.base + path, data=body, method=method,
                                     headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as res:
            status, head, raw = res.status, dict(res.headers), res.read()
    except urllib.error.HTTPError as e:
        status, head, raw = e.code, dict(e.headers), e.read()
    if head.get("Content-Type", "").startswith("application/json"):
        return status, head, json.loads(raw)
    return status, head, raw


@pytest.fixture(scope="session")
def browser():
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1000", "--lang=en-US", "--disable-extensions"):
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    # Chromium leaves its singleton socket's directory in TMPDIR: one of the suite's own.
    scratch = tempfile.mkdtemp(prefix="aj-web-chromium-")
    service = Service(shutil.which("chromedriver") or "/usr/bin/chromedriver",
                      env=dict(os.environ, TMPDIR=scratch))
    try:
        driver = webdriver.Chrome(service=service, options=options)
        driver.set_script_timeout(30)
        yield driver
        driver.quit()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(scope="module", params=TARGETS, ids=[f"{k}-{d}" for k, d in TARGETS])
def target(request):
    kind, db = request.param
    if db == "postgres" and not PG_URL:
        pytest.fail("AJ_TEST_PG_URL is not set: PostgreSQL targets cannot run")
    if kind == "wsgi" and not REDIS_URL:
        pytest.fail("AJ_TEST_REDIS_URL is not set: the Python targets' RQ workers need it")
    tmp = Path(tempfile.mkdtemp(prefix=f"aj-web-{kind}-{db}-"))
    t = Target(kind, db, tmp)
    try:
        t.seed()
        t.server = t.serve("act")
        yield t
    finally:
        t.close()
        if os.environ.get("AJ_WEB_KEEP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)


# --- one SUMMARY line per target (scripts/test.sh collects them) ------------------------

_outcomes: Dict[str, List[int]] = {}


def pytest_runtest_logreport(report):
    target_id = report.nodeid.rsplit("[", 1)[-1].rstrip("]") if "[" in report.nodeid else "setup"
    counts = _outcomes.setdefault(target_id, [0, 0])
    if report.failed:
        counts[1] += 1
    elif report.when == "call" and report.passed:
        counts[0] += 1


def pytest_terminal_summary(terminalreporter):
    for target_id, (passed, failed) in sorted(_outcomes.items()):
        terminalreporter.write_line(f"SUMMARY web {target_id} {passed} {failed}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test's report carries the tail of its target's server logs (the worker
    inside the Rails server writes its errors there)."""
    outcome = yield
    report = outcome.get_result()
    target = item.funcargs.get("target") if hasattr(item, "funcargs") else None
    if report.failed and isinstance(target, Target):
        for server in target.servers:
            server.log_file.flush()
            lines = [line for line in server.log.read_text(errors="replace").splitlines()
                     if not line.startswith(("/usr/", "\t/usr/"))]  # library frames
            report.sections.append((f"server log: {server.name}", "\n".join(lines[-80:])))
