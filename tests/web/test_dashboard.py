"""The dashboard in a real headless Chromium, against AcidicJob::Web (Rails) and
acidic_job.web (WSGI), on SQLite and PostgreSQL, over runs seeded by real workflows.

The tests of one target run in this order and build on each other: they read the seeded
runs, then act on them (reset, bulk retry, bulk discard, unlock, discard, drain), each
checking what the page shows and what the database holds afterwards.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from typing import Any, Callable, Dict, List

import pytest
from PIL import Image, ImageStat
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from conftest import ROOT, SCREENSHOTS, SEEDED, XSS_MESSAGE, XSS_NOTE, Server, api

# Screenshots the README shows (docs/images), rewritten when AJ_WEB_UPDATE_DOCS=1.
README_TARGET = "rails-postgres"


# --- helpers ----------------------------------------------------------------------------

def wait_for(fn: Callable[[], Any], timeout: float = 20, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # a page in the middle of a refresh
            last = e
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what or fn}: last {last!r}")


def open_page(browser, server: Server, route: str, view: str) -> None:
    """Load BASE/#route (a fresh page when the server changes) and wait for the view."""
    url = f"{server.base}/#{route}"
    if not browser.current_url.startswith(server.base + "/"):
        browser.get(url)
    else:
        browser.execute_script("location.hash = arguments[0]", route)
        if browser.current_url != url:
            browser.get(url)
    try:
        wait_for(lambda: browser.execute_script(
            "return document.body.dataset.loaded === arguments[0] && "
            "location.hash === arguments[1]", view, "#" + route), what=f"view {view} at {route}")
    except AssertionError as e:
        shown = browser.execute_script("return [location.href, document.body.dataset.loaded, "
                                       "document.getElementById('notice').innerText, "
                                       "document.querySelector('main').innerText.slice(0, 300)]")
        raise AssertionError(f"{e}; the page: {shown}; the server's log:\n"
                             f"{server.output()[-1500:]}") from None


def text(browser, css: str) -> str:
    """The text of the element `css` selects ("" when there is none), read at once: the
    page re-renders a view when its data changes."""
    return browser.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : ''", css)


def click(browser, css: str, label: str = "") -> None:
    """Click the element `css` selects (the one whose text is `label`, if given), looking
    it up again when a re-render replaced it."""
    def attempt() -> bool:
        for element in browser.find_elements(By.CSS_SELECTOR, css):
            if not label or element.text == label:
                element.click()
                return True
        return False
    wait_for(attempt, what=f"{css} {label}".strip())


def texts(browser, css: str) -> List[str]:
    """The text of every element `css` selects, read at one instant."""
    return browser.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map((e) => e.innerText)", css)


def run_ids(target) -> Dict[str, int]:
    return {key: rid for rid, key in target.query("SELECT id, idempotency_key FROM acidic_job_keys")}


def state_of(target, key: str) -> str:
    status, _, doc = api(target.server, f"/api/runs/{run_ids(target)[key]}")
    assert status == 200, doc
    return doc["run"]["state"]


def confirm(browser, choose: Callable[[], None] = lambda: None) -> None:
    """Answer the page's confirmation dialog with its Confirm button."""
    wait_for(lambda: browser.execute_script("return document.getElementById('confirm').open"),
             what="the confirmation dialog")
    choose()
    # forget the last notice: notice() then waits for the one this action shows
    browser.execute_script("const n = document.getElementById('notice'); n.hidden = true; "
                           "n.textContent = ''")
    browser.find_element(By.ID, "confirm-ok").click()
    wait_for(lambda: not browser.execute_script(
        "return document.getElementById('confirm').open"), what="the dialog to close")


def texts_of_states(browser) -> List[str]:
    return browser.execute_script(
        "return [...document.querySelectorAll('#steps li')].map((li) => li.dataset.state)")


def notice(browser) -> str:
    return wait_for(lambda: browser.execute_script(
        "const n = document.getElementById('notice'); return !n.hidden && n.innerText"),
        what="a notice")


