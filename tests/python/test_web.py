"""acidic_job.web called as a WSGI application (no server, no browser) on every kind of
database: the defaults, the authorization hook, the double-submit CSRF cookie, files,
parameters, a run's JSON, mount(). tests/web drives the page itself in a browser."""
from __future__ import annotations

import io
import json
import logging
from typing import Any, Dict, Optional, Tuple
from wsgiref.util import setup_testing_defaults

import pytest

import acidic_job
from acidic_job import web
from acidic_job.admin import Admin


def failed_run(db: Any, key: str, label: str = "x") -> int:
    class WebFail(acidic_job.Workflow, database=db, name="WebFail"):
        note: Optional[str] = None

        def __init__(self, label: str) -> None:
            self.label = label

        @acidic_job.step
        def one(self, tx: acidic_job.Cursor) -> None:
            self.note = '{"nested": [1, 2]} <script>'

        @acidic_job.step
        def two(self, tx: acidic_job.Cursor) -> None:
            raise ValueError(f"two failed <b>{self.label}</b>")

    with pytest.raises(ValueError):
        WebFail.run(label, key=key)
    return Admin(db).show(key).run.id


def call(app: Any, method: str, path: str, body: Any = None, query: str = "",
         headers: Optional[Dict[str, str]] = None, content_type: str = "application/json"
         ) -> Tuple[int, Dict[str, str], Any]:
    environ: Dict[str, Any] = {}
    setup_testing_defaults(environ)
    environ.update(REQUEST_METHOD=method, SCRIPT_NAME="/acidic_job", PATH_INFO=path,
                   QUERY_STRING=query)
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        environ.update(CONTENT_TYPE=content_type, CONTENT_LENGTH=str(len(data)))
        environ["wsgi.input"] = io.BytesIO(data)
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    got: Dict[str, Any] = {}

    def start_response(status: str, response_headers: Any) -> None:
        got["status"] = int(status.split()[0])
        got["headers"] = response_headers

    raw = b"".join(app(environ, start_response))
    head: Dict[str, str] = {}
    for name, value in got["headers"]:
        head[name.lower()] = head[name.lower()] + "\n" + value if name.lower() in head else value
    doc = json.loads(raw) if head.get("content-type", "").startswith("application/json") else raw
    return got["status"], head, doc


def token_of(app: Any, **headers: str) -> Tuple[str, Dict[str, str]]:
    """(token, the headers a page sends with it: the cookie and X-CSRF-Token)."""
    _, head, config = call(app, "GET", "/api/config", headers=headers)
    cookie = head["set-cookie"].split(";")[0]
    return config["csrf_token"], dict(headers, Cookie=cookie, X_CSRF_Token=config["csrf_token"])


def test_read_only_without_a_hook(dbenv, caplog):
    rid = failed_run(dbenv.db, "ro-1")
    with caplog.at_level(logging.WARNING, logger="acidic_job"):
        app = web.app(dbenv.db)
    assert "read-only: no authorize hook" in caplog.text
    _, _, config = call(app, "GET", "/api/config")
    assert config["read_only"] is True and config["actions"] == []
    assert config["database"] == dbenv.group
    _, sent = token_of(app)
    status, _, doc = call(app, "POST", f"/api/runs/{rid}/retry", {}, headers=sent)
    assert (status, doc["error"]["code"]) == (403, "READ_ONLY")
    assert Admin(dbenv.db).show(rid).run.state == "failed"


