"""The dashboard: a WSGI application serving the one front end (``web/`` in the
repository, ``acidic_job/web_assets`` in the package) and the JSON API of
``docs/web-api.md`` over :class:`acidic_job.admin.Admin`.

Any WSGI server serves it (the standard library's ``wsgiref`` included)::

    import acidic_job.web
    dashboard = acidic_job.web.app("postgresql://.../shop", lock_timeout=90,
                                   authorize=lambda environ, action: is_admin(environ))
    application = acidic_job.web.mount(application, "/acidic_job", dashboard)  # Django, Flask

or ``acidic-job web --database URL --port 8080`` for a quick look.

Safety: actions are POSTs of JSON carrying the CSRF token of ``/api/config``, checked
against a double-submit cookie (``SameSite=Strict``, ``HttpOnly``); ``read_only=True``
refuses every action; ``authorize(environ, action)`` decides per request (``action`` is
``"read"`` or one of :data:`ACTIONS`). Without a hook and without ``read_only=False``
the dashboard is read-only and logs a warning saying so. Request parameters are parsed
into the core's filter, never into SQL; the page inserts every value as text.
"""
from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
import threading
from datetime import datetime, timezone
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import (Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple)
from urllib.parse import parse_qs

from ._native import VERSION
from .admin import Admin, to_json_value
from .databases import DatabaseLike
from .errors import Error, InvalidArgument

__all__ = ["app", "mount", "serve", "Dashboard", "ACTIONS"]

log = logging.getLogger("acidic_job")

#: what the authorization hook is asked about, besides "read"
ACTIONS: Tuple[str, ...] = ("retry", "reset", "unlock", "discard", "bulk_retry",
                            "bulk_discard", "drain")
CSRF_COOKIE = "acidic_job_csrf"
MAX_IDS = 1000
MAX_BODY = 1_000_000

Environ = Dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
Authorize = Callable[[Environ, str], Any]

SECURITY_HEADERS: List[Tuple[str, str]] = [
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; "
     "img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; "
     "frame-ancestors 'none'"),
]
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}

# Core codes an action answers with their own status; anything else is a 500.
STATUS = {"AJ_EINVALID": 400, "AJ_ENOTFOUND": 404, "AJ_ELOCKED": 409, "AJ_ESTATE": 409,
          "AJ_EUNKNOWN_RECOVERY_POINT": 409}
SKIPPED = ("AJ_ESTATE", "AJ_ELOCKED", "AJ_ENOTFOUND")
TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")


class Refusal(Exception):
    """An answer with its own status and code (403 CSRF, 404 NOT_FOUND, ...)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _front_end() -> Path:
    """The one copy of web/: in the installed package, else in the source tree."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "web_assets", here.parents[2] / "web"):
        if (candidate / "index.html").is_file():
            return candidate
    raise FileNotFoundError(f"the dashboard's files are missing (looked in {here / 'web_assets'})")


def _load_files(root: Path) -> Dict[str, bytes]:
    """Read once: a request names an entry of this table, never a path on disk."""
    files = {"index.html": (root / "index.html").read_bytes()}
    for path in sorted((root / "assets").iterdir()):
        if path.is_file() and path.suffix in TYPES:
            files[f"assets/{path.name}"] = path.read_bytes()
    return files


