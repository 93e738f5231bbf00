"""The installed ``acidic-job`` command (the console script pip put in the venv that
tests/python/run.sh builds), run as a subprocess on SQLite and PostgreSQL over runs made
by shop_app's real workflows: its tables, its --json documents, its exit codes, its one
line errors, and its progress bar on a pseudo-terminal."""
from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

import pytest

import shop_app
from acidic_job.admin import Admin

HERE = os.path.dirname(os.path.abspath(__file__))
#: the console script of the venv this suite runs in
ACIDIC_JOB = os.path.join(os.path.dirname(sys.executable), "acidic-job")


class Result:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def json(self) -> Any:
        return json.loads(self.out)

    def __repr__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


def cli_env(url: Optional[str] = None, **extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACIDIC_JOB_")}
    env["PYTHONPATH"] = HERE  # for --import shop_app
    if url is not None:
        env["SHOP_DATABASE_URL"] = url
    env.update(extra)
    return env


def run(*args: str, url: Optional[str] = None, env: Optional[Dict[str, str]] = None
        ) -> Result:
    argv = [ACIDIC_JOB] + list(args)
    if url is not None:
        argv += ["--database", url]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=HERE,
                          env=env if env is not None else cli_env(url))
    return Result(proc.returncode, proc.stdout, proc.stderr)


_opened = shop_app.opened  # closed after each test (conftest.py)
make_app = shop_app.make_tracked


def admin(url: str, lock_timeout: Optional[float] = None) -> Admin:
    opened = Admin(url, lock_timeout=lock_timeout)
    _opened.append(opened)
    return opened


@pytest.fixture
def shop(url_env: Any) -> shop_app.App:
    app = make_app(url_env.url)
    app.seed()
    return app


def test_it_is_installed_as_a_console_script() -> None:
    assert os.access(ACIDIC_JOB, os.X_OK), ACIDIC_JOB
    r = run("--version")
    assert r.code == 0 and "0.9.0" in r.out
    r = run("--help")
    assert r.code == 0
    for command in ("list", "show", "retry", "reset", "unlock", "discard", "drain", "recover",
                    "prune", "stats"):
        assert command in r.out
        sub = run(command, "--help")
        assert sub.code == 0 and "--database" in sub.out and "--json" in sub.out, sub


def test_list_prints_a_table_and_json(url_env: Any, shop: shop_app.App) -> None:
    url = url_env.url
    r = run("list", url=url)
    assert r.code == 0, r
    lines = r.out.splitlines()
    assert lines[0].split() == ["ID", "KEY", "JOB", "STATE", "STEP", "ATTEMPTS", "LOCKED",
                                "FOR", "ERROR", "UPDATED"]
    rows = {line.split()[1]: line for line in lines[2:]}
    assert set(rows) == {"ride-1", "ride-2", "ride-3", "split-7", "payout-9",
                         "ride-request-0.7.0"}
    assert rows["ride-3"].split()[2:5] == ["RideCreate", "failed", "charge"]
    assert "CardDeclined: Your card was declined (ride 3)" in rows["ride-3"]
    assert "Stripe::CardError: Your card was declined." in rows["ride-request-0.7.0"]
    assert all(line == line.rstrip() for line in lines)

    r = run("list", "--state", "failed,dead", "--json", url=url)
    assert r.code == 0, r
    doc = r.json()
    assert [run_["key"] for run_ in doc["runs"]] == ["ride-request-0.7.0", "payout-9", "ride-3"]
    assert doc["next_cursor"] is None
    assert doc["runs"][2]["error_message"] == "Your card was declined (ride 3)"

    r = run("list", "--limit", "2", "--order", "asc", url=url)
    assert r.code == 0 and r.out.splitlines()[-1] == "more: --cursor 2", r
    r = run("list", "--limit", "2", "--order", "asc", "--cursor", "2", "--json", url=url)
    assert [x["key"] for x in r.json()["runs"]] == ["ride-3", "split-7"]

    r = run("list", "--job", "NoSuchJob", url=url)
    assert (r.code, r.out.strip()) == (1, "no runs match"), r
    r = run("list", "--older-than", "1h", "--json", url=url)
    assert [x["key"] for x in r.json()["runs"]] == ["ride-request-0.7.0"]
    r = run("list", "--since", "2026-11-30T08:15Z", "--key-prefix", "ride-request", url=url)
    assert r.code == 0 and "ride-request-0.7.0" in r.out


