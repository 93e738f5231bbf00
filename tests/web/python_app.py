"""The Python side of the dashboard tests (tests/web/test_dashboard.py), over the
workflows of dashboard_jobs.py:

    python_app.py seed                 the seeded runs (conftest.SEEDED), run by an RQ worker
    python_app.py work [--all]         an RQ worker until its queues are empty (--all: the
                                       awaited jobs' queue too)
    python_app.py serve PORT act|default
                                       acidic_job.web under /acidic_job (mount) on a
                                       threaded wsgiref server; "act": an authorize hook
                                       that allows this machine; "default": no hook
"""
from __future__ import annotations

import logging
import os
import sqlite3
import sys
from typing import Any, Callable, Iterable

from rq import Queue, Worker

import dashboard_jobs as app
from acidic_job import web


def create_step_log() -> None:
    if app.URL.startswith("postgres"):
        import psycopg
        with psycopg.connect(app.URL, autocommit=True) as c:
            c.execute("CREATE TABLE IF NOT EXISTS step_log (id serial PRIMARY KEY, "
                      "run_key text, step text)")
    else:
        with sqlite3.connect(app.URL[len("sqlite:"):]) as c:
            c.execute("CREATE TABLE IF NOT EXISTS step_log (id INTEGER PRIMARY KEY "
                      "AUTOINCREMENT, run_key text, step text)")


def work(all_queues: bool) -> None:
    names = [app.QUEUE] + ([app.PARKED] if all_queues else [])
    queues = [Queue(name, connection=app.REDIS) for name in names]
    Worker(queues, connection=app.REDIS).work(burst=True, logging_level="WARNING")


def seed() -> None:
    for name in (app.QUEUE, app.PARKED):
        Queue(name, connection=app.REDIS).empty()
    create_step_log()
    job = app.RideCreate.job
    for i in range(1, 4):
        job.enqueue(f"rider-{i}", {"note": f"ok {i}"}, key=f"ride-ok-{i}")
    job.enqueue("rider-f1", {"note": "<script>window.__aj_xss_attr = 1</script><b>bold?</b>",
                             "error": "card declined <script>window.__aj_xss_error = 1</script>"
                                      "<img src=x onerror=\"window.__aj_xss_img = 1\">"},
                key="ride-fail-1")
    for i in range(2, 6):
        job.enqueue(f"rider-f{i}", {"note": "fails", "error": f"insufficient funds {i}",
                                    "fixed_flag": os.environ["AJ_WEB_FLAG"]},
                    key=f"ride-fail-{i}")
    app.FanOut.job.enqueue("fan", key="fanout-1")
    job.enqueue("rider-s", {"note": "dies", "die": True}, key="ride-stranded-1")
    work(False)


def not_found(environ: Any, start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"the application: the dashboard is at /acidic_job/\n"]


def serve(port: int, mode: str) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    if mode == "act":
        dashboard = web.app(app.URL, lock_timeout=app.LOCK_TIMEOUT, poll_seconds=1,
                            authorize=lambda environ, action:
                            environ.get("REMOTE_ADDR") == "127.0.0.1")
    else:
        dashboard = web.app(app.URL, lock_timeout=app.LOCK_TIMEOUT, poll_seconds=1)
    web.serve(web.mount(not_found, "/acidic_job", dashboard), "127.0.0.1", port)


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "seed":
        seed()
    elif command == "work":
        work("--all" in sys.argv[2:])
    elif command == "serve":
        serve(int(sys.argv[2]), sys.argv[3])
    else:
        sys.exit(__doc__)