def screenshot(browser, target, page: str, keys: List[str]) -> None:
    """Save build/screenshots/TARGET-PAGE.png and check it: the seeded keys are in the
    DOM at capture time, and the picture is not blank."""
    body = text(browser, "main")
    missing = [k for k in keys if k not in body]
    assert not missing, f"not on the page when captured: {missing}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{target.kind}-{target.db}-{page}.png"
    browser.save_screenshot(str(path))
    with Image.open(path) as image:
        gray = image.convert("L")
        stddev = ImageStat.Stat(gray).stddev[0]
        colors = image.convert("RGB").getcolors(maxcolors=1 << 20) or []
    assert image.size[0] >= 1000 and image.size[1] >= 700, image.size
    assert stddev > 15, f"{path} looks blank (grey level stddev {stddev:.1f})"
    assert len(colors) > 50, f"{path} has only {len(colors)} colours"
    if os.environ.get("AJ_WEB_UPDATE_DOCS") == "1" and page in ("overview", "run") and \
            f"{target.kind}-{target.db}" == README_TARGET:
        docs = ROOT / "docs" / "images"
        docs.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, docs / f"dashboard-{page}.png")


def post_from_page(browser, path: str, body: Dict[str, Any], token: Any) -> Dict[str, Any]:
    """A POST made by the page's own origin (its cookies), with the given token (None:
    no header). Returns {status, body}."""
    return browser.execute_async_script("""
        const [path, body, token, done] = arguments;
        const headers = {"Content-Type": "application/json"};
        if (token !== null) headers["X-CSRF-Token"] = token;
        fetch("api/" + path, {method: "POST", headers, body: JSON.stringify(body),
                              credentials: "same-origin"})
          .then(async (r) => done({status: r.status, body: await r.json()}))
          .catch((e) => done({status: 0, body: String(e)}));
    """, path, body, token)


# --- reading --------------------------------------------------------------------------------

def test_overview(target, browser):
    browser.delete_all_cookies()
    server = target.server
    open_page(browser, server, "/", "overview")
    # the stranded run's lock expires 2 s after its worker died; the page polls
    wait_for(lambda: text(browser, ".card.state-stranded .count") == "1", timeout=30,
             what="the stranded run")
    counts = {s: text(browser, f".card.state-{s} .count")
              for s in ("failed", "succeeded", "awaiting", "stranded", "running")}
    assert counts == {"failed": "5", "succeeded": "3", "awaiting": "1", "stranded": "1",
                      "running": "0"}
    assert text(browser, ".card.total .count") == str(len(SEEDED))
    failures = text(browser, "#recent-failures")
    for i in range(1, 6):
        assert f"ride-fail-{i}" in failures
    assert "ride-ok-1" not in failures
    assert "ride-stranded-1" in text(browser, "#stranded")
    assert text(browser, "#staged-backlog") == "2 staged jobs"  # the two awaited jobs
    assert text(browser, "#open-batches") == "1"
    jobs = text(browser, "#jobs")
    assert "RideCreate" in jobs and "FanOut" in jobs
    screenshot(browser, target, "overview", ["ride-fail-1", "ride-fail-5", "ride-stranded-1"])
    # a card links to the runs of its state
    click(browser, ".card.state-failed")
    wait_for(lambda: browser.execute_script("return document.body.dataset.loaded") == "runs")
    assert "state=failed" in browser.current_url


def test_runs_filter_and_paging(target, browser):
    server = target.server
    open_page(browser, server, "/runs", "runs")
    shown = set(texts(browser, "#runs-table td.key"))
    assert shown == set(SEEDED)
    # filter by state in the form: the route (a link to share) says it
    click(browser, "input[name=state][value=failed]")
    click(browser, "#filters button[type=submit]")
    wait_for(lambda: "state=failed" in browser.current_url and
             browser.execute_script("return document.body.dataset.loaded") == "runs")
    wait_for(lambda: set(texts(browser, "#runs-table td.key"))
             == {k for k, s in SEEDED.items() if s == "failed"}, what="the failed runs")
    # by job, through a shared link
    open_page(browser, server, "/runs?job=FanOutJob" if target.kind == "rails"
              else "/runs?job=FanOut", "runs")
    assert texts(browser, "#runs-table td.key") == \
        ["fanout-1"]
    # by age: nothing is a day old
    open_page(browser, server, "/runs?older_than=86400", "runs")
    assert "No run matches" in text(browser, "#runs-table")
    # a key prefix and several states
    open_page(browser, server, "/runs?state=stranded,awaiting&key_prefix=ride-", "runs")
    assert texts(browser, "#runs-table td.key") == \
        ["ride-stranded-1"]
    # cursor paging, 4 runs a page, newest first: every run once
    open_page(browser, server, "/runs?limit=4", "runs")
    seen: List[str] = []
    for _ in range(5):
        seen += texts(browser, "#runs-table td.key")
        if not browser.find_elements(By.ID, "next-page"):
            break
        before = browser.current_url
        click(browser, "#next-page")
        wait_for(lambda: browser.current_url != before and
                 browser.execute_script("return document.body.dataset.loaded") == "runs")
    assert sorted(seen) == sorted(SEEDED) and len(seen) == len(SEEDED)
    ids = [int(t) for t in texts(browser, "#runs-table td.num a")]
    assert ids == sorted(ids, reverse=True)