def test_show_prints_steps_error_attributes(url_env: Any, shop: shop_app.App) -> None:
    url = url_env.url
    r = run("show", "ride-3", url=url)
    assert r.code == 0, r
    out = r.out
    assert out.startswith("run 3 'ride-3' (RideCreate)\n")
    assert "state           failed" in out and "recovery point  charge" in out
    assert "  done     create_ride\n  current  charge\n  pending  send_receipt\n" in out
    assert "error (json)" in out and "Your card was declined (ride 3)" in out
    assert '"ride_id": ' in out  # the attributes, indented JSON
    assert "resume job\n  shop shop.resume" in out

    r = run("show", "ride-request-0.7.0", url=url)
    assert r.code == 0, r
    assert "error (yaml)\n  Stripe::CardError\n    Your card was declined.\n" in r.out
    assert "app/jobs/ride_create_job.rb:24:in `create_stripe_charge'" in r.out
    assert "attributes (yaml)\n  ---\n  ride: !ruby/object:Ride\n" in r.out  # as stored
    assert "none: retry and recovery cannot enqueue this run" in r.out

    r = run("show", "split-7", "--json", url=url)
    doc = r.json()
    assert doc["run"]["state"] == "awaiting" and doc["batch"]["remaining"] == 1
    assert [s["state"] for s in doc["steps"]] == ["done", "current"]
    assert run("show", "--id", str(doc["run"]["id"]), "--json", url=url).json() == doc

    r = run("show", "nope", url=url)
    assert r.code == 1 and r.out == "" and len(r.err.strip().splitlines()) == 1, r
    assert "nope" in r.err
    assert run("show", url=url).code == 2  # neither KEY nor --id


def test_a_key_naming_two_runs_needs_an_id(url_env: Any, shop: shop_app.App) -> None:
    url_env.sql("UPDATE acidic_job_keys SET idempotency_key = 'twin' "
                "WHERE idempotency_key IN ('ride-1', 'payout-9')")
    r = run("show", "twin", url=url_env.url)
    assert r.code == 2 and "--id" in r.err and len(r.err.strip().splitlines()) == 1, r
    r = run("show", "twin", "--json", url=url_env.url)
    assert r.code == 2 and r.json()["error"]["code"] == "AJ_EINVALID", r


def test_retry_stages_the_resume_job_for_the_applications_drain(url_env: Any,
                                                                 shop: shop_app.App) -> None:
    url = url_env.url
    queued = "SELECT count(*) FROM shop_queue WHERE job_name = 'shop.resume'"
    r = run("retry", "ride-3", url=url)
    assert r.code == 0, r
    assert r.out.startswith("retried run 3 'ride-3' (RideCreate): it resumes at step 'charge'")
    assert "is staged: the application's next drain sends it" in r.out
    assert r.err == ""
    assert url_env.sql(queued) == [(0,)]  # the command has no adapter of the application
    # (and split-7's awaited job, sent at seed and not acknowledged yet, once more)
    r = run("drain", "--older-than", "0", "--import", "shop_app", url=url)
    assert (r.code, r.out.strip()) == (0, "delivered 2 staged job(s)"), r
    assert url_env.sql(queued) == [(1,)]
    assert True in shop.work()
    assert admin(url).get("ride-3").state == "succeeded"

    r = run("retry", "ride-3", url=url)  # finished now
    assert r.code == 1 and "succeeded" in r.err and len(r.err.strip().splitlines()) == 1, r

    # with the application's module, the job goes to its queue at once
    r = run("retry", "payout-9", "--import", "shop_app", "--json", url=url)
    assert r.code == 0, r
    doc = r.json()
    assert doc["ok"] is True and doc["run"]["state"] == "queued"
    assert url_env.sql(queued) == [(1,)]