class Dashboard:
    """The WSGI application :func:`app` returns."""

    def __init__(self, database: DatabaseLike, *, read_only: Optional[bool] = None,
                 authorize: Optional[Authorize] = None, lock_timeout: Optional[float] = None,
                 poll_seconds: float = 5) -> None:
        if read_only is not None and not isinstance(read_only, bool):
            raise TypeError("read_only must be True, False or None")
        if authorize is not None and not callable(authorize):
            raise TypeError("authorize must be a callable(environ, action) -> bool")
        self.admin = Admin(database, lock_timeout=lock_timeout)
        self._lock = threading.Lock()  # one request at a time on the Admin's store
        self.authorize = authorize
        self.read_only = read_only
        if read_only is None and authorize is None:
            self.read_only = True
            log.warning("acidic_job web: read-only: no authorize hook. Pass "
                        "acidic_job.web.app(db, authorize=lambda environ, action: ...) or "
                        "read_only=False to allow actions.")
        self.poll_seconds = poll_seconds
        self.files = _load_files(_front_end())
        driver = self.admin.driver
        # "host": a store borrowed through the application's driver; tell by its module
        self.database_kind = driver if driver in ("sqlite", "postgres") else _database_kind(database)

    # -- WSGI -------------------------------------------------------------------------
    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        extra: List[Tuple[str, str]] = []
        try:
            status, headers, body = self.handle(environ, extra)
        except Refusal as e:
            status, headers, body = _json(e.status, _error(e.code, e.message))
        except Error as e:
            code = e.code_name or "AJ_ERROR"
            status_code = STATUS.get(code, 500)
            if status_code == 500:
                log.error("acidic_job web: %s: %s", type(e).__name__, e)
            status, headers, body = _json(status_code, _error(code, str(e)))
        except Exception as e:  # the page shows a message; the log has the details
            log.exception("acidic_job web: %s", type(e).__name__)
            status, headers, body = _json(500, _error(
                "AJ_ERROR", f"internal error ({type(e).__name__}); the server's log has the "
                "details"))
        start_response(f"{status} {HTTPStatus(status).phrase}",
                       SECURITY_HEADERS + headers + extra)
        return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else body]

    def handle(self, environ: Environ, extra: List[Tuple[str, str]]
               ) -> Tuple[int, List[Tuple[str, str]], bytes]:
        path = environ.get("PATH_INFO", "") or ""
        base = environ.get("SCRIPT_NAME", "") or ""
        if path == "":
            return 302, [("Location", base + "/"), ("Content-Type", "text/plain")], b""
        if not self._authorized(environ, "read"):
            raise Refusal(403, "FORBIDDEN", "not authorized to read the dashboard")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/" or path.startswith("/assets/"):
            if method not in ("GET", "HEAD"):
                raise Refusal(405, "METHOD_NOT_ALLOWED", f"{method} is not allowed here")
            name = "index.html" if path == "/" else path[1:]
            body = self.files.get(name)
            if body is None:
                raise Refusal(404, "NOT_FOUND", "no such file")
            return 200, [("Content-Type", TYPES[Path(name).suffix]),
                         ("Cache-Control", "no-cache")], body
        if not path.startswith("/api/"):
            raise Refusal(404, "NOT_FOUND", f"no such page: the dashboard is at {base}/")
        endpoint = path[len("/api/"):]
        if method == "POST":
            return _json(200, self.act(environ, endpoint))
        if method not in ("GET", "HEAD"):
            raise Refusal(405, "METHOD_NOT_ALLOWED", f"{method} is not allowed here")
        return _json(200, self.read(environ, endpoint, extra))

    # -- reading ----------------------------------------------------------------------
    def read(self, environ: Environ, endpoint: str, extra: List[Tuple[str, str]]) -> Any:
        params = _query(environ)
        if endpoint == "config":
            actions = self.allowed_actions(environ)
            return {"read_only": not actions, "actions": actions,
                    "csrf_token": self._csrf_token(environ, extra), "version": VERSION,
                    "database": self.database_kind, "poll_seconds": self.poll_seconds}
        with self._lock:
            if endpoint == "stats":
                return self.admin.stats().to_json()
            if endpoint == "runs":
                return self.admin.list(**_list_params(params)).to_json()
            found = re.fullmatch(r"runs/([1-9][0-9]{0,18})", endpoint)
            if found:
                return _detail(self.admin.show(int(found.group(1))))
            if endpoint == "staged":
                return self.admin.staged(cursor=_id_param(params, "cursor"),
                                         limit=_limit_param(params)).to_json()
        raise Refusal(404, "NOT_FOUND", f"no such endpoint: api/{endpoint}")

    # -- acting -----------------------------------------------------------------------
    def act(self, environ: Environ, endpoint: str) -> Any:
        found = re.fullmatch(r"runs/([1-9][0-9]{0,18})/(retry|reset|unlock|discard)", endpoint)
        if not found and endpoint not in ("bulk", "drain"):
            raise Refusal(404, "NOT_FOUND", f"no such endpoint: api/{endpoint}")
        if self.read_only:
            raise Refusal(403, "READ_ONLY", "the dashboard is read-only")
        body = _json_body(environ)
        name = found.group(2) if found else endpoint
        if name == "bulk":
            if body.get("action") not in ("retry", "discard"):
                raise InvalidArgument('bulk action must be "retry" or "discard"')
            name = "bulk_" + body["action"]
        if not self._authorized(environ, name):
            raise Refusal(403, "FORBIDDEN", f"not authorized to {name.replace('_', ' ')}")
        if not self._csrf_valid(environ):
            raise Refusal(403, "CSRF", "missing or wrong X-CSRF-Token: reload the page")
        force = _boolean(body, "force")
        with self._lock:
            if found:
                run_id = int(found.group(1))
                if name == "reset":
                    step = body.get("step")
                    if not isinstance(step, str) or not step:
                        raise InvalidArgument('reset needs "step": the name of a step')
                    return self._requeue(run_id, force, step)
                if name == "retry":
                    return self._requeue(run_id, force, None)
                run = getattr(self.admin, name)(run_id, force=force)
                return {"ok": True, "run": run.to_json()}
            if name == "drain":
                return {"delivered": self.admin.drain(older_than=0)}
            return self._bulk(name[len("bulk_"):], body)

    def _requeue(self, run_id: int, force: bool, step: Optional[str]) -> Any:
        """Retry or reset: through the run's resume job; a run without one (started by
        Cls.run(), not by a queue) is changed all the same and waits for the application
        to run it again."""
        def call(enqueue: bool) -> Any:
            if step is None:
                return self.admin.retry(run_id, force=force, enqueue=enqueue)
            return self.admin.reset(run_id, step, force=force, enqueue=enqueue)
        try:
            return {"ok": True, "run": call(True).to_json(), "enqueued": True}
        except Error as e:
            if e.code_name != "AJ_ESTATE" or self.admin.show(run_id).resume is not None:
                raise
        return {"ok": True, "run": call(False).to_json(), "enqueued": False}

    def _bulk(self, action: str, body: Mapping[str, Any]) -> Any:
        if ("ids" in body) == ("filter" in body):
            raise InvalidArgument('bulk needs "ids" or "filter", not both')
        if "filter" in body:
            criteria = body["filter"]
            if not isinstance(criteria, dict):
                raise InvalidArgument('"filter" must be an object')
            unknown = set(criteria) - {"state", "job", "key_prefix", "older_than", "since"}
            if unknown:
                raise InvalidArgument(f"unknown filter {', '.join(sorted(unknown))}")
            params = _list_params({k: str(v) if isinstance(v, int) and not isinstance(v, bool)
                                   else v for k, v in criteria.items()})
            params.pop("order", None)
            result = self.admin.bulk(action, **params)
            return {"changed": result.changed, "skipped": result.skipped, "errors": []}
        ids = body["ids"]
        if (not isinstance(ids, list) or len(ids) > MAX_IDS or
                not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in ids)):
            raise InvalidArgument(f'"ids" must be a list of at most {MAX_IDS} run ids')
        changed, errors = 0, []
        for run_id in dict.fromkeys(ids):
            try:
                if action == "retry":  # as one retry does, also for runs without a resume job
                    self._requeue(run_id, False, None)
                else:
                    self.admin.discard(run_id)
                changed += 1
            except Error as e:
                if e.code_name not in SKIPPED:
                    raise
                errors.append({"id": run_id, "code": e.code_name, "message": str(e)})
        return {"changed": changed, "skipped": len(errors), "errors": errors}

    # -- who may do what ----------------------------------------------------------------
    def _authorized(self, environ: Environ, action: str) -> bool:
        return self.authorize is None or bool(self.authorize(environ, action))

    def allowed_actions(self, environ: Environ) -> List[str]:
        if self.read_only:
            return []
        return [a for a in ACTIONS if self._authorized(environ, a)]

    # -- CSRF: a double-submit cookie -------------------------------------------------
    def _csrf_token(self, environ: Environ, extra: List[Tuple[str, str]]) -> str:
        token = _cookies(environ).get(CSRF_COOKIE)
        if token is None or not TOKEN.fullmatch(token):
            token = secrets.token_urlsafe(32)
            path = (environ.get("SCRIPT_NAME", "") or "") + "/"
            secure = "; Secure" if environ.get("wsgi.url_scheme") == "https" else ""
            extra.append(("Set-Cookie", f"{CSRF_COOKIE}={token}; Path={path}; HttpOnly; "
                                        f"SameSite=Strict{secure}"))
        return token

    def _csrf_valid(self, environ: Environ) -> bool:
        given = environ.get("HTTP_X_CSRF_TOKEN", "")
        expected = _cookies(environ).get(CSRF_COOKIE, "")
        return bool(given and expected) and hmac.compare_digest(
            given.encode("utf-8", "replace"), expected.encode("utf-8", "replace"))


