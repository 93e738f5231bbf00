/*
 * The acidic_job dashboard: one page over the JSON API of docs/web-api.md, served by
 * AcidicJob::Web (Rack) and acidic_job.web (WSGI) alike.
 *
 * Safety: every value from the server is inserted as text (text nodes, textContent,
 * setAttribute), never as HTML; links are built here from hash routes and ids, never
 * from stored values. Actions are POSTs carrying the CSRF token of /api/config.
 *
 * Routes (hash routes, so links can be shared and the servers route nothing):
 *   #/                      overview
 *   #/runs?state=&job=&key_prefix=&older_than=&cursor=    runs
 *   #/runs/ID               one run
 *   #/staged?cursor=        the staged backlog
 */
"use strict";

(function () {
  const STATES = ["running", "stranded", "failed", "dead", "awaiting", "queued",
                  "succeeded", "discarded"];
  const STATE_HELP = {
    running: "a worker holds its lock now",
    stranded: "locked, but the lock expired: its worker died or its queue lost the job",
    failed: "an error was recorded; a retry or recovery resumes it at its recovery point",
    dead: "failed too many times: never runs again until retried",
    awaiting: "waiting for the jobs of a step",
    queued: "waiting for its job (after a retry, reset or unlock)",
    succeeded: "finished without an error",
    discarded: "finished with an error: discarded",
  };
  const AGES = [["", "any age"], ["300", "older than 5 minutes"], ["3600", "older than 1 hour"],
                ["86400", "older than 1 day"], ["604800", "older than 7 days"]];
  const PAGE_SIZE = 50;

  let config = null;          // /api/config
  let current = null;         // the view on screen: {name, refresh(), dispose()}
  let timer = null;
  let refreshing = false;

  /* ---- DOM: text only ------------------------------------------------------------- */

  // h("a", {href: "#/runs", class: "x", onclick: fn}, "text", node, [more]) builds an
  // element. Strings become text nodes; attributes go through setAttribute.
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "checked" || k === "disabled" || k === "selected") el[k] = Boolean(v);
      else if (k === "value") el.value = String(v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
    return el;
  }

  function replace(el, ...children) {
    return append(clear(el), children);
  }

  /* ---- routes --------------------------------------------------------------------- */

  function route() {
    const raw = location.hash.replace(/^#\/?/, "");
    const q = raw.indexOf("?");
    const path = (q < 0 ? raw : raw.slice(0, q)).split("/").filter(Boolean)
      .map(decodeURIComponent);
    const params = new URLSearchParams(q < 0 ? "" : raw.slice(q + 1));
    return { path, params };
  }

  function link(path, params) {
    let href = "#/" + path.map((p) => encodeURIComponent(String(p))).join("/");
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {}))
      if (v !== null && v !== undefined && v !== "") qs.set(k, String(v));
    const s = qs.toString();
    return s ? href + "?" + s : href;
  }

  const runLink = (id) => link(["runs", id]);

  // The actions this person may take here (read-only mode or the authorization hook
  // leave out some or all; the server refuses them anyway).
  const allowed = (action) => Boolean(config && config.actions && config.actions.includes(action));

  /* ---- the API -------------------------------------------------------------------- */

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function request(method, path, body) {
    const headers = { Accept: "application/json" };
    const init = { method, headers, credentials: "same-origin", cache: "no-store" };
    if (method === "POST") {
      headers["Content-Type"] = "application/json";
      headers["X-CSRF-Token"] = config ? config.csrf_token : "";
      init.body = JSON.stringify(body || {});
    }
    let res;
    try {
      res = await fetch("api/" + path, init);
    } catch (e) {
      throw new ApiError(0, "NETWORK", "the server did not answer (" + e.message + ")");
    }
    let doc = null;
    try {
      doc = await res.json();
    } catch (e) {
      throw new ApiError(res.status, "BAD_RESPONSE", "the server answered " + res.status +
                         " without JSON");
    }
    if (!res.ok) {
      const err = (doc && doc.error) || {};
      throw new ApiError(res.status, err.code || String(res.status),
                         err.message || "request failed (" + res.status + ")");
    }
    return doc;
  }

  const get = (path, params) => {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {}))
      if (v !== null && v !== undefined && v !== "") qs.set(k, String(v));
    const s = qs.toString();
    return request("GET", s ? path + "?" + s : path);
  };
  const post = (path, body) => request("POST", path, body);

  /* ---- formatting ----------------------------------------------------------------- */

  function ago(iso) {
    if (!iso) return "—";
    const t = Date.parse(iso);
    if (isNaN(t)) return iso;
    let s = Math.round((Date.now() - t) / 1000);
    const future = s < 0;
    s = Math.abs(s);
    const text = s < 60 ? s + " s" : s < 3600 ? Math.floor(s / 60) + " min" :
      s < 86400 ? Math.floor(s / 3600) + " h" : Math.floor(s / 86400) + " d";
    return future ? "in " + text : text + " ago";
  }

  function time(iso) {
    return h("time", { datetime: iso || null, title: iso || null }, ago(iso));
  }

  function badge(state) {
    return h("span", { class: "badge state-" + (STATES.includes(state) ? state : "unknown"),
                       title: STATE_HELP[state] || null }, state || "?");
  }

  function errorText(run) {
    if (!run.error_class && !run.error_message) return "";
    if (!run.error_class) return run.error_message;
    return run.error_message ? run.error_class + ": " + run.error_message : run.error_class;
  }

  function plural(n, word) {
    return n + " " + word + (n === 1 ? "" : "s");
  }

  /* ---- notices and confirmation ----------------------------------------------------- */

  let noticeTimer = null;
  function notice(kind, text) {
    const el = document.getElementById("notice");
    el.className = "notice " + kind;
    replace(el, text);
    el.hidden = false;
    clearTimeout(noticeTimer);
    if (kind === "ok") noticeTimer = setTimeout(() => { el.hidden = true; }, 15000);
  }

  function failure(what, e) {
    notice("error", what + " failed: " + (e.code && e.code !== String(e.status) ?
      e.code + ": " : "") + e.message);
  }

  // confirm({title, message, extra: Node, force: bool}) -> Promise<{force} | null>
  function confirmAction(opts) {
    const dialog = document.getElementById("confirm");
    replace(document.getElementById("confirm-title"), opts.title);
    replace(document.getElementById("confirm-message"), opts.message);
    replace(document.getElementById("confirm-extra"), opts.extra || []);
    const force = document.getElementById("confirm-force");
    force.checked = false;
    document.getElementById("confirm-force-label").hidden = !opts.force;
    replace(document.getElementById("confirm-ok"), opts.confirm || "Confirm");
    return new Promise((resolve) => {
      dialog.addEventListener("close", function onClose() {
        dialog.removeEventListener("close", onClose);
        resolve(dialog.returnValue === "ok" ? { force: force.checked } : null);
      });
      dialog.returnValue = "";
      dialog.showModal();
    });
  }

  function dialogOpen() {
    return document.getElementById("confirm").open;
  }

  /* ---- shared pieces ---------------------------------------------------------------- */

  function runsTable(runs, opts) {
    opts = opts || {};
    const head = h("tr", null,
      opts.select ? h("th", { class: "select" }, opts.selectAll) : null,
      h("th", null, "id"), h("th", null, "key"), h("th", null, "job"),
      h("th", null, "state"), h("th", null, "recovery point"), h("th", null, "attempts"),
      h("th", null, "error"), h("th", null, "updated"));
    const rows = runs.map((r) => h("tr", { "data-run-id": r.id, class: "run-row" },
      opts.select ? h("td", { class: "select" }, opts.select(r)) : null,
      h("td", { class: "num" }, h("a", { href: runLink(r.id) }, String(r.id))),
      h("td", { class: "key" }, h("a", { href: runLink(r.id) }, r.key)),
      h("td", null, r.job_name),
      h("td", null, badge(r.state)),
      h("td", null, r.recovery_point),
      h("td", { class: "num" }, String(r.attempts)),
      h("td", { class: "error-cell" }, errorText(r)),
      h("td", null, time(r.updated_at))));
    return h("table", { class: "runs" }, h("thead", null, head), h("tbody", null, rows));
  }

  // A view re-renders only when its data changed (no flicker, selections and focus stay);
  // the relative times on screen are brought up to date on every poll anyway.
  function sameAsLast() {
    let last = null;
    return (...docs) => {
      const now = JSON.stringify(docs);
      const same = now === last;
      last = now;
      return same;
    };
  }

  function refreshTimes() {
    for (const t of document.querySelectorAll("main time[datetime]"))
      t.textContent = ago(t.getAttribute("datetime"));
  }

  function empty(text) {
    return h("p", { class: "empty" }, text);
  }

  function pre(text, cls) {
    return h("pre", { class: cls || null }, text);
  }

  /* ---- overview ----------------------------------------------------------------------- */

  function overviewView(el) {
    const cards = h("section", { class: "cards", id: "state-cards" });
    const jobs = h("section", { class: "panel", id: "jobs" });
    const outbox = h("section", { class: "panel", id: "outbox" });
    const stranded = h("section", { class: "panel", id: "stranded" });
    const failures = h("section", { class: "panel", id: "recent-failures" });
    replace(el, h("h1", null, "Overview"), cards,
            h("div", { class: "columns" }, outbox, stranded), failures, jobs);

    const unchanged = sameAsLast();
    async function refresh() {
      const [stats, strandedRuns, failed] = await Promise.all([
        get("stats"),
        get("runs", { state: "stranded", limit: 10, order: "asc" }),
        get("runs", { state: "failed,dead", limit: 10 }),
      ]);
      if (unchanged(stats, strandedRuns, failed)) return;
      const byState = Object.fromEntries(stats.states.map((s) => [s.state, s.count]));
      replace(cards,
        h("a", { class: "card total", href: link(["runs"]) },
          h("span", { class: "count" }, String(stats.total)), h("span", { class: "label" }, "runs")),
        STATES.map((s) => h("a", { class: "card state-" + s + (byState[s] ? "" : " zero"),
                                   href: link(["runs"], { state: s }), title: STATE_HELP[s],
                                   "data-state": s },
          h("span", { class: "count" }, String(byState[s] || 0)),
          h("span", { class: "label" }, s))));

      const jobNames = [...new Set(stats.jobs.map((j) => j.job_name))];
      const present = STATES.filter((s) => byState[s]);
      const cell = (job, state) => {
        const c = stats.jobs.find((j) => j.job_name === job && j.state === state);
        return h("td", { class: "num" }, c ? h("a", { href: link(["runs"], { job, state }) },
                                                 String(c.count)) : "");
      };
      replace(jobs, h("h2", null, "By job"),
        jobNames.length ? h("table", { class: "jobs" },
          h("thead", null, h("tr", null, h("th", null, "job"),
            present.map((s) => h("th", { class: "num" }, badge(s))))),
          h("tbody", null, jobNames.map((j) => h("tr", null,
            h("td", null, h("a", { href: link(["runs"], { job: j }) }, j)),
            present.map((s) => cell(j, s))))))
          : empty("No runs yet."));

      replace(outbox, h("h2", null, "Outbox"),
        h("dl", { class: "facts" },
          h("dt", null, "staged backlog"),
          h("dd", { id: "staged-backlog" }, h("a", { href: link(["staged"]) },
            plural(stats.staged_backlog, "staged job"))),
          h("dt", null, "oldest staged"),
          h("dd", null, stats.oldest_staged ? [stats.oldest_staged.job_name, " (",
            stats.oldest_staged.adapter, "), staged ", time(stats.oldest_staged.created_at)]
            : "—"),
          h("dt", null, "open batches"),
          h("dd", { id: "open-batches" }, String(stats.open_batches)),
          h("dt", null, "oldest batch"),
          h("dd", null, stats.oldest_batch ? [h("a", { href: runLink(stats.oldest_batch.run_id) },
            "run " + stats.oldest_batch.run_id), ", step ", stats.oldest_batch.step, ", ",
            plural(stats.oldest_batch.remaining, "job"), " to go"] : "—")));

      replace(stranded, h("h2", null, "Stranded runs"),
        h("p", { class: "hint" }, "Locked by a worker whose lock expired. Recovery hands " +
          "them back to their queue; unlock or retry one from its page."),
        strandedRuns.runs.length ? h("ul", { class: "run-list" }, strandedRuns.runs.map((r) =>
          h("li", { "data-run-id": r.id }, h("a", { href: runLink(r.id) }, r.key), " ",
            r.job_name, " at ", r.recovery_point, ", locked ", time(r.locked_at),
            r.locked_by ? [" by ", r.locked_by] : "")))
          : empty("None."),
        strandedRuns.next_cursor ? h("a", { href: link(["runs"], { state: "stranded" }) },
          "all stranded runs") : null);

      replace(failures, h("h2", null, "Recent failures"),
        failed.runs.length ? runsTable(failed.runs) : empty("No failed or dead runs."),
        failed.next_cursor ? h("a", { href: link(["runs"], { state: "failed,dead" }) },
          "all failures") : null);
    }
    return { name: "overview", refresh };
  }

  /* ---- runs --------------------------------------------------------------------------- */

  function runsView(el, params) {
    const filter = {
      state: params.get("state") || "",
      job: params.get("job") || "",
      key_prefix: params.get("key_prefix") || "",
      older_than: params.get("older_than") || "",
    };
    const cursor = params.get("cursor") || "";
    const limit = /^\d+$/.test(params.get("limit") || "") ? params.get("limit") : "";
    const selected = new Set();
    let shown = [];

    const chosen = new Set(filter.state.split(",").filter(Boolean));
    const stateBoxes = STATES.concat(["finished"]).map((s) => h("label", { class: "check" },
      h("input", { type: "checkbox", name: "state", value: s, checked: chosen.has(s) }), " ",
      s === "finished" ? "finished" : badge(s)));
    const jobInput = h("input", { type: "text", name: "job", value: filter.job,
                                  list: "job-names", placeholder: "any job" });
    const jobList = h("datalist", { id: "job-names" });
    const prefixInput = h("input", { type: "text", name: "key_prefix", value: filter.key_prefix,
                                     placeholder: "any key" });
    const ageSelect = h("select", { name: "older_than" }, AGES.map(([v, label]) =>
      h("option", { value: v, selected: v === filter.older_than }, label)));
    if (filter.older_than && !AGES.some(([v]) => v === filter.older_than))
      ageSelect.append(h("option", { value: filter.older_than, selected: true },
        "older than " + filter.older_than + " s"));

    const form = h("form", { class: "filters", id: "filters", onsubmit: (e) => {
      e.preventDefault();
      const states = [...form.querySelectorAll("input[name=state]:checked")].map((i) => i.value);
      location.hash = link(["runs"], { state: states.join(","), job: jobInput.value.trim(),
        key_prefix: prefixInput.value, older_than: ageSelect.value });
    } },
      h("fieldset", null, h("legend", null, "state"), stateBoxes),
      h("label", null, "job ", jobInput, jobList),
      h("label", null, "key starts with ", prefixInput),
      h("label", null, "last change ", ageSelect),
      h("button", { type: "submit", class: "primary" }, "Filter"),
      h("a", { href: link(["runs"]), class: "button" }, "Clear"));

    const summary = h("p", { class: "summary", id: "runs-summary" });
    const table = h("div", { id: "runs-table" });
    const pager = h("nav", { class: "pager", "aria-label": "Pages of runs" });
    const selectedCount = h("span", { id: "selected-count" });
    const canRetry = allowed("bulk_retry"), canDiscard = allowed("bulk_discard");
    const canAct = canRetry || canDiscard;
    const bulk = canAct ? h("div", { class: "bulk", id: "bulk" },
      selectedCount,
      canRetry ? h("button", { id: "retry-selected", onclick: () => bulkAction("retry", true) },
        "Retry selected") : null,
      canDiscard ? h("button", { id: "discard-selected", class: "danger",
                    onclick: () => bulkAction("discard", true) }, "Discard selected") : null,
      h("span", { class: "sep" }),
      canRetry ? h("button", { id: "retry-matching", onclick: () => bulkAction("retry", false) },
        "Retry every match") : null,
      canDiscard ? h("button", { id: "discard-matching", class: "danger",
                    onclick: () => bulkAction("discard", false) }, "Discard every match") : null)
      : null;
    replace(el, h("h1", null, "Runs"), form, bulk, summary, table, pager);

    function describeFilter() {
      const parts = [];
      if (filter.state) parts.push("state " + filter.state.split(",").join(" or "));
      if (filter.job) parts.push("job " + filter.job);
      if (filter.key_prefix) parts.push("key starting with \u201c" + filter.key_prefix + "\u201d");
      if (filter.older_than) parts.push("unchanged for " + filter.older_than + " s");
      return parts.length ? parts.join(", ") : "every run";
    }

    function updateSelection() {
      if (!canAct) return;
      replace(selectedCount, plural(selected.size, "run") + " selected");
      for (const b of el.querySelectorAll("#retry-selected, #discard-selected"))
        b.disabled = selected.size === 0;
    }

    async function bulkAction(action, onSelection) {
      const verb = action === "retry" ? "Retry" : "Discard";
      const what = onSelection ? plural(selected.size, "selected run") :
        "every run that matches: " + describeFilter() +
        (filter.state ? "" : " (no state chosen: failed and dead runs)");
      const warn = action === "discard" ? " Discarded runs never run again." :
        " Each resumes at its recovery point.";
      const ok = await confirmAction({ title: verb + " runs", message: verb + " " + what + "?" +
        warn, confirm: verb });
      if (!ok) return;
      const body = onSelection ? { action, ids: [...selected].map(Number) } :
        { action, filter };
      try {
        const res = await post("bulk", body);
        selected.clear();
        for (const box of table.querySelectorAll("input[type=checkbox]")) box.checked = false;
        updateSelection();
        const done = action === "retry" ? "retried" : "discarded";
        notice("ok", verb + ": " + plural(res.changed, "run") + " " + done + ", " +
          res.skipped + " skipped" + (res.errors && res.errors.length ? " (" +
          res.errors.slice(0, 3).map((e) => "run " + e.id + ": " + e.message).join("; ") +
          (res.errors.length > 3 ? "; …" : "") + ")" : "") + ".");
        await refresh();
      } catch (e) {
        failure(verb, e);
      }
    }

    const unchanged = sameAsLast();
    async function refresh() {
      const [page, stats] = await Promise.all([
        get("runs", Object.assign({ cursor, limit: limit || PAGE_SIZE }, filter)),
        get("stats"),
      ]);
      if (unchanged(page, stats)) return;
      replace(jobList, [...new Set(stats.jobs.map((j) => j.job_name))].map((j) =>
        h("option", { value: j })));
      shown = page.runs;
      for (const id of [...selected]) if (!shown.some((r) => String(r.id) === id)) selected.delete(id);
      const all = h("input", { type: "checkbox", id: "select-all", title: "select this page",
        checked: shown.length > 0 && shown.every((r) => selected.has(String(r.id))),
        onchange: (e) => {
          for (const r of shown) e.target.checked ? selected.add(String(r.id)) : selected.delete(String(r.id));
          for (const box of table.querySelectorAll("input.select-run")) box.checked = e.target.checked;
          updateSelection();
        } });
      replace(summary, page.runs.length ? "Showing " + plural(page.runs.length, "run") + " of " +
        describeFilter() + (cursor ? ", past id " + cursor : "") + ", newest first." : "");
      replace(table, page.runs.length ? runsTable(page.runs, canAct ? {
        selectAll: all,
        select: (r) => h("input", { type: "checkbox", class: "select-run", value: r.id,
          "aria-label": "select run " + r.id, checked: selected.has(String(r.id)),
          onchange: (e) => {
            e.target.checked ? selected.add(String(r.id)) : selected.delete(String(r.id));
            updateSelection();
          } }),
      } : {}) : empty("No run matches " + describeFilter() + "."));
      replace(pager,
        cursor ? h("a", { href: link(["runs"], Object.assign({ limit }, filter)), class: "button",
          id: "first-page" }, "\u2190 Newest") : null,
        page.next_cursor ? h("a", { href: link(["runs"], Object.assign({ limit }, filter,
          { cursor: page.next_cursor })), class: "button", id: "next-page" }, "Older \u2192")
          : null);
      updateSelection();
    }
    return { name: "runs", refresh };
  }

  /* ---- one run ------------------------------------------------------------------------ */

  function runView(el, id) {
    const header = h("div", { class: "run-header" });
    const actions = h("div", { class: "actions", id: "run-actions" });
    const facts = h("section", { class: "panel", id: "run-facts" });
    const timeline = h("section", { class: "panel", id: "steps" });
    const error = h("section", { class: "panel", id: "run-error" });
    const attrs = h("section", { class: "panel", id: "attributes" });
    const staged = h("section", { class: "panel", id: "run-staged" });
    const result = h("div", { class: "action-result", id: "action-result", role: "status" });
    replace(el, h("p", { class: "crumbs" }, h("a", { href: link(["runs"]) }, "Runs"), " / ",
      "run " + id), header, actions, result, h("div", { class: "columns" }, timeline, facts),
      error, attrs, staged);
    let detail = null;

    function act(action, label, describe) {
      return async () => {
        const run = detail.run;
        let extra = null, stepSelect = null;
        if (action === "reset") {
          stepSelect = h("select", { id: "reset-step" }, detail.steps.map((s) =>
            h("option", { value: s.name, selected: s.state === "current" }, s.name)));
          extra = h("label", null, "Run again from step ", stepSelect);
        }
        const ok = await confirmAction({
          title: label + " run " + run.id,
          message: describe(run),
          extra,
          force: run.state === "running" || action === "unlock",
          confirm: label,
        });
        if (!ok) return;
        const body = { force: ok.force };
        if (stepSelect) body.step = stepSelect.value;
        try {
          const res = await post("runs/" + encodeURIComponent(run.id) + "/" + action, body);
          const after = res.run;
          replace(result, h("p", { class: "ok" }, label + " done: run " + after.id + " is now ",
            badge(after.state), " at ", after.recovery_point, ".",
            res.enqueued === false ? " No resume job is recorded for it (it was not " +
              "started by a queue): it runs when the application runs it again." : ""));
          notice("ok", label + ": run " + after.id + " is now " + after.state + ".");
          await refresh();
        } catch (e) {
          replace(result, h("p", { class: "error" }, label + " refused: ", e.message));
          failure(label, e);
        }
      };
    }

    function renderActions(run) {
      if (!["retry", "reset", "unlock", "discard"].some(allowed)) {
        replace(actions, h("p", { class: "hint" }, config.read_only ?
          "Read-only: actions are off." : "You may not act on runs here."));
        return;
      }
      const finished = run.state === "succeeded" || run.state === "discarded";
      const locked = run.state === "running" || run.state === "stranded";
      replace(actions,
        allowed("retry") && h("button", { id: "action-retry", disabled: finished || run.state === "awaiting",
          title: "clear the error and the dead mark, enqueue it: it resumes at " + run.recovery_point,
          onclick: act("retry", "Retry", (r) => "Retry run " + r.id + " (" + r.key +
            ")? Its error is cleared and it resumes at step " + r.recovery_point + ".") },
          "Retry"),
        allowed("reset") && h("button", { id: "action-reset", disabled: detail.steps.length === 0,
          title: "move its recovery point to a step and run again from there",
          onclick: act("reset", "Reset", (r) => "Reset run " + r.id + " (" + r.key +
            ") to a step? The steps from there on run again, with their writes.") },
          "Reset to step\u2026"),
        allowed("unlock") && h("button", { id: "action-unlock", disabled: !locked,
          title: "release the lock of a run whose worker died",
          onclick: act("unlock", "Unlock", (r) => "Release the lock of run " + r.id +
            (r.locked_by ? " held by " + r.locked_by : "") + "? Recovery then hands it back " +
            "to its queue.") }, "Unlock"),
        allowed("discard") && h("button", { id: "action-discard", class: "danger", disabled: finished,
          title: "mark it finished and failed: it never runs again",
          onclick: act("discard", "Discard", (r) => "Discard run " + r.id + " (" + r.key +
            ")? It never runs again; its row stays.") }, "Discard"));
    }

    function renderSteps(d) {
      const batch = d.batch;
      const items = d.steps.map((s, i) => {
        const awaiting = batch && d.run.state === "awaiting" && s.name === batch.step;
        const state = awaiting ? "awaiting" : s.state;
        const label = { done: "done", pending: "pending", awaiting: "awaiting" }[state] ||
          (d.run.state === "failed" || d.run.state === "dead" ? "failed here" :
           d.run.state === "running" ? "running" : "next");
        let progress = null;
        if (awaiting) {
          const total = Math.max(s.awaits.length, batch.remaining);
          progress = h("div", { class: "batch" },
            h("progress", { max: total, value: total - batch.remaining }),
            " ", (total - batch.remaining) + " of " + plural(total, "job") + " done, ",
            batch.remaining + " to go (batch " + batch.id + ")");
        }
        return h("li", { class: "step " + state, "data-step": s.name, "data-state": state },
          h("span", { class: "marker" }, String(i + 1)),
          h("span", { class: "name" }, s.name),
          h("span", { class: "step-state" }, label),
          s.awaits.length ? h("span", { class: "awaits" }, "awaits ", s.awaits.join(", ")) : null,
          progress);
      });
      replace(timeline, h("h2", null, "Steps"),
        items.length ? h("ol", { class: "timeline" }, items) :
          empty("The run's workflow is not recorded (a row from before acidic_job 0.9): " +
                "recovery point " + d.run.recovery_point + "."));
    }

    function renderFacts(d) {
      const r = d.run;
      const row = (label, value) => [h("dt", null, label), h("dd", null, value)];
      replace(facts, h("h2", null, "Run"), h("dl", { class: "facts" },
        row("id", String(r.id)), row("key", h("code", { id: "run-key" }, r.key)),
        row("job", r.job_name), row("state", badge(r.state)),
        row("recovery point", r.recovery_point), row("attempts", String(r.attempts)),
        row("locked", r.locked_at ? [time(r.locked_at), r.locked_by ? " by " + r.locked_by : ""] : "no"),
        row("created", time(r.created_at)), row("updated", time(r.updated_at)),
        row("last run", time(r.last_run_at)),
        row("recovery looks again", r.recover_at ? time(r.recover_at) : "never"),
        r.dead_at ? row("dead since", time(r.dead_at)) : null,
        row("resumed by", d.resume ? d.resume.adapter + " " + d.resume.job_name :
          "nothing recorded (retry and reset re-enqueue it when the server knows the job)")));
    }

    function renderError(d) {
      const e = d.error;
      if (!e) {
        replace(error, h("h2", null, "Error"), empty("No error recorded."));
        return;
      }
      replace(error, h("h2", null, "Error"),
        h("p", { class: "error-class" }, e.class_name || "(no class named)",
          h("span", { class: "format" }, " " + e.format)),
        e.message ? pre(e.message, "error-message") : null,
        e.backtrace && e.backtrace.length ? [h("h3", null, "Backtrace"),
          pre(e.backtrace.join("\n"), "backtrace")] : null);
    }

    function renderDocuments(d) {
      replace(attrs, h("h2", null, "Attributes"),
        d.attributes ? [h("p", { class: "format" }, d.attributes_format), pre(d.attributes, "attributes")]
          : empty("None."),
        h("h2", null, "Arguments"),
        d.job_args ? pre(d.job_args, "job-args") : empty("None."));
      replace(staged, h("h2", null, "Staged jobs"),
        d.staged.length ? stagedTable(d.staged) : empty("None waiting."),
        d.batch ? h("p", null, "Batch " + d.batch.id + " of step " + d.batch.step + ": " +
          plural(d.batch.remaining, "job") + " not acknowledged; continuation " +
          (d.batch.continuation_job_name || "none") + ".") : null);
    }

    const unchanged = sameAsLast();
    async function refresh() {
      let fresh;
      try {
        fresh = await get("runs/" + encodeURIComponent(id));
      } catch (e) {
        if (e.status === 404) {
          replace(header, h("h1", null, "Run " + id), h("p", { class: "error" }, e.message));
          clear(actions);
          return;
        }
        throw e;
      }
      if (unchanged(fresh)) return;
      detail = fresh;
      const r = detail.run;
      replace(header, h("h1", null, "Run " + r.id + " ", badge(r.state)),
        h("p", { class: "subtitle" }, h("code", null, r.key), " \u00b7 ", r.job_name));
      renderActions(r);
      renderSteps(detail);
      renderFacts(detail);
      renderError(detail);
      renderDocuments(detail);
    }
    return { name: "run", refresh };
  }

  /* ---- staged jobs -------------------------------------------------------------------- */

  function stagedTable(list) {
    return h("table", { class: "staged" },
      h("thead", null, h("tr", null, h("th", null, "id"), h("th", null, "adapter"),
        h("th", null, "job"), h("th", null, "run"), h("th", null, "batch"),
        h("th", null, "staged"), h("th", null, "last sent"), h("th", null, "payload"))),
      h("tbody", null, list.map((s) => h("tr", { "data-staged-id": s.id },
        h("td", { class: "num" }, String(s.id)), h("td", null, s.adapter),
        h("td", null, s.job_name),
        h("td", null, s.run_id ? h("a", { href: runLink(s.run_id) }, String(s.run_id)) : "—"),
        h("td", null, s.batch_id ? String(s.batch_id) : "—"),
        h("td", null, time(s.created_at)),
        h("td", null, s.delivered_at ? time(s.delivered_at) : "never"),
        h("td", null, h("code", { class: "payload", title: s.payload }, s.payload))))));
  }

  function stagedView(el, params) {
    const cursor = params.get("cursor") || "";
    const summary = h("p", { class: "summary", id: "staged-summary" });
    const list = h("div", { id: "staged-table" });
    const pager = h("nav", { class: "pager" });
    const drain = !allowed("drain") ? null : h("button", { id: "drain", class: "primary",
      onclick: async () => {
        const ok = await confirmAction({ title: "Drain the outbox",
          message: "Hand every staged job to its queue now, also those sent recently and " +
            "not acknowledged yet (a job may then run twice: delivery is at least once)?",
          confirm: "Drain now" });
        if (!ok) return;
        try {
          const res = await post("drain", {});
          notice("ok", "Drain: " + plural(res.delivered, "staged job") + " handed to " +
            "their queues.");
          await refresh();
        } catch (e) {
          failure("Drain", e);
        }
      } }, "Drain now");
    replace(el, h("h1", null, "Staged jobs"),
      h("p", { class: "hint" }, "Jobs committed by a step and not acknowledged by their " +
        "worker yet: those waiting to be sent, those sent and not done, and awaited jobs."),
      drain, summary, list, pager);

    const unchanged = sameAsLast();
    async function refresh() {
      const [page, stats] = await Promise.all([get("staged", { cursor, limit: PAGE_SIZE }),
                                               get("stats")]);
      if (unchanged(page, stats)) return;
      replace(summary, plural(stats.staged_backlog, "staged job") + " in the backlog, " +
        plural(stats.open_batches, "open batch").replace(/batchs$/, "batches") + ".");
      replace(list, page.staged.length ? stagedTable(page.staged) : empty("The outbox is empty."));
      replace(pager,
        cursor ? h("a", { href: link(["staged"]), class: "button" }, "\u2190 Oldest") : null,
        page.next_cursor ? h("a", { href: link(["staged"], { cursor: page.next_cursor }),
          class: "button", id: "next-page" }, "Newer \u2192") : null);
    }
    return { name: "staged", refresh };
  }

  /* ---- the shell ---------------------------------------------------------------------- */

  async function refreshView() {
    if (!current || refreshing || dialogOpen()) return;
    refreshing = true;
    const view = current;
    try {
      await view.refresh();
      refreshTimes();
      if (view === current) {
        replace(document.getElementById("updated"), "updated " +
          new Date().toLocaleTimeString());
        document.body.dataset.loaded = view.name; // tests wait for this
      }
    } catch (e) {
      if (view === current) failure("Loading", e);
    } finally {
      refreshing = false;
    }
  }

  function show() {
    const { path, params } = route();
    const el = document.getElementById("view");
    delete document.body.dataset.loaded;
    let name;
    if (path.length === 0 || path[0] === "overview") { name = "overview"; current = overviewView(el); }
    else if (path[0] === "runs" && path.length === 1) { name = "runs"; current = runsView(el, params); }
    else if (path[0] === "runs" && path.length === 2 && /^\d+$/.test(path[1])) {
      name = "runs"; current = runView(el, path[1]);
    }
    else if (path[0] === "staged") { name = "staged"; current = stagedView(el, params); }
    else {
      current = null;
      replace(el, h("h1", null, "Not found"), h("p", null, "No page at ", location.hash, ". ",
        h("a", { href: "#/" }, "Overview")));
      return;
    }
    for (const a of document.querySelectorAll("nav a"))
      a.classList.toggle("active", a.dataset.route === name);
    refreshView();
  }

  function schedule() {
    clearInterval(timer);
    const live = document.getElementById("live");
    if (live.checked) timer = setInterval(() => {
      if (!document.hidden) refreshView();
    }, Math.max(1, config.poll_seconds || 5) * 1000);
  }

  async function start() {
    try {
      config = await get("config");
    } catch (e) {
      // a server restarting: say so, and try again
      replace(document.getElementById("view"), h("h1", null, "acidic_job"),
        h("p", { class: "error" }, "The dashboard's API did not answer: " + e.message +
          " (trying again in a few seconds)"));
      setTimeout(start, 3000);
      return;
    }
    document.getElementById("mode").hidden = !config.read_only;
    replace(document.getElementById("database"), config.database + " \u00b7 " + config.version);
    document.getElementById("live").addEventListener("change", schedule);
    window.addEventListener("hashchange", show);
    schedule();
    show();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