def test_reset_unlock_discard_and_their_refusals(url_env: Any, shop: shop_app.App) -> None:
    url = url_env.url
    r = run("reset", "ride-1", "--to-step", "create_ride", "--import", "shop_app", "--json",
            url=url)
    assert r.code == 0, r
    assert r.json()["run"]["recovery_point"] == "create_ride"
    url_env.sql("DELETE FROM shop_queue WHERE job_name = 'shop.charge_share'")
    assert shop.work() == [True]
    assert url_env.sql("SELECT count(*) FROM rides WHERE rider = 1") == [(2,)]

    r = run("reset", "ride-1", "--to-step", "refund", url=url)
    assert r.code == 1 and "refund" in r.err, r
    assert run("reset", "ride-1", url=url).code == 2  # --to-step is required
    r = run("unlock", "ride-3", url=url)
    assert r.code == 1 and "not locked" in r.err, r
    r = run("discard", "ride-3", url=url)
    assert r.code == 0 and r.out.startswith("discarded run 3 'ride-3'"), r
    r = run("discard", "ride-3", "--json", url=url)
    assert r.code == 1 and r.json()["error"]["code"] == "AJ_ESTATE", r


def test_a_run_held_by_a_live_worker_is_refused_in_one_line(url_env: Any,
                                                             shop: shop_app.App) -> None:
    worker = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "shop_app.py"), url_env.url, "hang", "5"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=HERE,
        env=cli_env())
    try:
        assert worker.stdout.readline().strip() == "IN_STEP"  # type: ignore[union-attr]
        r = run("list", "--state", "running", "--lock-timeout", "60", url=url_env.url)
        assert r.code == 0 and "ride-5" in r.out, r
        r = run("discard", "ride-5", "--lock-timeout", "60", url=url_env.url)
        assert r.code == 1 and r.out == "", r
        assert len(r.err.strip().splitlines()) == 1 and r.err.startswith("acidic-job discard: ")
        if url_env.url.startswith("sqlite:"):
            assert "--force" in r.err
        else:
            assert "held by a transaction" in r.err
        assert admin(url_env.url, lock_timeout=60).get("ride-5").state == "running"
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    time.sleep(1.2)
    r = run("list", "--state", "stranded", "--lock-timeout", "1", "--json", url=url_env.url)
    assert [x["key"] for x in r.json()["runs"]] == ["ride-5"], r
    env = cli_env(ACIDIC_JOB_DATABASE_URL=url_env.url, ACIDIC_JOB_LOCK_TIMEOUT="1")
    deadline = time.monotonic() + 30
    while True:  # PostgreSQL ends the killed worker's session on its own
        r = run("unlock", "ride-5", env=env)
        if r.code == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.code == 0 and "unlocked run" in r.out, r
    r = run("recover", "--import", "shop_app", env=dict(env, SHOP_DATABASE_URL=url_env.url))
    assert (r.code, r.out.strip()) == (0, "requeued 1 run(s), 0 dead"), r


def test_bulk_retry_counts_and_exits_1_when_nothing_matched(url_env: Any,
                                                             shop: shop_app.App) -> None:
    url = url_env.url
    r = run("retry", "--all", "--job", "RideCreate", "--state", "failed", url=url)
    assert (r.code, r.out.strip()) == (0, "retry: 1 run(s) changed, 0 skipped"), r
    r = run("retry", "--all", "--job", "RideCreate", "--state", "failed", "--json", url=url)
    assert r.code == 1 and r.json() == {"changed": 0, "skipped": 0}, r
    r = run("discard", "--all", "--state", "failed", url=url)  # the 0.7.0 row
    assert r.code == 0 and "1 run(s) changed" in r.out, r
    assert run("retry", "--job", "RideCreate", url=url).code == 2  # filters need --all
    assert run("retry", "ride-3", "--all", url=url).code == 2
    r = run("list", "--state", "broken", url=url)
    assert r.code == 2 and "failed" in r.err and r.out == "", r
    assert r.err.count("\n") == 1 and r.err.startswith("acidic-job list: "), r  # one line
    assert "acidic-job list --help" in r.err
    r = run("prune", "--finished-before", "soon", url=url)
    assert r.code == 2 and "duration" in r.err, r