def test_run_page_shows_script_as_text(target, browser):
    """A value holding <script> (an attribute, an error message) is shown as text and
    never runs; the step timeline, the error and its backtrace are there."""
    server = target.server
    open_page(browser, server, "/runs?state=failed", "runs")
    click(browser, "#runs-table td.key a", "ride-fail-1")
    wait_for(lambda: browser.execute_script("return document.body.dataset.loaded") == "run"
             and browser.find_elements(By.CSS_SELECTOR, "#steps li"), what="the run page")
    wait_for(lambda: "ride-fail-1" in text(browser, "#run-key"))
    steps = browser.execute_script("return [...document.querySelectorAll('#steps li')]"
                                   ".map((li) => [li.dataset.step, li.dataset.state])")
    assert steps == [["create_ride", "done"], ["charge", "current"], ["send_receipt", "pending"]]
    assert "failed here" in text(browser, "#steps li[data-step=charge]")
    message = text(browser, "#run-error pre.error-message")
    assert XSS_MESSAGE in message
    if target.kind == "rails":  # Ruby records the backtrace; Python the class and message
        assert "ArgumentError" in text(browser, "#run-error .error-class")
        assert "charge" in text(browser, "#run-error pre.backtrace")  # the step's frame
    else:
        assert "builtins.ValueError" in text(browser, "#run-error .error-class")
    assert XSS_NOTE in browser.execute_script(
        "return document.querySelector('#attributes pre.attributes').textContent")
    ran = browser.execute_script(
        "return [window.__aj_xss_error, window.__aj_xss_img, window.__aj_xss_attr]")
    assert ran == [None, None, None]
    assert browser.execute_script(
        "return document.querySelectorAll('main script, main img, main b').length") == 0
    assert browser.execute_script("return document.scripts.length") == 1  # app.js only
    screenshot(browser, target, "run-escaped", ["ride-fail-1", "create_ride", "charge",
                                                "send_receipt"])
    # the run page as the README shows it: a failed run, its timeline, its error
    open_page(browser, target.server, f"/runs/{run_ids(target)['ride-fail-2']}", "run")
    wait_for(lambda: "insufficient funds 2" in text(browser, "#run-error"))
    screenshot(browser, target, "run", ["ride-fail-2", "insufficient funds 2", "create_ride",
                                        "charge", "send_receipt"])


def test_awaiting_run_shows_its_batch(target, browser):
    open_page(browser, target.server, f"/runs/{run_ids(target)['fanout-1']}", "run")
    step = browser.execute_script("""
        const li = document.querySelector("#steps li[data-step=fan_out]");
        return [li.dataset.state, li.innerText, li.querySelector("progress").max,
                document.querySelectorAll("#run-staged tr[data-staged-id]").length]""")
    assert step[0] == "awaiting"
    assert "0 of 2 jobs done, 2 to go" in step[1]
    assert step[2] == 2 and step[3] == 2
    assert "awaiting" in text(browser, ".run-header .badge")