def test_authorize_hook_and_csrf(dbenv):
    rid = failed_run(dbenv.db, "hook-1")
    asked = []

    def authorize(environ: Dict[str, Any], action: str) -> bool:
        asked.append(action)
        return environ.get("HTTP_X_USER") == "ops" and action in ("read", "retry", "bulk_retry")

    app = web.app(dbenv.db, authorize=authorize)
    assert call(app, "GET", "/", headers={"X-User": "visitor"})[0] == 403
    assert call(app, "GET", "/api/stats", headers={"X-User": "visitor"})[0] == 403
    _, head, config = call(app, "GET", "/api/config", headers={"X-User": "ops"})
    assert config["actions"] == ["retry", "bulk_retry"] and config["read_only"] is False
    cookie = head["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/acidic_job/" in cookie
    token, sent = token_of(app, X_User="ops")
    # no token, a wrong one, the token without its cookie, a form body: refused
    for headers in ({"X-User": "ops", "Cookie": sent["Cookie"]},
                    dict(sent, X_CSRF_Token="x" * 43),
                    {"X-User": "ops", "X-CSRF-Token": token}):
        status, _, doc = call(app, "POST", f"/api/runs/{rid}/retry", {}, headers=headers)
        assert (status, doc["error"]["code"]) == (403, "CSRF"), headers
    status, _, _ = call(app, "POST", f"/api/runs/{rid}/retry", b"force=false", headers=sent,
                        content_type="application/x-www-form-urlencoded")
    assert status == 400
    assert Admin(dbenv.db).show(rid).run.state == "failed"
    status, _, doc = call(app, "POST", f"/api/runs/{rid}/discard", {}, headers=sent)
    assert (status, doc["error"]["code"]) == (403, "FORBIDDEN")
    # a run started by Cls.run() has no resume job: retried all the same, not enqueued
    status, _, doc = call(app, "POST", f"/api/runs/{rid}/retry", {}, headers=sent)
    assert status == 200, doc
    assert doc["enqueued"] is False and doc["run"]["state"] == "queued"
    status, _, doc = call(app, "POST", "/api/bulk", {"action": "retry", "ids": [rid, 999999]},
                          headers=sent)
    assert status == 200 and (doc["changed"], doc["skipped"]) == (1, 1), doc
    assert [e["code"] for e in doc["errors"]] == ["AJ_ENOTFOUND"]
    assert "discard" in asked


def test_files_parameters_and_mount(dbenv):
    app = web.app(dbenv.db, read_only=True)
    status, head, _ = call(app, "GET", "")
    assert (status, head["location"]) == (302, "/acidic_job/")
    status, head, raw = call(app, "GET", "/")
    assert status == 200 and b'src="assets/app.js"' in raw
    assert "script-src 'self'" in head["content-security-policy"]
    assert head["x-frame-options"] == "DENY"
    status, head, raw = call(app, "GET", "/assets/app.js")
    assert status == 200 and head["content-type"].startswith("text/javascript")
    assert b"textContent" in raw
    for path in ("/assets/../index.html", "/assets/..%2findex.html", "/assets/nope.js",
                 "/api/nope", "/etc/passwd"):
        assert call(app, "GET", path)[0] == 404, path
    for query in ("state=bogus", "limit=0", "limit=1001", "cursor=-1", "cursor=abc",
                  "older_than=1h", "since=yesterday", "order=up", "state=failed&state=dead"):
        status, _, doc = call(app, "GET", "/api/runs", query=query)
        assert (status, doc["error"]["code"]) == (400, "AJ_EINVALID"), query
    assert call(app, "GET", "/api/runs/999999")[2]["error"]["code"] == "AJ_ENOTFOUND"
    assert call(app, "DELETE", "/api/stats")[0] == 405

    def application(environ: Dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["PATH_INFO"].encode()]

    mounted = web.mount(application, "/ops/", app)
    environ: Dict[str, Any] = {}
    setup_testing_defaults(environ)
    for path, expect in (("/ops/api/config", b'"read_only":true'), ("/opsx", b"/opsx"),
                         ("/", b"/")):
        environ.update(PATH_INFO=path, SCRIPT_NAME="")
        body = b"".join(mounted(dict(environ), lambda status, headers: None))
        assert expect in body, (path, body)


def test_reading_a_run(dbenv):
    rid = failed_run(dbenv.db, "read-1", "<script>")
    app = web.app(dbenv.db, read_only=True)
    _, _, doc = call(app, "GET", f"/api/runs/{rid}")
    assert doc["run"]["key"] == "read-1" and doc["run"]["state"] == "failed"
    assert [(s["name"], s["state"]) for s in doc["steps"]] == [("one", "done"),
                                                               ("two", "current")]
    assert doc["error"]["message"] == "two failed <b><script></b>"
    assert doc["attributes_format"] == "json"
    assert json.loads(doc["attributes"]) == {"note": '{"nested": [1, 2]} <script>'}
    assert doc["attributes"].startswith("{\n  ")  # pretty-printed
    _, _, page = call(app, "GET", "/api/runs", query="state=failed&limit=1")
    assert [r["id"] for r in page["runs"]] == [rid] and page["next_cursor"] is None
    _, _, stats = call(app, "GET", "/api/stats")
    assert stats["total"] == 1 and stats["states"] == [{"state": "failed", "count": 1}]
    _, _, staged = call(app, "GET", "/api/staged")
    assert staged == {"staged": [], "next_cursor": None}


def test_acidic_job_web_command(tmp_path):
    """`acidic-job web` (python -m acidic_job web): read-only unless --allow-actions."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    db = tmp_path / "cli.db"
    failed_run(f"sqlite:{db}", "cli-1")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for flags, read_only in (([], True), (["--allow-actions"], False)):
        proc = subprocess.Popen([sys.executable, "-m", "acidic_job", "web", "--database",
                                 f"sqlite:{db}", "--port", str(port), *flags],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/config") as res:
                        config = json.loads(res.read())
                    break
                except OSError:
                    assert proc.poll() is None and time.monotonic() < deadline, \
                        proc.stdout.read().decode() if proc.poll() is not None else "timeout"
                    time.sleep(0.2)
            assert config["read_only"] is read_only
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/runs?state=failed") as res:
                assert [r["key"] for r in json.loads(res.read())["runs"]] == ["cli-1"]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as res:
                assert b"assets/app.js" in res.read()
        finally:
            proc.terminate()
            proc.wait(10)
    missing = subprocess.run([sys.executable, "-m", "acidic_job", "web", "--database",
                              f"sqlite:{tmp_path / 'nope.db'}", "--port", str(port)],
                             capture_output=True, text=True, timeout=30)
    assert missing.returncode != 0 and "no SQLite database" in missing.stderr
    assert not (tmp_path / "nope.db").exists()