def test_prune_and_stats(url_env: Any, shop: shop_app.App) -> None:
    url = url_env.url
    r = run("stats", url=url)
    assert r.code == 0, r
    assert r.out.startswith("runs: 6\n")
    assert "oldest stranded: none" in r.out
    assert "staged jobs not acknowledged: 1 (oldest: #1 shop shop.charge_share" in r.out
    assert "open batches: 1 (oldest: #1 of run 4, step 'split': 1 job(s) to go" in r.out
    doc = run("stats", "--json", url=url).json()
    assert doc["total"] == 6 and {"state": "failed", "count": 2} in doc["states"]

    r = run("prune", "--finished-before", "7d", url=url)
    assert (r.code, r.out.strip()) == (0, "deleted 0 finished run(s)"), r
    time.sleep(0.01)
    r = run("prune", "--finished-before", "0s", "--json", url=url)
    assert (r.code, r.json()) == (0, {"deleted": 2}), r
    assert run("stats", "--json", url=url).json()["total"] == 4


def test_errors_are_one_line_and_never_show_a_password(tmp_path: Any) -> None:
    r = run("list", "--database", "postgresql://ops:s3cretpw@127.0.0.1:1/shop")
    assert r.code == 1 and "s3cretpw" not in r.err + r.out, r
    assert len(r.err.strip().splitlines()) == 1 and r.err.startswith("acidic-job list: ")
    r = run("list", "--database", str(tmp_path / "missing.db"))
    assert r.code == 1 and "no SQLite database" in r.err, r
    assert not os.path.exists(tmp_path / "missing.db")
    r = run("list")  # no --database, no ACIDIC_JOB_DATABASE_URL
    assert r.code == 2 and "ACIDIC_JOB_DATABASE_URL" in r.err, r
    r = run("stats", "--database", "bogus://x")
    assert r.code == 2 and r.err.startswith("acidic-job stats: ") and "bogus" in r.err, r


def test_python_m_acidic_job_is_the_same_command(url_env: Any, shop: shop_app.App) -> None:
    proc = subprocess.run([sys.executable, "-m", "acidic_job", "drain", "--url", url_env.url,
                           "--older-than", "0", "--import", "shop_app"], capture_output=True,
                          text=True, cwd=HERE, env=cli_env(url_env.url), timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "delivered 1 staged job(s)", proc


def on_a_terminal(argv: List[str], env: Dict[str, str]) -> Tuple[int, str]:
    """Run argv with its stdin, stdout and stderr on a pseudo-terminal; (exit code, what
    the terminal showed)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: on the terminal
        os.execve(argv[0], argv, dict(env, COLUMNS="120", LINES="40", TERM="xterm"))
    chunks: List[bytes] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode("utf-8", "replace")


def test_bulk_actions_show_a_progress_bar_on_a_terminal_and_a_count_otherwise(
        url_env: Any) -> None:
    url = url_env.url
    app = make_app(url)
    app.switch("card_declined")
    for rider in range(120):
        with pytest.raises(shop_app.CardDeclined):
            app.ride(rider)
    argv = [ACIDIC_JOB, "retry", "--all", "--state", "failed", "--batch-size", "20",
            "--database", url]
    r = run(*argv[1:])  # pipes: the count only
    assert (r.code, r.out.strip(), r.err) == (0, "retry: 120 run(s) changed, 0 skipped", ""), r
    for rider in range(120, 240):
        with pytest.raises(shop_app.CardDeclined):
            app.ride(rider)
    code, screen = on_a_terminal(argv, cli_env())
    assert code == 0, screen
    assert "retry" in screen and "120/120" in screen, screen  # the bar's M/N column
    assert "\x1b[" in screen  # drawn with terminal control sequences
    assert "━" in screen
    assert "retry: 120 run(s) changed, 0 skipped" in screen

    code, screen = on_a_terminal([ACIDIC_JOB, "list", "--state", "queued", "--limit", "3",
                                  "--database", url], cli_env())
    assert code == 0 and "KEY" in screen and "ride-239" in screen, screen