def test_api_contract(target):
    server = target.server
    status, head, _ = api(server, "")
    assert status == 200  # BASE redirects to BASE/ (urllib follows), the page
    status, head, raw = api(server, "/")
    assert status == 200 and b'src="assets/app.js"' in raw
    assert "script-src 'self'" in head["Content-Security-Policy"]
    assert head["X-Frame-Options"] == "DENY" and head["X-Content-Type-Options"] == "nosniff"
    for bad in ("/assets/../index.html", "/assets/%2e%2e%2fREADME.md", "/assets/nope.js",
                "/api/nope", "/etc/passwd"):
        assert api(server, bad)[0] == 404, bad
    assert api(server, "/api/runs/999999")[2]["error"]["code"] == "AJ_ENOTFOUND"
    for query in ("state=bogus", "limit=0", "limit=5000", "cursor=-1", "older_than=1h",
                  "since=yesterday", "order=sideways"):
        status, _, doc = api(server, "/api/runs?" + query)
        assert status == 400 and doc["error"]["code"] == "AJ_EINVALID", (query, doc)
    status, head, doc = api(server, "/api/runs?limit=3&order=asc")
    assert status == 200 and head["Cache-Control"] == "no-store"
    keys, cursor = [r["key"] for r in doc["runs"]], doc["next_cursor"]
    while cursor:
        doc = api(server, f"/api/runs?limit=3&order=asc&cursor={cursor}")[2]
        keys += [r["key"] for r in doc["runs"]]
        cursor = doc["next_cursor"]
    assert sorted(keys) == sorted(SEEDED) and len(keys) == len(SEEDED)
    status, _, doc = api(server, "/api/staged?limit=1")
    assert status == 200 and len(doc["staged"]) == 1 and doc["next_cursor"]
    second = api(server, f"/api/staged?limit=1&cursor={doc['next_cursor']}")[2]
    assert second["staged"][0]["id"] > doc["staged"][0]["id"] and second["next_cursor"] is None
    # reads only: a GET on an action, a PUT
    assert api(server, "/api/drain")[0] == 404
    assert api(server, "/api/stats", method="PUT", body=b"{}")[0] == 405


def test_post_without_csrf_token_is_refused(target, browser):
    server = target.server
    open_page(browser, server, "/", "overview")
    key = "ride-fail-2"
    rid = run_ids(target)[key]
    before = target.query("SELECT recovery_point, error_object, updated_at FROM acidic_job_keys "
                          "WHERE id = ?", rid)
    for token in (None, "", "forged-token"):
        res = post_from_page(browser, f"runs/{rid}/retry", {}, token)
        assert res["status"] == 403 and res["body"]["error"]["code"] == "CSRF", res
    # from outside the page: no cookie, no session
    status, _, doc = api(server, f"/api/runs/{rid}/discard", "POST", b"{}",
                         {"Content-Type": "application/json", "X-CSRF-Token": "x" * 43})
    assert status == 403 and doc["error"]["code"] == "CSRF"
    # a form post (not JSON) with the right token is not accepted either
    token = browser.execute_script("return fetch('api/config').then(r => r.json())")["csrf_token"]
    res = browser.execute_async_script("""
        const [path, token, done] = arguments;
        fetch("api/" + path, {method: "POST", body: "force=true", credentials: "same-origin",
              headers: {"Content-Type": "application/x-www-form-urlencoded", "X-CSRF-Token": token}})
          .then(async (r) => done({status: r.status, body: await r.json()}));
    """, f"runs/{rid}/discard", token)
    assert res["status"] == 400, res
    after = target.query("SELECT recovery_point, error_object, updated_at FROM acidic_job_keys "
                         "WHERE id = ?", rid)
    assert after == before
    assert state_of(target, key) == "failed"


# --- acting -----------------------------------------------------------------------------------

def test_reset_to_step_reruns_by_worker(target, browser):
    key = "ride-ok-1"
    assert target.steps_run(key) == ["create_ride", "charge", "send_receipt"]
    open_page(browser, target.server, f"/runs/{run_ids(target)[key]}", "run")
    assert texts_of_states(browser) == ["done"] * 3
    click(browser, "#action-reset")
    confirm(browser, lambda: Select(browser.find_element(By.ID, "reset-step"))
            .select_by_value("charge"))
    result = wait_for(lambda: text(browser, "#action-result"), what="the action's result")
    assert "Reset done" in result and "charge" in result
    target.work()
    # the worker ran the steps from charge on (the badge alone may still be the one shown
    # before the reset) ...
    wait_for(lambda: target.steps_run(key) == ["create_ride", "charge", "send_receipt",
                                               "charge", "send_receipt"],
             timeout=30, what="the worker to run charge and send_receipt again")
    # ... and the page refreshes itself: the run finished again
    wait_for(lambda: text(browser, ".run-header .badge") == "succeeded", timeout=30,
             what="the page to show the reset run finished")
    assert texts_of_states(browser) == ["done"] * 3