def app(database: DatabaseLike, *, read_only: Optional[bool] = None,
        authorize: Optional[Authorize] = None, lock_timeout: Optional[float] = None,
        poll_seconds: float = 5) -> Dashboard:
    """The dashboard as a WSGI application, on ``database`` (a URL, a connection or a
    factory, as a workflow's ``database=``). ``lock_timeout``: the workers' (seconds).
    ``read_only``: True refuses every action; False allows them (subject to
    ``authorize``); None (default): allowed with an ``authorize`` hook, else read-only
    with a warning. ``authorize(environ, action) -> bool``: action is ``"read"`` or one
    of :data:`ACTIONS`. Staged jobs (retries, resets, drains) go through the queue
    adapters installed in this process (``acidic_job.rq.install``, ...)."""
    return Dashboard(database, read_only=read_only, authorize=authorize,
                     lock_timeout=lock_timeout, poll_seconds=poll_seconds)


def mount(application: WSGIApp, prefix: str, dashboard: WSGIApp) -> WSGIApp:
    """``application`` with ``dashboard`` answering under ``prefix`` (e.g.
    "/acidic_job"): for Django's ``wsgi.py`` and Flask's ``app.wsgi_app``."""
    prefix = "/" + prefix.strip("/")

    def dispatch(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or ""
        if path == prefix or path.startswith(prefix + "/"):
            environ = dict(environ, SCRIPT_NAME=(environ.get("SCRIPT_NAME", "") or "") + prefix,
                           PATH_INFO=path[len(prefix):])
            return dashboard(environ, start_response)
        return application(environ, start_response)
    return dispatch


def serve(application: WSGIApp, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve ``application`` with the standard library's wsgiref, one thread per request,
    until interrupted (``acidic-job web``; for a quick look, not for production)."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # the page polls
            pass

    with make_server(host, port, application, server_class=Server,
                     handler_class=QuietHandler) as server:
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


# --- requests ------------------------------------------------------------------------------

def _query(environ: Environ) -> Dict[str, str]:
    params: Dict[str, str] = {}
    raw = environ.get("QUERY_STRING", "") or ""
    for name, values in parse_qs(raw, keep_blank_values=True, errors="strict").items():
        if len(values) != 1:
            raise InvalidArgument(f"{name} must be given once")
        params[name] = values[0]
    return params


def _cookies(environ: Environ) -> Dict[str, str]:
    jar: "SimpleCookie[str]" = SimpleCookie()
    try:
        jar.load(environ.get("HTTP_COOKIE", "") or "")
    except CookieError:
        return {}
    return {k: m.value for k, m in jar.items()}


def _json_body(environ: Environ) -> Dict[str, Any]:
    kind = (environ.get("CONTENT_TYPE", "") or "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise Refusal(400, "AJ_EINVALID", "send the body as application/json")
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise InvalidArgument("bad Content-Length") from None
    if length < 0 or length > MAX_BODY:
        raise InvalidArgument(f"the body is larger than {MAX_BODY} bytes")
    text = environ["wsgi.input"].read(length) if length else b""
    try:
        body = json.loads(text.decode("utf-8")) if text.strip() else {}
    except (UnicodeDecodeError, ValueError) as e:
        raise InvalidArgument(f"the body is not JSON: {str(e)[:120]}") from None
    if not isinstance(body, dict):
        raise InvalidArgument("the body must be a JSON object")
    return body


def _boolean(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise InvalidArgument(f'"{name}" must be true or false')
    return value


def _text(params: Mapping[str, Any], name: str) -> Optional[str]:
    value = params.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidArgument(f"{name} must be a text value")
    return value


def _id_param(params: Mapping[str, Any], name: str) -> Optional[int]:
    value = _text(params, name)
    if value is None:
        return None
    if not re.fullmatch(r"[1-9][0-9]{0,18}", value):
        raise InvalidArgument(f"{name} must be a run or row id")
    return int(value)


def _limit_param(params: Mapping[str, Any]) -> Optional[int]:
    value = _text(params, "limit")
    if value is None:
        return None
    if not re.fullmatch(r"[0-9]{1,4}", value) or not 1 <= int(value) <= 1000:
        raise InvalidArgument("limit must be a number from 1 to 1000")
    return int(value)


def _since(value: str) -> datetime:
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(f"since must be an ISO 8601 time such as 2026-12-01T10:00:00Z, "
                              f"not {value!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _list_params(params: Mapping[str, Any]) -> Dict[str, Any]:
    """Query parameters -> Admin.list keywords, each checked; nothing else passes."""
    out: Dict[str, Any] = {}
    state = _text(params, "state")
    if state is not None and state.strip():
        out["states"] = state
    for name, keyword in (("job", "job"), ("key_prefix", "key_prefix")):
        value = _text(params, name)
        if value is not None:
            out[keyword] = value
    older = _text(params, "older_than")
    if older is not None:
        if not re.fullmatch(r"[0-9]{1,10}", older):
            raise InvalidArgument("older_than must be a whole number of seconds")
        out["older_than"] = float(older)
    since = _text(params, "since")
    if since is not None:
        out["since"] = _since(since)
    cursor = _id_param(params, "cursor")
    if cursor is not None:
        out["cursor"] = cursor
    limit = _limit_param(params)
    if limit is not None:
        out["limit"] = limit
    order = _text(params, "order")
    if order is not None:
        if order not in ("desc", "asc"):
            raise InvalidArgument("order must be desc or asc")
        out["order"] = order
    return out


# --- answers -------------------------------------------------------------------------------

def _json(status: int, doc: Any) -> Tuple[int, List[Tuple[str, str]], bytes]:
    body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return status, [("Content-Type", "application/json; charset=utf-8"),
                    ("Cache-Control", "no-store")], body


def _error(code: str, message: str) -> Dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _pretty(doc: Optional[str]) -> Optional[str]:
    """A JSON document indented (keys in their stored order); anything else as stored."""
    if doc is None or not doc.lstrip().startswith(("{", "[")):
        return doc
    try:
        return json.dumps(json.loads(doc), indent=2, ensure_ascii=False)
    except ValueError:
        return doc


def _detail(detail: Any) -> Dict[str, Any]:
    doc: Dict[str, Any] = to_json_value(detail)
    doc["attributes"] = _pretty(detail.attributes)
    doc["job_args"] = _pretty(detail.job_args)
    return doc


def _database_kind(database: DatabaseLike) -> str:
    if isinstance(database, str):
        return "postgres" if database.startswith(("postgres://", "postgresql://")) else "sqlite"
    module = type(database).__module__ if database is not None else ""
    return "postgres" if module.startswith(("psycopg", "psycopg2")) else "sqlite"