def test_bulk_retry_failures(target, browser):
    target.flag.write_text("fixed")  # ride-fail-2 .. -5 now succeed; ride-fail-1 never does
    open_page(browser, target.server, "/runs?state=failed", "runs")
    wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, "input.select-run")) == 5)
    click(browser, "#select-all")
    assert text(browser, "#selected-count") == "5 runs selected"
    click(browser, "#retry-selected")
    confirm(browser)
    said = notice(browser)
    assert "5 runs retried, 0 skipped" in said, said
    target.work()
    wait_for(lambda: [state_of(target, f"ride-fail-{i}") for i in range(2, 6)]
             == ["succeeded"] * 4, timeout=40, what="the retried runs to succeed")
    assert state_of(target, "ride-fail-1") == "failed"  # retried, failed again
    for i in range(2, 6):
        assert target.steps_run(f"ride-fail-{i}") == ["create_ride", "charge", "send_receipt"]
    open_page(browser, target.server, "/runs?state=failed", "runs")
    wait_for(lambda: texts(browser, "#runs-table td.key")
             == ["ride-fail-1"], what="one failed run left")


def test_bulk_discard_every_match(target, browser):
    open_page(browser, target.server, "/runs?state=failed&key_prefix=ride-fail-1", "runs")
    click(browser, "#discard-matching")
    confirm(browser)
    said = notice(browser)
    assert "1 run discarded" in said, said
    assert state_of(target, "ride-fail-1") == "discarded"


def test_unlock_and_discard_stranded(target, browser):
    key = "ride-stranded-1"
    open_page(browser, target.server, f"/runs/{run_ids(target)[key]}", "run")
    wait_for(lambda: text(browser, ".run-header .badge") == "stranded")
    click(browser, "#action-unlock")
    confirm(browser)
    wait_for(lambda: "Unlock done" in text(browser, "#action-result"))
    wait_for(lambda: text(browser, ".run-header .badge") == "queued")
    assert target.query("SELECT locked_at FROM acidic_job_keys WHERE idempotency_key = ?",
                        key) == [(None,)]
    click(browser, "#action-discard")
    confirm(browser)
    wait_for(lambda: text(browser, ".run-header .badge") == "discarded")
    assert browser.execute_script("return document.getElementById('action-discard').disabled")


def test_drain_now(target, browser):
    open_page(browser, target.server, "/staged", "staged")
    jobs = texts(browser, "#staged-table tr[data-staged-id] td:nth-child(3)")
    assert len(jobs) >= 2 and any("child" in job.lower() for job in jobs), jobs
    click(browser, "#drain")
    confirm(browser)
    delivered = notice(browser)
    assert "handed to their queues" in delivered
    assert int(delivered.split("Drain: ")[1].split(" ")[0]) >= 2
    target.work(all_queues=True)
    # the awaited jobs ran and were acknowledged: the batch closed, the workflow resumed
    wait_for(lambda: state_of(target, "fanout-1") == "succeeded", timeout=40,
             what="the awaiting run to resume")
    assert target.steps_run("fanout-1") == ["fan_out", "fan_in"]


def test_read_only_mode(target, browser):
    """The default outside Rails without a hook: read-only, with a warning; every POST
    refused, and the page offers no action."""
    server = target.serve("default")
    browser.delete_all_cookies()
    open_page(browser, server, "/runs", "runs")
    assert browser.find_element(By.ID, "mode").is_displayed()
    assert not browser.find_elements(By.ID, "bulk")
    config = browser.execute_script("return fetch('api/config').then(r => r.json())")
    assert config["read_only"] is True and config["actions"] == []
    rid = run_ids(target)["ride-ok-2"]
    open_page(browser, server, f"/runs/{rid}", "run")
    assert not browser.find_elements(By.CSS_SELECTOR, "#run-actions button")
    assert "Read-only" in text(browser, "#run-actions")
    before = target.query("SELECT recovery_point, updated_at FROM acidic_job_keys WHERE id = ?", rid)
    for path, body in ((f"runs/{rid}/reset", {"step": "charge"}), (f"runs/{rid}/discard", {}),
                       ("bulk", {"action": "discard", "ids": [rid]}), ("drain", {})):
        res = post_from_page(browser, path, body, config["csrf_token"])
        assert res["status"] == 403 and res["body"]["error"]["code"] == "READ_ONLY", res
    assert target.query("SELECT recovery_point, updated_at FROM acidic_job_keys WHERE id = ?",
                        rid) == before
    open_page(browser, server, "/staged", "staged")
    assert not browser.find_elements(By.ID, "drain")
    server.stop()
    assert "read-only" in server.log.read_text()
