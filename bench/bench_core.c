/*
 * make bench, C part (issue 10). One program, one measure per invocation:
 *
 *   bench_core workflow URL ROUNDS RUNS   whole-workflow ratio, commits and round trips per
 *                                         workflow, step latency
 *   bench_core lock PATH ROUNDS           SQLite write lock held across a slow step
 *   bench_core workers URL SECONDS ROUNDS LEVEL...   steps/s with LEVEL worker processes
 *   bench_core awaits URL CHILDREN PARENTS WORKERS   fan-in of one batch
 *   bench_core history EMPTY-URL LOADED-URL RUNS STAGED CALLS EXPLAIN-FILE
 *                                         per-call cost with a long history vs none
 *   bench_core memory URL RUNS WARM SIDE  RSS growth over RUNS runs, the first WARM of them
 *                                         a warm-up (SIDE: acidic|plain)
 *   bench_core walcommits PATH            commit frames in PATH-wal (used by the others)
 *
 * The workload everywhere is the 3-step workflow: each step inserts one row into
 * bench_rides and sets one persisted attribute (ride_a, ride_b, ride_c: the row's id); the
 * last step stages one job. Its baseline, "the plain job", makes the same three inserts in
 * three plain transactions (BEGIN; INSERT; COMMIT) and then calls the same queue function
 * the enqueue callback calls.
 *
 * Every result is one line "ROW {json}" on stdout; bench/report.py makes the table. Ratios
 * are oriented so that 1.0 means "as good as the baseline" and lower is worse (rate over
 * rate, or baseline time over time). Progress and diagnostics go to stderr.
 */
#define _GNU_SOURCE
#include "acidic_job.h"

#include <errno.h>
#include <libpq-fe.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ======================================================================================
 * The API seam. Every call whose shape changes with the next header (/work/wt/NEXT_
 * acidic_job.h: versioned structs, aj_run_new, aj_store_recover) is in this section and
 * nowhere else. AJ_VERSION_NUMBER exists only in that header, so the switch is automatic;
 * `cc -fsyntax-only` against it checks the other branch.
 * ====================================================================================== */

#define API_MISSING 1 /* positive, so never an aj_code: the call does not exist yet */

static int api_open(aj_store **out, const char *url)
{
    aj_options opts;
#ifdef AJ_VERSION_NUMBER
    aj_options_init(&opts, AJ_OPTIONS_VERSION);
#else
    aj_options_init(&opts);
#endif
    return aj_store_open(out, url, &opts); /* SQLite: WAL, synchronous=FULL by default */
}

static void api_params(aj_run_params *p, const char *key)
{
#ifdef AJ_VERSION_NUMBER
    *p = (aj_run_params)AJ_RUN_PARAMS_INIT;
#else
    memset(p, 0, sizeof *p);
#endif
    p->key = key;
    p->job_name = "BenchJob";
    p->args = "[]";
    p->args_len = 2;
    p->attributes = "{}";
    p->attributes_len = 2;
}

/* A run ready for its first step. Today the acquisition is a transaction of its own here;
 * with aj_run_new nothing is written until the first step, which acquires. */
static int api_run_new(aj_run **out, aj_store *store, const aj_workflow *wf, const char *key)
{
    aj_run_params p;
    api_params(&p, key);
#ifdef AJ_VERSION_NUMBER
    return aj_run_new(out, store, wf, &p);
#else
    return aj_run_acquire(out, store, wf, &p);
#endif
}

/* The acquisition alone, in a transaction of its own (both APIs have it). */
static int api_acquire(aj_run **out, aj_store *store, const aj_workflow *wf, const char *key)
{
    aj_run_params p;
    api_params(&p, key);
    return aj_run_acquire(out, store, wf, &p);
}

/* 1 while the run has a step to run. */
static int api_runnable(const aj_run *run)
{
    int s = aj_run_status(run);
#ifdef AJ_VERSION_NUMBER
    if (s == AJ_RUN_NEW)
        return 1;
#endif
    return s == AJ_RUN_READY;
}

static int api_step(aj_run *run, aj_step_fn fn, void *ctx) { return aj_run_step(run, fn, ctx); }

static int api_execute(aj_run *run, aj_step_fn fn, void *ctx)
{
    return aj_run_execute(run, fn, ctx);
}

/* Recovery sweep: hand dead workers' runs back to their queue. */
static int api_recover(aj_store *store, size_t limit, size_t *requeued)
{
#ifdef AJ_VERSION_NUMBER
    size_t dead = 0;
    return aj_store_recover(store, limit, requeued, &dead);
#else
    (void)store;
    (void)limit;
    (void)requeued;
    return API_MISSING;
#endif
}
static const char *const api_recover_missing = "n/a (needs aj_store_recover)";

/* Retention: delete finished runs older than `older_than_ms`, at most `batch` of them
 * (aj_admin_prune, stopped by its progress callback after its first transaction). */
#ifdef AJ_VERSION_NUMBER
static int stop_after_one_batch(void *ctx, size_t done, size_t total)
{
    (void)ctx;
    (void)done;
    (void)total;
    return 1;
}
#endif
static int api_prune(aj_store *store, int64_t older_than_ms, size_t batch, size_t *deleted)
{
#ifdef AJ_VERSION_NUMBER
    aj_admin_filter f = AJ_ADMIN_FILTER_INIT;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    f.updated_before_us = (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000 - older_than_ms * 1000;
    f.limit = batch;
    *deleted = 0;
    return aj_admin_prune(store, &f, stop_after_one_batch, NULL, deleted);
#else
    (void)store;
    (void)older_than_ms;
    (void)batch;
    (void)deleted;
    return API_MISSING;
#endif
}
static const char *const api_prune_missing = "n/a (needs aj_admin_prune)";

/* ====================================================================================== */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void sleep_until(double t)
{
    double d = t - now_s();
    if (d > 0)
        sleep_s(d);
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench_core: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    const aj_error *e = aj_error_last();
    if (e->code)
        fprintf(stderr, " (%s: %s)", aj_code_name(e->code), e->message);
    fprintf(stderr, "\n");
    exit(1);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile of n values (sorts them in place). */
static double quantile(double *v, size_t n, double q)
{
    if (n == 0)
        return NAN;
    qsort(v, n, sizeof *v, cmp_double);
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static double median(double *v, size_t n) { return quantile(v, n, 0.5); }

/* A growable array of samples. */
typedef struct samples {
    double *v;
    size_t n, cap;
} samples;

static void samples_add(samples *s, double x)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        if (!s->v)
            die("out of memory");
    }
    s->v[s->n++] = x;
}

/* --- result rows ----------------------------------------------------------------------- */

static void json_str(const char *s)
{
    putchar('"');
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if (*s == '\n')
            printf("\\n");
        else if ((unsigned char)*s >= 0x20)
            putchar(*s);
    }
    putchar('"');
}

static void json_num(double x)
{
    if (isnan(x) || isinf(x))
        printf("null");
    else
        printf("%.6g", x);
}

typedef struct result {
    const char *measure; /* e.g. "workflow ratio" */
    const char *db;
    double figure;       /* acidic_job's figure (NAN: none) */
    double baseline;     /* the baseline's figure (NAN: none) */
    const char *unit;
    double ratio;        /* 1.0 = as good as the baseline; lower is worse (NAN: none) */
    double goal;         /* minimum ratio wanted (NAN: none) */
    double limit;        /* maximum figure wanted (NAN: none) */
    const char *note;
} result;

#define RESULT_INIT {NULL, NULL, NAN, NAN, "", NAN, NAN, NAN, NULL}

static void emit(const result *r)
{
    printf("ROW {\"measure\": ");
    json_str(r->measure);
    printf(", \"from\": \"C\", \"db\": ");
    json_str(r->db);
    printf(", \"figure\": ");
    json_num(r->figure);
    printf(", \"baseline\": ");
    json_num(r->baseline);
    printf(", \"unit\": ");
    json_str(r->unit);
    printf(", \"ratio\": ");
    json_num(r->ratio);
    printf(", \"goal\": ");
    json_num(r->goal);
    printf(", \"limit\": ");
    json_num(r->limit);
    if (r->note) {
        printf(", \"note\": ");
        json_str(r->note);
    }
    printf("}\n");
    fflush(stdout);
}

/* A rate against a baseline rate, each round's ratio in `ratios` (sorted by median()):
 * the median ratio, with the rounds' spread after `what` in the note. */
static void emit_rates(const char *measure, const char *db, double figure, double baseline,
                       double *ratios, int rounds, const char *what)
{
    result r = RESULT_INIT;
    r.measure = measure;
    r.db = db;
    r.unit = "workflows/s";
    r.ratio = median(ratios, (size_t)rounds);
    r.figure = figure;
    r.baseline = baseline;
    char note[256];
    snprintf(note, sizeof note, "%s; %.2f to %.2f", what, ratios[0], ratios[rounds - 1]);
    r.note = note;
    emit(&r);
}

/* --- the application: its table, its writes, its queue --------------------------------- */

typedef struct app {
    aj_store *store;
    sqlite3 *db;            /* the store's handle when it is SQLite */
    PGconn *pg;             /* the store's handle when it is PostgreSQL */
    sqlite3_stmt *insert, *begin, *commit;
    sqlite3_stmt *tracked[4];   /* the hand-written workflow's statements */
    int tracked_prepared[4];
    int pg_prepared;
    long seq;               /* names the rows */
    int64_t ride[3];        /* the current run's row ids: its persisted attributes */
    long queued;            /* jobs the queue function received */
    char last_payload[64];  /* a queue keeps a copy of what it was given */
    double continued_at;    /* awaits: when the continuation reached the queue */
    long continuations;
    long rss_at_warm;       /* memory: RSS after the warm-up, in kB */
} app;

static const char *db_name(const app *a) { return a->db ? "sqlite" : "postgres"; }

static int pg_ok(PGresult *r)
{
    ExecStatusType s = PQresultStatus(r);
    PQclear(r);
    return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
}

/* Application SQL outside the core (setup, bulk loads, plain transactions). */
static void app_sql(app *a, const char *sql)
{
    if (a->db) {
        char *err = NULL;
        if (sqlite3_exec(a->db, sql, NULL, NULL, &err) != SQLITE_OK)
            die("%s: %s", sql, err ? err : "?");
    } else {
        PGresult *r = PQexec(a->pg, sql);
        if (!pg_ok(r))
            die("%s: %s", sql, PQerrorMessage(a->pg));
    }
}

static long long app_count(app *a, const char *sql)
{
    long long n = -1;
    if (a->db) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(a->db, sql, -1, &st, NULL) != SQLITE_OK)
            die("%s: %s", sql, sqlite3_errmsg(a->db));
        if (sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    } else {
        PGresult *r = PQexec(a->pg, sql);
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
            n = atoll(PQgetvalue(r, 0, 0));
        PQclear(r);
    }
    if (n < 0)
        die("%s: no count", sql);
    return n;
}

static int enqueue_cb(void *ctx, const aj_staged_job *job);

static void app_open(app *a, const char *url)
{
    memset(a, 0, sizeof *a);
    if (api_open(&a->store, url))
        die("open %s", url);
    a->db = aj_store_sqlite(a->store);
    a->pg = aj_store_pg(a->store);
    aj_store_set_enqueue(a->store, enqueue_cb, a);
    app_sql(a, a->db ? "CREATE TABLE IF NOT EXISTS bench_rides"
                       " (id INTEGER PRIMARY KEY, name TEXT NOT NULL)"
                     : "CREATE TABLE IF NOT EXISTS bench_rides"
                       " (id bigserial PRIMARY KEY, name text NOT NULL)");
    app_sql(a, a->db ? "CREATE TABLE IF NOT EXISTS bench_progress (id INTEGER PRIMARY KEY"
                       " AUTOINCREMENT, key TEXT NOT NULL UNIQUE, step TEXT NOT NULL, attrs TEXT,"
                       " locked_at TEXT)"
                     : "CREATE TABLE IF NOT EXISTS bench_progress (id bigserial PRIMARY KEY,"
                       " key text NOT NULL UNIQUE, step text NOT NULL, attrs text, locked_at text)");
    app_sql(a, a->db ? "CREATE TABLE IF NOT EXISTS bench_outbox (id INTEGER PRIMARY KEY"
                       " AUTOINCREMENT, payload TEXT NOT NULL)"
                     : "CREATE TABLE IF NOT EXISTS bench_outbox (id bigserial PRIMARY KEY,"
                       " payload text NOT NULL)");
    a->seq = (long)getpid() * 1000000L;
}

static void app_close(app *a)
{
    for (int i = 0; i < 4; i++)
        sqlite3_finalize(a->tracked[i]);
    sqlite3_finalize(a->insert);
    sqlite3_finalize(a->begin);
    sqlite3_finalize(a->commit);
    aj_store_free(a->store);
    memset(a, 0, sizeof *a);
}

/* The application's write, the same in a step and in the plain job. */
static int app_insert(app *a, int64_t *id)
{
    char name[32];
    snprintf(name, sizeof name, "ride %ld", a->seq++);
    if (a->db) {
        if (!a->insert && sqlite3_prepare_v2(a->db, "INSERT INTO bench_rides (name) VALUES (?)",
                                             -1, &a->insert, NULL) != SQLITE_OK)
            return 1;
        sqlite3_bind_text(a->insert, 1, name, -1, SQLITE_TRANSIENT);
        int rc = sqlite3_step(a->insert);
        sqlite3_reset(a->insert);
        *id = sqlite3_last_insert_rowid(a->db);
        return rc == SQLITE_DONE ? 0 : 1;
    }
    if (!a->pg_prepared) {
        if (!pg_ok(PQprepare(a->pg, "bench_insert",
                             "INSERT INTO bench_rides (name) VALUES ($1) RETURNING id", 1, NULL)))
            return 1;
        a->pg_prepared = 1;
    }
    const char *vals[1] = {name};
    PGresult *r = PQexecPrepared(a->pg, "bench_insert", 1, vals, NULL, NULL, 0);
    int ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
    if (ok)
        *id = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return ok ? 0 : 1;
}

/* The queue: what a direct enqueue and the enqueue callback both call. */
static int queue_push(app *a, const char *job_name, const char *payload, size_t len)
{
    a->queued++;
    size_t n = len < sizeof a->last_payload - 1 ? len : sizeof a->last_payload - 1;
    memcpy(a->last_payload, payload, n);
    a->last_payload[n] = '\0';
    if (strcmp(job_name, "ContinueJob") == 0) {
        a->continued_at = now_s();
        a->continuations++;
    }
    return 0;
}

static int enqueue_cb(void *ctx, const aj_staged_job *job)
{
    return queue_push(ctx, job->job_name, job->payload, job->payload_len);
}

static int plain_tx(app *a, int begin)
{
    if (a->db) {
        sqlite3_stmt **st = begin ? &a->begin : &a->commit;
        if (!*st && sqlite3_prepare_v2(a->db, begin ? "BEGIN" : "COMMIT", -1, st, NULL))
            return 1;
        int rc = sqlite3_step(*st);
        sqlite3_reset(*st);
        return rc == SQLITE_DONE ? 0 : 1;
    }
    return pg_ok(PQexec(a->pg, begin ? "BEGIN" : "COMMIT")) ? 0 : 1;
}

/* One plain transaction: BEGIN; INSERT; COMMIT. */
static void plain_insert_tx(app *a, int64_t *id)
{
    if (plain_tx(a, 1) || app_insert(a, id) || plain_tx(a, 0))
        die("plain transaction failed on %s", db_name(a));
}

static int payload_of(char *buf, size_t size, int64_t ride)
{
    return snprintf(buf, size, "{\"ride\":%lld}", (long long)ride);
}

/* The plain job; `latency` (may be NULL) receives each transaction's duration. */
static void plain_job(app *a, samples *latency)
{
    for (int i = 0; i < 3; i++) {
        double t0 = now_s();
        plain_insert_tx(a, &a->ride[i]);
        if (latency)
            samples_add(latency, now_s() - t0);
    }
    char payload[48];
    int len = payload_of(payload, sizeof payload, a->ride[2]);
    queue_push(a, "NotifyJob", payload, (size_t)len);
}

/* The same workflow written by hand, as a careful application would without acidic_job:
 * each step's transaction also records the progress in a row of its own (the step to
 * resume at and the attributes, compared-and-set on the step it expects), and the last
 * one writes the job to an outbox table in the transaction, pushed after commit. No
 * lock token, recovery schedule, attempts or workflow description: the floor of what
 * the library must write. */
static const char *const tracked_sql[2][4] = {
    {"INSERT INTO bench_progress (key, step, attrs, locked_at) VALUES (?, 'b', ?, ?)",
     "UPDATE bench_progress SET step = ?, attrs = ?, locked_at = ? WHERE key = ? AND step = ?",
     "INSERT INTO bench_outbox (payload) VALUES (?)", NULL},
    {"INSERT INTO bench_progress (key, step, attrs, locked_at) VALUES ($1, 'b', $2, $3)",
     "UPDATE bench_progress SET step = $1, attrs = $2, locked_at = $3 WHERE key = $4"
     " AND step = $5",
     "INSERT INTO bench_outbox (payload) VALUES ($1)", NULL}};

static int tracked_exec(app *a, int slot, int n, const char *const *vals)
{
    if (a->db) {
        if (!a->tracked[slot] && sqlite3_prepare_v2(a->db, tracked_sql[0][slot], -1,
                                                    &a->tracked[slot], NULL) != SQLITE_OK)
            return 1;
        for (int i = 0; i < n; i++)
            sqlite3_bind_text(a->tracked[slot], i + 1, vals[i], -1, SQLITE_STATIC);
        int rc = sqlite3_step(a->tracked[slot]);
        int changed = sqlite3_changes(a->db);
        sqlite3_reset(a->tracked[slot]);
        return rc == SQLITE_DONE && changed == 1 ? 0 : 1;
    }
    char name[32];
    snprintf(name, sizeof name, "bench_tracked_%d", slot);
    if (!a->tracked_prepared[slot]) {
        if (!pg_ok(PQprepare(a->pg, name, tracked_sql[1][slot], n, NULL)))
            return 1;
        a->tracked_prepared[slot] = 1;
    }
    PGresult *r = PQexecPrepared(a->pg, name, n, vals, NULL, NULL, 0);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK && strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    return ok ? 0 : 1;
}

static void next_key(char *key, size_t size, const char *tag);

static void tracked_job(app *a)
{
    char key[96], attrs[128], now[32], payload[48];
    next_key(key, sizeof key, "tracked");
    for (int i = 0; i < 3; i++) {
        snprintf(now, sizeof now, "%.6f", now_s());
        if (plain_tx(a, 1) || app_insert(a, &a->ride[i]))
            die("hand-written step failed on %s", db_name(a));
        snprintf(attrs, sizeof attrs, "{\"ride_%c\":%lld}", 'a' + i, (long long)a->ride[i]);
        int rc;
        if (i == 0) {
            const char *v[3] = {key, attrs, now};
            rc = tracked_exec(a, 0, 3, v);
        } else {
            const char *next = i == 1 ? "c" : "FINISHED", *expect = i == 1 ? "b" : "c";
            const char *v[5] = {next, attrs, i == 1 ? now : NULL, key, expect};
            rc = tracked_exec(a, 1, 5, v);
        }
        if (!rc && i == 2) {
            payload_of(payload, sizeof payload, a->ride[2]);
            const char *v[1] = {payload};
            rc = tracked_exec(a, 2, 1, v);
        }
        if (rc || plain_tx(a, 0))
            die("hand-written step failed on %s", db_name(a));
    }
    queue_push(a, "NotifyJob", payload, strlen(payload));
}

/* The workflow's step callback: steps "a", "b", "c". */
static int workflow_step(aj_run *run, const char *step, void *ctx)
{
    app *a = ctx;
    int i = step[0] - 'a';
    if (i < 0 || i > 2 || app_insert(a, &a->ride[i]))
        return 1;
    char doc[128];
    int len = i == 0   ? snprintf(doc, sizeof doc, "{\"ride_a\":%lld}", (long long)a->ride[0])
              : i == 1 ? snprintf(doc, sizeof doc, "{\"ride_a\":%lld,\"ride_b\":%lld}",
                                  (long long)a->ride[0], (long long)a->ride[1])
                       : snprintf(doc, sizeof doc,
                                  "{\"ride_a\":%lld,\"ride_b\":%lld,\"ride_c\":%lld}",
                                  (long long)a->ride[0], (long long)a->ride[1],
                                  (long long)a->ride[2]);
    if (aj_run_set_attributes(run, doc, (size_t)len))
        return 1;
    if (i == 2) {
        char payload[48];
        int plen = payload_of(payload, sizeof payload, a->ride[2]);
        if (aj_run_stage(run, "bench", "NotifyJob", payload, (size_t)plen, NULL))
            return 1;
    }
    return 0;
}

static aj_workflow *three_steps(void)
{
    aj_workflow *wf;
    if (aj_workflow_new(&wf) || aj_workflow_add_step(wf, "a", NULL, 0) ||
        aj_workflow_add_step(wf, "b", NULL, 0) || aj_workflow_add_step(wf, "c", NULL, 0))
        die("workflow");
    return wf;
}

static void next_key(char *key, size_t size, const char *tag)
{
    static long n;
    snprintf(key, size, "%s-%ld-%ld-%lld", tag, (long)getpid(), n++,
             (long long)(now_s() * 1e6));
}

static void check_succeeded(aj_run *run)
{
    if (aj_run_status(run) != AJ_RUN_SUCCEEDED)
        die("a run ended with status %d", aj_run_status(run));
}

/* One workflow run. `latency` (may be NULL) receives each step's duration (a run's own
 * acquisition is not a step with today's API; with aj_run_new it is part of step 1). */
static void acidic_job(app *a, const aj_workflow *wf, const char *tag, samples *latency)
{
    char key[96];
    next_key(key, sizeof key, tag);
    aj_run *run;
    if (api_run_new(&run, a->store, wf, key))
        die("new run");
    if (latency) {
        while (api_runnable(run)) {
            double t0 = now_s();
            if (api_step(run, workflow_step, a))
                die("step");
            samples_add(latency, now_s() - t0);
        }
    } else if (api_execute(run, workflow_step, a)) {
        die("execute");
    }
    check_succeeded(run);
    aj_run_free(run);
}

/* One workflow run the way a queue runs a job: a run that meets a serialization failure
 * after the core's own retries (AJ_ECONFLICT) is retried under the same key, which
 * resumes it. Returns the number of such retries. */
static long acidic_job_retried(app *a, const aj_workflow *wf, const char *tag)
{
    char key[96];
    next_key(key, sizeof key, tag);
    for (long conflicts = 0;; conflicts++) {
        aj_run *run;
        int rc = api_run_new(&run, a->store, wf, key);
        if (rc == AJ_OK) {
            rc = api_execute(run, workflow_step, a);
            if (rc == AJ_OK)
                check_succeeded(run);
            aj_run_free(run);
        }
        if (rc == AJ_OK)
            return conflicts;
        if (rc != AJ_ECONFLICT)
            die("run %s", key);
    }
}

/* --- counting commits and round trips --------------------------------------------------- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Commit frames in a SQLite WAL file: frames whose "database size after commit" field is
 * set, up to the first frame with another salt (left over from before the last reset). */
static long wal_count(const char *wal_path, long *frames_out)
{
    FILE *f = fopen(wal_path, "rb");
    long frames = 0;
    if (frames_out)
        *frames_out = 0;
    if (!f)
        return 0; /* no WAL yet: no commits */
    unsigned char hdr[32], fh[24];
    long commits = 0;
    if (fread(hdr, 1, 32, f) == 32) {
        uint32_t page = be32(hdr + 8);
        if (page == 1)
            page = 65536;
        while (fread(fh, 1, 24, f) == 24) {
            if (memcmp(fh + 8, hdr + 16, 8) != 0)
                break;
            frames++;
            if (be32(fh + 4) != 0)
                commits++;
            if (fseek(f, (long)page, SEEK_CUR) != 0)
                break;
        }
    }
    fclose(f);
    if (frames_out)
        *frames_out = frames;
    return commits;
}

static long wal_commits(const char *wal_path) { return wal_count(wal_path, NULL); }

static char *wal_path_of(app *a)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s-wal", sqlite3_db_filename(a->db, "main"));
    return path;
}

/* Commits on the store's database since the last call: SQLite counts WAL commit frames
 * (the counting window starts from an empty WAL, with automatic checkpoints off so the WAL
 * is never reset inside it); PostgreSQL reads pg_stat_database.xact_commit after forcing
 * this backend's pending statistics out (each reading costs 2 commits of its own: the
 * flush request and the reading; they are subtracted). */
static void commits_window_start(app *a)
{
    if (a->db) {
        app_sql(a, "PRAGMA wal_autocheckpoint=0");
        app_sql(a, "PRAGMA wal_checkpoint(TRUNCATE)");
    }
}

static long long pg_xact_commit(app *a)
{
    app_sql(a, "SELECT pg_stat_force_next_flush()");
    return app_count(a, "SELECT xact_commit FROM pg_stat_database"
                        " WHERE datname = current_database()");
}

static long long commits_now(app *a)
{
    return a->db ? wal_commits(wal_path_of(a)) : pg_xact_commit(a);
}

/* WAL written so far: SQLite frames in the WAL file, PostgreSQL bytes of WAL. */
static long long wal_written(app *a)
{
    if (a->db) {
        long frames = 0;
        wal_count(wal_path_of(a), &frames);
        return frames;
    }
    return app_count(a, "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint");
}

static void commits_window_end(app *a)
{
    if (a->db)
        app_sql(a, "PRAGMA wal_autocheckpoint=1000");
}

typedef struct trace {
    char *buf;
    size_t len;
    FILE *f;
} trace;

static void trace_start(trace *t, PGconn *pg)
{
    t->buf = NULL;
    t->len = 0;
    t->f = open_memstream(&t->buf, &t->len);
    if (!t->f)
        die("open_memstream");
    PQtrace(pg, t->f);
    PQsetTraceFlags(pg, PQTRACE_SUPPRESS_TIMESTAMPS);
}

/* Round trips in the trace: each ends with a frontend Sync (extended protocol, pipelines
 * included) or a simple Query, as tests/c/test_round_trips.c counts them. */
static long trace_stop(trace *t, PGconn *pg)
{
    PQuntrace(pg);
    fclose(t->f);
    long trips = 0;
    for (char *save = NULL, *line = strtok_r(t->buf, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "F\t", 2) != 0)
            continue;
        const char *msg = strchr(line + 2, '\t');
        if (msg && (strncmp(msg + 1, "Sync", 4) == 0 || strncmp(msg + 1, "Query", 5) == 0))
            trips++;
    }
    free(t->buf);
    return trips;
}

/* ======================================================================================
 * workflow: the whole-workflow ratio, commits, round trips, step latency
 * ====================================================================================== */

static int measure_workflow(const char *url, int rounds, int runs)
{
    app a;
    app_open(&a, url);
    const char *db = db_name(&a);
    aj_workflow *wf = three_steps();

    /* warm both paths (prepared statements, caches, the file's pages) */
    for (int i = 0; i < runs / 4 + 5; i++) {
        plain_job(&a, NULL);
        acidic_job(&a, wf, "warm", NULL);
    }

    for (int i = 0; i < runs / 4 + 5; i++)
        tracked_job(&a);
    double *plain_rate = calloc((size_t)rounds, sizeof(double));
    double *acidic_rate = calloc((size_t)rounds, sizeof(double));
    double *tracked_rate = calloc((size_t)rounds, sizeof(double));
    double *ratio = calloc((size_t)rounds, sizeof(double));
    double *tracked_ratio = calloc((size_t)rounds, sizeof(double));
    double *floor_ratio = calloc((size_t)rounds, sizeof(double));
    samples plain_lat = {0}, step_lat = {0};
    for (int r = 0; r < rounds; r++) {
        /* rotate which side goes first, so drift hits all alike */
        for (int side = 0; side < 3; side++) {
            int which = (side + r) % 3; /* 0 plain, 1 acidic_job, 2 by hand */
            double t0 = now_s();
            for (int i = 0; i < runs; i++) {
                if (which == 1)
                    acidic_job(&a, wf, "ratio", &step_lat);
                else if (which == 0)
                    plain_job(&a, &plain_lat);
                else
                    tracked_job(&a);
            }
            double rate = runs / (now_s() - t0);
            (which == 1 ? acidic_rate : which == 0 ? plain_rate : tracked_rate)[r] = rate;
        }
        ratio[r] = acidic_rate[r] / plain_rate[r];
        tracked_ratio[r] = acidic_rate[r] / tracked_rate[r];
        floor_ratio[r] = tracked_rate[r] / plain_rate[r];
    }
    result res = RESULT_INIT;
    res.measure = "workflow ratio";
    res.db = db;
    res.unit = "workflows/s";
    res.ratio = median(ratio, (size_t)rounds);
    res.figure = median(acidic_rate, (size_t)rounds);
    res.baseline = median(plain_rate, (size_t)rounds);
    res.goal = 0.9;
    char note[160];
    snprintf(note, sizeof note, "ratio %.2f to %.2f over %d rounds of %d", ratio[0],
             ratio[rounds - 1], rounds, runs); /* ratio[] is sorted by median() */
    res.note = note;
    emit(&res);

    double hand_rate = median(tracked_rate, (size_t)rounds);
    emit_rates("workflow vs the same by hand", db, res.figure, hand_rate, tracked_ratio, rounds,
               "baseline: each step also sets a progress row, the last writes an outbox row "
               "(no lock, recovery, attempts)");
    emit_rates("the same by hand vs plain", db, hand_rate, res.baseline, floor_ratio, rounds,
               "the ceiling of any workflow ratio: the least an implementation of the "
               "guarantee writes");

    result lat = RESULT_INIT;
    lat.db = db;
    lat.unit = "ms";
    lat.measure = "step latency p50";
    lat.figure = 1e3 * quantile(step_lat.v, step_lat.n, 0.5);
    lat.baseline = 1e3 * quantile(plain_lat.v, plain_lat.n, 0.5);
    lat.ratio = lat.baseline / lat.figure;
    lat.note = "one step vs one plain BEGIN; INSERT; COMMIT";
    emit(&lat);
    lat.measure = "step latency p99";
    lat.figure = 1e3 * quantile(step_lat.v, step_lat.n, 0.99);
    lat.baseline = 1e3 * quantile(plain_lat.v, plain_lat.n, 0.99);
    lat.ratio = lat.baseline / lat.figure;
    emit(&lat);

    /* commits per workflow, against the plain job's */
    enum { COUNTED = 100 };
    long long base_commits, wf_commits;
    commits_window_start(&a);
    long long c0 = commits_now(&a), w0 = wal_written(&a);
    for (int i = 0; i < COUNTED; i++)
        plain_job(&a, NULL);
    long long c1 = commits_now(&a), w1 = wal_written(&a);
    for (int i = 0; i < COUNTED; i++)
        acidic_job(&a, wf, "commits", NULL);
    long long c2 = commits_now(&a), w2 = wal_written(&a);
    for (int i = 0; i < COUNTED; i++)
        tracked_job(&a);
    long long w3 = wal_written(&a);
    commits_window_end(&a);
    int reading_cost = a.db ? 0 : 2;
    base_commits = c1 - c0 - reading_cost;
    wf_commits = c2 - c1 - reading_cost;
    result com = RESULT_INIT;
    com.measure = "commits per workflow";
    com.db = db;
    com.unit = "commits";
    com.figure = (double)wf_commits / COUNTED;
    com.baseline = (double)base_commits / COUNTED;
    com.ratio = com.baseline / com.figure;
    com.goal = 1.0;
    com.note = a.db ? "WAL commit frames over 100 runs; goal: commits = steps (3)"
                    : "pg_stat_database.xact_commit over 100 runs; goal: commits = steps (3)";
    emit(&com);

    /* What a commit writes: the reason a workflow costs more than its commits where a
     * commit's fsync is cheap. Not a goal: the run's row, its indexes and the staged
     * row are the library's own writes. */
    result wal = RESULT_INIT;
    wal.measure = a.db ? "WAL pages per workflow" : "WAL bytes per workflow";
    wal.db = db;
    wal.unit = a.db ? "pages" : "bytes";
    wal.figure = (double)(w2 - w1) / COUNTED;
    wal.baseline = (double)(w1 - w0) / COUNTED;
    wal.ratio = wal.baseline / wal.figure;
    wal.note = a.db ? "WAL frames over 100 runs (a frame is one page written)"
                    : "pg_current_wal_insert_lsn() over 100 runs (less this reading's own)";
    emit(&wal);
    /* ...and against the floor a hand-written workflow writes (tracked_job) */
    wal.measure = a.db ? "WAL pages vs the same by hand" : "WAL bytes vs the same by hand";
    wal.baseline = (double)(w3 - w2) / COUNTED;
    wal.ratio = wal.baseline / wal.figure;
    wal.note = "baseline: the workflow by hand (its progress row and outbox row)";
    emit(&wal);

    if (a.pg) {
        /* round trips per workflow, statements already prepared */
        trace t;
        trace_start(&t, a.pg);
        for (int i = 0; i < COUNTED; i++)
            plain_job(&a, NULL);
        long plain_trips = trace_stop(&t, a.pg);
        trace_start(&t, a.pg);
        for (int i = 0; i < COUNTED; i++)
            acidic_job(&a, wf, "trips", NULL);
        long wf_trips = trace_stop(&t, a.pg);
        result rt = RESULT_INIT;
        rt.measure = "round trips per workflow";
        rt.db = db;
        rt.unit = "round trips";
        rt.figure = (double)wf_trips / COUNTED;
        rt.baseline = (double)plain_trips / COUNTED;
        rt.ratio = rt.baseline / rt.figure;
        rt.goal = 1.0;
        rt.note = "libpq trace; baseline: 3 x BEGIN; INSERT; COMMIT";
        emit(&rt);
    }
    free(plain_rate);
    free(acidic_rate);
    free(ratio);
    free(tracked_rate);
    free(tracked_ratio);
    free(floor_ratio);
    free(plain_lat.v);
    free(step_lat.v);
    aj_workflow_free(wf);
    app_close(&a);
    return 0;
}

/* ======================================================================================
 * lock: two workflows on one SQLite file; one sleeps 1 s inside a step before writing
 * ====================================================================================== */

#define SLOW_STEP_S 1.0

typedef struct slow {
    app *a;
    int signal_fd;
} slow;

static int slow_step(aj_run *run, const char *step, void *ctx)
{
    (void)run;
    (void)step;
    slow *s = ctx;
    if (write(s->signal_fd, "S", 1) != 1)
        return 1;
    sleep_s(SLOW_STEP_S); /* e.g. a payment provider's API call */
    int64_t id;
    return app_insert(s->a, &id);
}

static int insert_step(aj_run *run, const char *step, void *ctx)
{
    (void)run;
    (void)step;
    int64_t id;
    return app_insert(ctx, &id);
}

/* The slow side, in a child process: a workflow step (acidic) or a plain transaction
 * that sleeps before its write. Writes "S" to `fd` once inside. */
static void slow_side(const char *url, int acidic, int fd)
{
    app a;
    app_open(&a, url);
    if (acidic) {
        aj_workflow *wf;
        if (aj_workflow_new(&wf) || aj_workflow_add_step(wf, "slow", NULL, 0))
            die("workflow");
        char key[96];
        next_key(key, sizeof key, "slow");
        aj_run *run;
        if (api_run_new(&run, a.store, wf, key))
            die("slow run");
        slow s = {&a, fd};
        if (api_execute(run, slow_step, &s))
            die("slow step");
        aj_run_free(run);
        aj_workflow_free(wf);
    } else {
        int64_t id;
        if (plain_tx(&a, 1) || write(fd, "S", 1) != 1)
            die("slow plain transaction");
        sleep_s(SLOW_STEP_S);
        if (app_insert(&a, &id) || plain_tx(&a, 0))
            die("slow plain transaction");
    }
    app_close(&a);
}

/* How long the fast side waits while the slow side sleeps inside its transaction. */
static double lock_wait(const char *url, app *a, const aj_workflow *wf, int acidic)
{
    aj_run *run = NULL;
    if (acidic) {
        char key[96];
        next_key(key, sizeof key, "fast");
        if (api_acquire(&run, a->store, wf, key)) /* before the slow side starts */
            die("fast run");
    }
    int fds[2];
    if (pipe(fds))
        die("pipe");
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        close(fds[0]);
        slow_side(url, acidic, fds[1]);
        _exit(0);
    }
    close(fds[1]);
    char c;
    if (read(fds[0], &c, 1) != 1)
        die("the slow side did not start");
    close(fds[0]);
    sleep_s(0.05); /* the slow side is asleep inside its transaction now */
    double t0 = now_s();
    if (acidic) {
        if (api_step(run, insert_step, a))
            die("fast step");
        check_succeeded(run);
        aj_run_free(run);
    } else {
        int64_t id;
        plain_insert_tx(a, &id);
    }
    double waited = now_s() - t0;
    int status;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("the slow side failed");
    return waited;
}

static int measure_lock(const char *path, int rounds)
{
    char url[4200];
    snprintf(url, sizeof url, "sqlite:%s", path);
    app a;
    app_open(&a, url);
    aj_workflow *wf;
    if (aj_workflow_new(&wf) || aj_workflow_add_step(wf, "fast", NULL, 0))
        die("workflow");
    double *plain = calloc((size_t)rounds, sizeof(double));
    double *acidic = calloc((size_t)rounds, sizeof(double));
    for (int r = 0; r < rounds; r++) {
        plain[r] = lock_wait(url, &a, wf, 0);
        acidic[r] = lock_wait(url, &a, wf, 1);
    }
    result res = RESULT_INIT;
    res.measure = "write lock: other's wait";
    res.db = "sqlite";
    res.unit = "ms";
    res.figure = 1e3 * median(acidic, (size_t)rounds);
    res.baseline = 1e3 * median(plain, (size_t)rounds);
    res.ratio = res.baseline / res.figure;
    res.goal = 0.5;
    res.note = "a step while another sleeps 1 s in a step before writing, vs the same"
               " with plain transactions; goal: the plain wait (within 2x)";
    emit(&res);
    free(plain);
    free(acidic);
    aj_workflow_free(wf);
    app_close(&a);
    return 0;
}

/* ======================================================================================
 * workers: N processes on distinct keys, steps/s of workflows vs the plain job
 * ====================================================================================== */

typedef struct command {
    int mode;        /* 0 stop, 1 plain, 2 acidic, 3 the workflow by hand */
    double start;    /* CLOCK_MONOTONIC is the same clock in every process */
    double deadline;
} command;

static void worker_main(const char *url, int cmd_fd, int out_fd)
{
    app a;
    app_open(&a, url);
    aj_workflow *wf = three_steps();
    plain_job(&a, NULL); /* prepare statements */
    acidic_job_retried(&a, wf, "w");
    tracked_job(&a);
    long ready = 0;
    if (write(out_fd, &ready, sizeof ready) != sizeof ready)
        _exit(1);
    command c;
    while (read(cmd_fd, &c, sizeof c) == sizeof c && c.mode != 0) {
        sleep_until(c.start);
        long counts[2] = {0, 0}; /* jobs done, serialization retries */
        while (now_s() < c.deadline) {
            if (c.mode == 1)
                plain_job(&a, NULL);
            else if (c.mode == 3)
                tracked_job(&a);
            else
                counts[1] += acidic_job_retried(&a, wf, "w");
            if (now_s() <= c.deadline)
                counts[0]++;
        }
        if (write(out_fd, counts, sizeof counts) != sizeof counts)
            _exit(1);
    }
    aj_workflow_free(wf);
    app_close(&a);
}

/* What the server's backends wait for while the workers run: samples of pg_stat_activity
 * (every 10 ms) until `deadline`, counted per wait event of the active backends. A hot
 * row or lock shows as "Lock" waits (transactionid, tuple); the WAL's flush as
 * IO:WALSync / LWLock:WALWrite; no wait is CPU. */
typedef struct waits {
    long active;                 /* active backends seen, over all samples */
    long by_event[8];            /* see wait_names */
} waits;

static const char *const wait_names[8] = {"CPU",        "Lock",      "LWLock:WALWrite",
                                          "IO:WALSync", "IO:WALWrite", "Client",
                                          "IPC",        "other"};

static void sample_waits(PGconn *pg, double deadline, waits *w)
{
    while (now_s() < deadline) {
        PGresult *r = PQexec(pg, "SELECT COALESCE(wait_event_type, ''), COALESCE(wait_event, '')"
                                 " FROM pg_stat_activity WHERE datname = current_database()"
                                 " AND state = 'active' AND pid <> pg_backend_pid()");
        if (PQresultStatus(r) == PGRES_TUPLES_OK) {
            for (int i = 0; i < PQntuples(r); i++) {
                const char *type = PQgetvalue(r, i, 0), *ev = PQgetvalue(r, i, 1);
                int k = !*type                                              ? 0
                        : !strcmp(type, "Lock")                             ? 1
                        : !strcmp(type, "LWLock") && !strcmp(ev, "WALWrite") ? 2
                        : !strcmp(type, "IO") && !strcmp(ev, "WALSync")     ? 3
                        : !strcmp(type, "IO") && !strcmp(ev, "WALWrite")    ? 4
                        : !strcmp(type, "Client")                           ? 5
                        : !strcmp(type, "IPC")                              ? 6
                                                                            : 7;
                w->by_event[k]++;
                w->active++;
            }
        }
        PQclear(r);
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* "Lock 0%, IO:WALSync 31%, CPU 52%": the largest shares of the samples. */
static void format_waits(char *out, size_t size, const waits *w)
{
    out[0] = 0;
    if (!w->active)
        return;
    int used[8] = {0};
    size_t len = 0;
    for (int shown = 0; shown < 3; shown++) {
        int best = -1;
        for (int k = 0; k < 8; k++)
            if (!used[k] && (best < 0 || w->by_event[k] > w->by_event[best]))
                best = k;
        used[best] = 1;
        len += (size_t)snprintf(out + len, size > len ? size - len : 0, "%s%s %.0f%%",
                                shown ? ", " : "", wait_names[best],
                                100.0 * (double)w->by_event[best] / (double)w->active);
    }
    if (!used[1])
        snprintf(out + len, size > len ? size - len : 0, ", Lock %.0f%%",
                 100.0 * (double)w->by_event[1] / (double)w->active);
}

static int measure_workers(const char *url, double seconds, int rounds, int nlevels,
                           char **levels)
{
    PGconn *sampler = PQconnectdb(url);
    if (PQstatus(sampler) != CONNECTION_OK)
        die("workers: %s", PQerrorMessage(sampler));
    for (int l = 0; l < nlevels; l++) {
        int n = atoi(levels[l]);
        pid_t *pids = calloc((size_t)n, sizeof(pid_t));
        int *cmd = calloc((size_t)n, sizeof(int));
        int *out = calloc((size_t)n, sizeof(int));
        fflush(NULL);
        for (int w = 0; w < n; w++) {
            int c[2], o[2];
            if (pipe(c) || pipe(o))
                die("pipe");
            pids[w] = fork();
            if (pids[w] < 0)
                die("fork");
            if (pids[w] == 0) {
                close(c[1]);
                close(o[0]);
                worker_main(url, c[0], o[1]);
                _exit(0);
            }
            close(c[0]);
            close(o[1]);
            cmd[w] = c[1];
            out[w] = o[0];
        }
        long ready;
        for (int w = 0; w < n; w++)
            if (read(out[w], &ready, sizeof ready) != sizeof ready)
                die("worker %d did not start", w);
        double *plain = calloc((size_t)rounds, sizeof(double));
        double *acidic = calloc((size_t)rounds, sizeof(double));
        double *hand = calloc((size_t)rounds, sizeof(double));
        double *ratio = calloc((size_t)rounds, sizeof(double));
        double *floor_ratio = calloc((size_t)rounds, sizeof(double));
        long conflicts = 0;
        waits wait[3];
        memset(wait, 0, sizeof wait);
        for (int r = 0; r < rounds; r++) {
            for (int side = 0; side < 3; side++) {
                int mode = 1 + (side + r) % 3; /* rotate which side goes first */
                command c = {mode, now_s() + 0.1, 0};
                c.deadline = c.start + seconds;
                for (int w = 0; w < n; w++)
                    if (write(cmd[w], &c, sizeof c) != sizeof c)
                        die("worker %d", w);
                sleep_until(c.start + 0.05 * seconds);
                sample_waits(sampler, c.deadline - 0.05 * seconds, &wait[mode - 1]);
                long total = 0, counts[2];
                for (int w = 0; w < n; w++) {
                    if (read(out[w], counts, sizeof counts) != sizeof counts)
                        die("worker %d died", w);
                    total += counts[0];
                    conflicts += counts[1];
                }
                double steps_per_s = 3.0 * (double)total / seconds;
                (mode == 2 ? acidic : mode == 3 ? hand : plain)[r] = steps_per_s;
            }
            ratio[r] = acidic[r] / plain[r];
            floor_ratio[r] = hand[r] / plain[r];
        }
        command stop = {0, 0, 0};
        for (int w = 0; w < n; w++) {
            if (write(cmd[w], &stop, sizeof stop) != sizeof stop)
                die("worker %d", w);
            close(cmd[w]);
            close(out[w]);
        }
        for (int w = 0; w < n; w++)
            waitpid(pids[w], NULL, 0);
        char measure[64];
        snprintf(measure, sizeof measure, "workers: %d", n);
        result res = RESULT_INIT;
        res.measure = measure;
        res.db = "postgres";
        res.unit = "steps/s";
        res.figure = median(acidic, (size_t)rounds);
        res.baseline = median(plain, (size_t)rounds);
        res.ratio = median(ratio, (size_t)rounds);
        res.goal = 0.9;
        char w_acidic[128], w_hand[128], w_plain[128];
        format_waits(w_acidic, sizeof w_acidic, &wait[1]);
        format_waits(w_hand, sizeof w_hand, &wait[2]);
        format_waits(w_plain, sizeof w_plain, &wait[0]);
        char note[800];
        snprintf(note, sizeof note,
                 "%d process%s on distinct keys, %d round%s of %.1f s; %ld runs retried"
                 " after AJ_ECONFLICT; the same by hand: %.2f of the plain job; the server's"
                 " active backends waited on: acidic_job %s; by hand %s; plain %s",
                 n, n == 1 ? "" : "es", rounds, rounds == 1 ? "" : "s", seconds, conflicts,
                 median(floor_ratio, (size_t)rounds), w_acidic, w_hand, w_plain);
        res.note = note;
        emit(&res);
        free(plain);
        free(acidic);
        free(hand);
        free(ratio);
        free(floor_ratio);
        free(pids);
        free(cmd);
        free(out);
    }
    PQfinish(sampler);
    return 0;
}

/* ======================================================================================
 * awaits: a parent awaiting CHILDREN jobs
 * ====================================================================================== */

typedef struct fan {
    int children;
    int64_t *ids;
} fan;

static int fan_out_step(aj_run *run, const char *step, void *ctx)
{
    fan *f = ctx;
    if (strcmp(step, "fan_out") != 0)
        return 0;
    for (int i = 0; i < f->children; i++)
        if (aj_run_await(run, "bench", "ChildJob", "{}", 2, &f->ids[i]))
            return 1;
    return aj_run_set_continuation(run, "bench", "ContinueJob", "{}", 2) ? 1 : 0;
}

/* A parent run that now awaits f->children children (their staged ids in f->ids). */
static void fan_out(app *a, fan *f)
{
    aj_workflow *wf;
    const char *child = "ChildJob";
    if (aj_workflow_new(&wf) || aj_workflow_add_step(wf, "fan_out", &child, 1) ||
        aj_workflow_add_step(wf, "after", NULL, 0))
        die("workflow");
    char key[96];
    next_key(key, sizeof key, "parent");
    aj_run *run;
    if (api_run_new(&run, a->store, wf, key) || api_execute(run, fan_out_step, f))
        die("fan out");
    if (aj_run_status(run) != AJ_RUN_AWAITING)
        die("the parent does not await (status %d)", aj_run_status(run));
    aj_run_free(run);
    aj_workflow_free(wf);
}

static void ack(app *a, int64_t id, int *completed)
{
    if (aj_staged_ack(a->store, id, completed))
        die("ack");
}

/* Plain single-row updates of distinct rows: the acknowledgement's baseline. */
static void counters_setup(app *a, int rows)
{
    app_sql(a, "DROP TABLE IF EXISTS bench_counters");
    app_sql(a, a->db ? "CREATE TABLE bench_counters (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"
                     : "CREATE TABLE bench_counters (id bigint PRIMARY KEY, n integer NOT NULL)");
    char sql[256];
    snprintf(sql, sizeof sql,
             a->db ? "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < %d)"
                     " INSERT INTO bench_counters SELECT i, 1 FROM s"
                   : "INSERT INTO bench_counters SELECT i, 1 FROM generate_series(1, %d) i",
             rows);
    app_sql(a, sql);
}

static void plain_update(app *a, int64_t row)
{
    char sql[96];
    snprintf(sql, sizeof sql, "UPDATE bench_counters SET n = n - 1 WHERE id = %lld",
             (long long)row);
    if (plain_tx(a, 1))
        die("begin");
    app_sql(a, sql);
    if (plain_tx(a, 0))
        die("commit");
}

/* WORKERS processes acknowledge the children (or update as many distinct rows) at once;
 * returns operations per second. */
static double concurrent(const char *url, const int64_t *ids, int n, int workers, int acidic,
                         long *completions)
{
    int fds[2];
    if (pipe(fds))
        die("pipe");
    int go[2];
    if (pipe(go))
        die("pipe");
    fflush(NULL);
    pid_t *pids = calloc((size_t)workers, sizeof(pid_t));
    for (int w = 0; w < workers; w++) {
        pids[w] = fork();
        if (pids[w] < 0)
            die("fork");
        if (pids[w] == 0) {
            close(fds[0]);
            close(go[1]);
            app a;
            app_open(&a, url);
            long done = 0;
            if (write(fds[1], &done, sizeof done) != sizeof done) /* ready */
                _exit(1);
            char c;
            if (read(go[0], &c, 1) != 0) /* the parent closes it: everyone starts */
                _exit(1);
            long completed_here = 0;
            for (int i = w; i < n; i += workers) {
                if (acidic) {
                    int completed = 0;
                    ack(&a, ids[i], &completed);
                    completed_here += completed;
                } else {
                    plain_update(&a, ids[i]);
                }
            }
            if (write(fds[1], &completed_here, sizeof completed_here) !=
                sizeof completed_here)
                _exit(1);
            app_close(&a);
            _exit(0);
        }
    }
    close(fds[1]);
    close(go[0]);
    long v;
    for (int w = 0; w < workers; w++)
        if (read(fds[0], &v, sizeof v) != sizeof v)
            die("a worker did not start");
    double t0 = now_s();
    close(go[1]);
    *completions = 0;
    for (int w = 0; w < workers; w++) {
        if (read(fds[0], &v, sizeof v) != sizeof v)
            die("a worker failed");
        *completions += v;
    }
    double elapsed = now_s() - t0;
    close(fds[0]);
    for (int w = 0; w < workers; w++)
        waitpid(pids[w], NULL, 0);
    free(pids);
    return n / elapsed;
}

static int measure_awaits(const char *url, int children, int parents, int workers)
{
    app a;
    app_open(&a, url);
    const char *db = db_name(&a);
    fan f = {children, calloc((size_t)children, sizeof(int64_t))};
    counters_setup(&a, children);

    /* the last acknowledgement: until the continuation reaches the queue */
    double *last = calloc((size_t)parents, sizeof(double));
    double serial_rate = 0; /* acknowledgements per second from one process */
    samples plain = {0};
    for (int p = 0; p < parents; p++) {
        fan_out(&a, &f);
        int completed = 0;
        double s0 = now_s();
        for (int i = 0; i < children - 1; i++) {
            ack(&a, f.ids[i], &completed);
            if (completed)
                die("the batch completed early");
        }
        serial_rate = (children - 1) / (now_s() - s0);
        long before = a.continuations;
        double t0 = now_s();
        ack(&a, f.ids[children - 1], &completed);
        if (!completed || a.continuations != before + 1)
            die("the last acknowledgement did not stage the continuation");
        last[p] = a.continued_at - t0;
        for (int i = 0; i < 20; i++) {
            double u0 = now_s();
            plain_update(&a, 1 + i);
            samples_add(&plain, now_s() - u0);
        }
    }
    result res = RESULT_INIT;
    char measure[64];
    snprintf(measure, sizeof measure, "awaits %d: last ack -> continuation", children);
    res.measure = measure;
    res.db = db;
    res.unit = "ms";
    res.figure = 1e3 * median(last, (size_t)parents);
    res.baseline = 1e3 * median(plain.v, plain.n);
    res.ratio = res.baseline / res.figure;
    res.note = "baseline: one plain single-row UPDATE transaction";
    emit(&res);

    if (a.pg && workers > 1) {
        /* do the children's acknowledgements serialize on the batch row? */
        double acidic_rate[2], plain_rate[2];
        int64_t *rows = calloc((size_t)children, sizeof(int64_t));
        for (int i = 0; i < children; i++)
            rows[i] = i + 1;
        for (int r = 0; r < 2; r++) {
            fan_out(&a, &f);
            long completions;
            acidic_rate[r] = concurrent(url, f.ids, children, workers, 1, &completions);
            if (completions != 1)
                die("%ld acknowledgements completed the batch (expected 1)", completions);
            plain_rate[r] = concurrent(url, rows, children, workers, 0, &completions);
        }
        result con = RESULT_INIT;
        snprintf(measure, sizeof measure, "awaits %d: concurrent acks", children);
        con.measure = measure;
        con.db = db;
        con.unit = "acks/s";
        con.figure = (acidic_rate[0] + acidic_rate[1]) / 2;
        con.baseline = (plain_rate[0] + plain_rate[1]) / 2;
        con.ratio = con.figure / con.baseline;
        char note[160];
        snprintf(note, sizeof note,
                 "%d processes acking one batch vs updating as many distinct rows"
                 " (one process alone: %.0f acks/s)", workers, serial_rate);
        con.note = note;
        emit(&con);
        free(rows);
    }
    free(plain.v);
    free(last);
    free(f.ids);
    app_close(&a);
    return 0;
}

/* ======================================================================================
 * history: per-call cost with 1 million finished runs and 100,000 staged rows
 * ====================================================================================== */

typedef struct plans {
    char **texts; /* distinct statements seen (SQLite) or plans reported (PostgreSQL) */
    size_t n, cap;
    int capturing;
} plans;

static void plans_add(plans *p, const char *text)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->texts[i], text) == 0)
            return;
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 32;
        p->texts = realloc(p->texts, p->cap * sizeof *p->texts);
    }
    p->texts[p->n++] = strdup(text);
}

/* SQLite: remember each distinct statement the core runs on the tables. */
static int sqlite_trace(unsigned type, void *ctx, void *stmt, void *x)
{
    (void)x;
    plans *p = ctx;
    if (type == SQLITE_TRACE_STMT && p->capturing) {
        const char *sql = sqlite3_sql(stmt);
        if (sql && (strstr(sql, "acidic_job") || strstr(sql, "staged_acidic_jobs")))
            plans_add(p, sql);
    }
    return 0;
}

/* PostgreSQL: auto_explain reports each plan as a notice; keep one per statement text. */
static void pg_notice(void *ctx, const char *message)
{
    plans *p = ctx;
    if (!p->capturing || !strstr(message, "Query Text:"))
        return;
    const char *q = strstr(message, "Query Text:");
    if (!strstr(q, "acidic_job") && !strstr(q, "staged_acidic_jobs"))
        return;
    /* drop the "duration: ..." prefix, which differs from call to call */
    const char *body = q;
    const char *end = strchr(q, '\n');
    char text[8192];
    size_t qlen = end ? (size_t)(end - q) : strlen(q);
    for (size_t i = 0; i < p->n; i++)
        if (strncmp(p->texts[i], body, qlen) == 0)
            return;
    snprintf(text, sizeof text, "%s", body);
    plans_add(p, text);
}

/* Per-call costs on one database, gathered over several rounds. */
typedef struct costs {
    samples acquire, step, drain, recover;
    int recover_missing;
} costs;

static void time_drain(app *a, samples *s)
{
    size_t delivered = 0;
    double t0 = now_s();
    /* the staged rows are younger than an hour: none is due, the drain finds nothing */
    if (aj_store_drain(a->store, 3600 * 1000, &delivered))
        die("drain");
    samples_add(s, now_s() - t0);
}

static void per_call(app *a, const aj_workflow *wf, int calls, costs *c)
{
    for (int i = 0; i < calls; i++) {
        char key[96];
        next_key(key, sizeof key, "hist");
        aj_run *run;
        double t0 = now_s();
        if (api_acquire(&run, a->store, wf, key))
            die("acquire");
        samples_add(&c->acquire, now_s() - t0);
        while (api_runnable(run)) {
            t0 = now_s();
            if (api_step(run, workflow_step, a))
                die("step");
            samples_add(&c->step, now_s() - t0);
        }
        check_succeeded(run);
        aj_run_free(run);
        time_drain(a, &c->drain);
        size_t requeued = 0;
        t0 = now_s();
        int rc = api_recover(a->store, 100, &requeued);
        if (rc == API_MISSING)
            c->recover_missing = 1;
        else if (rc)
            die("recover");
        else
            samples_add(&c->recover, now_s() - t0);
    }
}

static void costs_free(costs *c)
{
    free(c->acquire.v);
    free(c->step.v);
    free(c->drain.v);
    free(c->recover.v);
}

static void bulk_load(app *a, long runs, long staged)
{
    char sql[2048];
    const char *attrs = "'{\"ride_a\":1,\"ride_b\":2,\"ride_c\":3}'";
    if (a->db) {
        app_sql(a, "BEGIN");
        snprintf(sql, sizeof sql,
                 "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < %ld)"
                 " INSERT INTO acidic_job_keys (idempotency_key, job_name, job_args,"
                 " last_run_at, locked_at, recovery_point, attr_accessors, created_at,"
                 " updated_at) SELECT 'history-' || i, 'HistoryJob', '[' || i || ']', t, NULL,"
                 " 'FINISHED', %s, t, t FROM (SELECT i, strftime('%%Y-%%m-%%d %%H:%%M:%%f',"
                 " 'now', '-' || (i * 2) || ' seconds') AS t FROM s)",
                 runs, attrs);
        app_sql(a, sql);
        snprintf(sql, sizeof sql,
                 "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < %ld)"
                 " INSERT INTO staged_acidic_jobs (adapter, job_name, job_args, created_at,"
                 " updated_at) SELECT 'bench', 'NotifyJob', '{\"ride\":' || i || '}', t, t"
                 " FROM (SELECT i, strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now',"
                 " '-' || (i %% 600) || ' seconds') AS t FROM s)",
                 staged);
        app_sql(a, sql);
        app_sql(a, "COMMIT");
        /* the load's WAL goes into the database now, not during the measured calls */
        app_sql(a, "PRAGMA wal_checkpoint(TRUNCATE)");
    } else {
        snprintf(sql, sizeof sql,
                 "INSERT INTO acidic_job_keys (idempotency_key, job_name, job_args,"
                 " last_run_at, locked_at, recovery_point, attr_accessors, created_at,"
                 " updated_at) SELECT 'history-' || i, 'HistoryJob', '[' || i || ']', t, NULL,"
                 " 'FINISHED', %s, t, t FROM (SELECT i, (now() AT TIME ZONE 'UTC')"
                 " - i * interval '2 seconds' AS t FROM generate_series(1, %ld) i) s",
                 attrs, runs);
        app_sql(a, sql);
        snprintf(sql, sizeof sql,
                 "INSERT INTO staged_acidic_jobs (adapter, job_name, job_args, created_at,"
                 " updated_at) SELECT 'bench', 'NotifyJob', '{\"ride\":' || i || '}', t, t"
                 " FROM (SELECT i, (now() AT TIME ZONE 'UTC') - (i %% 600) * interval '1 second'"
                 " AS t FROM generate_series(1, %ld) i) s",
                 staged);
        app_sql(a, sql);
        /* as autovacuum would have by now; then write the load's pages out */
        app_sql(a, "VACUUM ANALYZE acidic_job_keys");
        app_sql(a, "VACUUM ANALYZE staged_acidic_jobs");
        app_sql(a, "CHECKPOINT");
    }
}

/* EXPLAIN QUERY PLAN of each statement seen, on SQLite. */
static void sqlite_plans(app *a, plans *seen, FILE *out, int *scans)
{
    for (size_t i = 0; i < seen->n; i++) {
        fprintf(out, "-- %s\n", seen->texts[i]);
        char *sql = NULL;
        if (asprintf(&sql, "EXPLAIN QUERY PLAN %s", seen->texts[i]) < 0)
            die("out of memory");
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(a->db, sql, -1, &st, NULL) == SQLITE_OK) {
            while (sqlite3_step(st) == SQLITE_ROW) {
                const char *detail = (const char *)sqlite3_column_text(st, 3);
                fprintf(out, "   %s\n", detail ? detail : "");
                /* SCAN reads a whole table or index; SEARCH looks rows up. The write-lock
                 * statement's WHERE 0 = 1 is false before any row is read: no scan. */
                if (detail && strncmp(detail, "SCAN ", 5) == 0 &&
                    !strstr(seen->texts[i], "WHERE 0 = 1") &&
                    (strstr(detail, "acidic_job") || strstr(detail, "staged_acidic_jobs")))
                    (*scans)++;
            }
            sqlite3_finalize(st);
        }
        free(sql);
        fprintf(out, "\n");
    }
}

/* A plan scans when it reads a table sequentially, or an index while its filter throws
 * away more than 1,000 rows (EXPLAIN ANALYZE's "Rows Removed by Filter"). */
static void pg_plans(plans *seen, FILE *out, int *scans)
{
    for (size_t i = 0; i < seen->n; i++) {
        const char *t = seen->texts[i];
        fprintf(out, "%s\n\n", t);
        int scan = strstr(t, "Seq Scan on acidic_job") || strstr(t, "Seq Scan on staged_acidic");
        for (const char *r = strstr(t, "Rows Removed by Filter: "); r;
             r = strstr(r + 1, "Rows Removed by Filter: "))
            if (atol(r + strlen("Rows Removed by Filter: ")) > 1000)
                scan = 1;
        *scans += scan;
    }
}

/* Per-round medians of one kind of call on both databases. */
typedef struct rounds_of {
    samples loaded, empty, ratio;
} rounds_of;

static void rounds_add(rounds_of *r, samples *loaded, samples *empty)
{
    if (loaded->n == 0 || empty->n == 0)
        return;
    double l = median(loaded->v, loaded->n), e = median(empty->v, empty->n);
    samples_add(&r->loaded, l);
    samples_add(&r->empty, e);
    samples_add(&r->ratio, e / l);
}

/* The figures are medians over rounds of each round's median, and the ratio the median
 * of the rounds' ratios, so that load drifting between rounds hits both sides alike. */
static void emit_cost(const char *what, const char *db, rounds_of *r, const char *note)
{
    char measure[64];
    snprintf(measure, sizeof measure, "history: %s", what);
    result res = RESULT_INIT;
    res.measure = measure;
    res.db = db;
    res.unit = "ms/call";
    res.figure = 1e3 * median(r->loaded.v, r->loaded.n);
    res.baseline = 1e3 * median(r->empty.v, r->empty.n);
    res.ratio = median(r->ratio.v, r->ratio.n);
    res.goal = 0.8;
    res.note = note;
    emit(&res);
    free(r->loaded.v);
    free(r->empty.v);
    free(r->ratio.v);
}

/* The same calls on a database with a long history (LOADED) and on one without (EMPTY),
 * in alternating rounds. */
static int measure_history(const char *empty_url, const char *loaded_url, long runs,
                           long staged, int calls, const char *explain_path)
{
    app empty, loaded;
    app_open(&empty, empty_url);
    app_open(&loaded, loaded_url);
    const char *db = db_name(&loaded);
    aj_workflow *wf = three_steps();
    app *both[2] = {&empty, &loaded};
    for (int i = 0; i < 2; i++) {
        app_sql(both[i], "DELETE FROM acidic_job_batches");
        app_sql(both[i], "DELETE FROM staged_acidic_jobs");
        app_sql(both[i], "DELETE FROM acidic_job_keys");
    }
    double t0 = now_s();
    bulk_load(&loaded, runs, staged);
    fprintf(stderr, "bench_core: loaded %ld runs and %ld staged rows in %.1f s\n", runs,
            staged, now_s() - t0);
    if (empty.pg)
        app_sql(&empty, "VACUUM ANALYZE acidic_job_keys");

    /* the plans of the statements the core runs, on the loaded database */
    plans seen = {0};
    if (loaded.db) {
        sqlite3_trace_v2(loaded.db, SQLITE_TRACE_STMT, sqlite_trace, &seen);
    } else {
        PQsetNoticeProcessor(loaded.pg, pg_notice, &seen);
        app_sql(&loaded, "LOAD 'auto_explain'");
        app_sql(&loaded, "SET auto_explain.log_min_duration = 0");
        app_sql(&loaded, "SET auto_explain.log_analyze = on");
        app_sql(&loaded, "SET auto_explain.log_level = notice");
    }
    costs warm[2], cost[2];
    memset(warm, 0, sizeof warm);
    memset(cost, 0, sizeof cost);
    per_call(&empty, wf, 10, &warm[0]);
    per_call(&loaded, wf, 10, &warm[1]);
    /* The first drain stamped the loaded (0.7.0-shaped, never stamped) staged rows; their
     * old index entries stay in the (delivered_at, id) index until VACUUM, and every
     * drain walks them (0.55 ms for no row on PostgreSQL). Autovacuum removes them after
     * such a bulk update; the measure is the steady state after it, as after the load. */
    if (loaded.pg)
        app_sql(&loaded, "VACUUM staged_acidic_jobs");
    seen.capturing = 1;
    per_call(&loaded, wf, 3, &warm[1]);
    seen.capturing = 0;
    if (loaded.pg)
        app_sql(&loaded, "SET auto_explain.log_min_duration = -1");

    enum { ROUNDS = 7 };
    rounds_of acquire = {{0}, {0}, {0}}, step = {{0}, {0}, {0}}, drain = {{0}, {0}, {0}},
              recover = {{0}, {0}, {0}};
    for (int r = 0; r < ROUNDS; r++) {
        for (int side = 0; side < 2; side++) {
            int i = (side + r) % 2;
            costs_free(&cost[i]);
            memset(&cost[i], 0, sizeof cost[i]);
            per_call(both[i], wf, calls / ROUNDS + 1, &cost[i]);
        }
        rounds_add(&acquire, &cost[1].acquire, &cost[0].acquire);
        rounds_add(&step, &cost[1].step, &cost[0].step);
        rounds_add(&drain, &cost[1].drain, &cost[0].drain);
        rounds_add(&recover, &cost[1].recover, &cost[0].recover);
    }

    int scans = 0;
    FILE *out = fopen(explain_path, "w");
    if (!out)
        die("cannot write %s", explain_path);
    fprintf(out, "# Plans of the core's statements on %s with %ld finished runs and %ld staged"
                 " rows (bench_core history)\n\n", db, runs, staged);
    if (loaded.db)
        sqlite_plans(&loaded, &seen, out, &scans);
    else
        pg_plans(&seen, out, &scans);
    fclose(out);

    char note[256];
    snprintf(note, sizeof note, "%ld finished runs + %ld staged rows vs empty tables", runs,
             staged);
    emit_cost("acquisition", db, &acquire, note);
    emit_cost("step", db, &step, note);
    emit_cost("drain (none due)", db, &drain, note);
    emit_cost("recovery", db, &recover, cost[1].recover_missing ? api_recover_missing : note);

    result ix = RESULT_INIT;
    ix.measure = "history: statements scanning a table";
    ix.db = db;
    ix.unit = "statements";
    ix.figure = scans;
    ix.limit = 0;
    snprintf(note, sizeof note, "of %zu statements; plans in bench/results/%s", seen.n,
             strrchr(explain_path, '/') ? strrchr(explain_path, '/') + 1 : explain_path);
    ix.note = note;
    emit(&ix);

    /* Retention: prune finished runs older than a day in batches of 1,000, timing each
     * batch, and a step on another connection while a batch runs must not wait for it. */
    size_t deleted = 0;
    int rc = api_prune(loaded.store, 24LL * 3600 * 1000, 1000, &deleted);
    result pr = RESULT_INIT;
    pr.measure = "history: prune batch of 1,000";
    pr.db = db;
    pr.unit = "ms";
    if (rc == API_MISSING) {
        pr.note = api_prune_missing;
    } else if (rc) {
        die("prune");
    } else {
        samples batch = {0};
        do {
            double b0 = now_s();
            if (api_prune(loaded.store, 24LL * 3600 * 1000, 1000, &deleted))
                die("prune");
            samples_add(&batch, now_s() - b0);
        } while (deleted > 0 && batch.n < 50);
        pr.figure = 1e3 * median(batch.v, batch.n);
        pr.baseline = 1e3 * median(cost[1].step.v, cost[1].step.n);
        pr.ratio = pr.baseline / pr.figure;
        pr.note = "median batch; baseline: one step";
        free(batch.v);
    }
    emit(&pr);

    for (int i = 0; i < 2; i++) {
        costs_free(&warm[i]);
        costs_free(&cost[i]);
    }
    for (size_t i = 0; i < seen.n; i++)
        free(seen.texts[i]);
    free(seen.texts);
    aj_workflow_free(wf);
    app_close(&empty);
    app_close(&loaded);
    return 0;
}

/* ======================================================================================
 * memory: RSS growth over RUNS workflow runs in one process
 * ====================================================================================== */

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

/* fsync does not change a process's memory, so this measure runs with synchronous=OFF on
 * SQLite to fit the bench's time. Each side (acidic or plain) runs in a process of its own;
 * bench/report.py pairs the two "MEMORY {json}" lines. */
static int measure_memory(const char *url, long runs, long warm, const char *side)
{
    app a;
    app_open(&a, url);
    if (a.db)
        app_sql(&a, "PRAGMA synchronous=OFF");
    aj_workflow *wf = three_steps();
    int acidic = strcmp(side, "acidic") == 0;
    for (long i = 0; i < runs; i++) {
        if (i == warm)
            a.rss_at_warm = rss_kb();
        if (acidic)
            acidic_job(&a, wf, "mem", NULL);
        else
            plain_job(&a, NULL);
    }
    long after = rss_kb();
    printf("MEMORY {\"from\": \"C\", \"db\": \"%s\", \"side\": \"%s\", \"growth_mb\": %.3f,"
           " \"rss_mb\": %.1f, \"runs\": %ld, \"warm\": %ld}\n",
           db_name(&a), acidic ? "acidic" : "plain", (double)(after - a.rss_at_warm) / 1024.0,
           (double)after / 1024.0, runs - warm, warm);
    aj_workflow_free(wf);
    app_close(&a);
    return 0;
}

/* ====================================================================================== */

static void usage(void)
{
    fprintf(stderr, "usage: bench_core workflow URL ROUNDS RUNS\n"
                    "       bench_core lock PATH ROUNDS\n"
                    "       bench_core workers URL SECONDS ROUNDS LEVEL...\n"
                    "       bench_core awaits URL CHILDREN PARENTS WORKERS\n"
                    "       bench_core history EMPTY-URL LOADED-URL RUNS STAGED CALLS EXPLAIN-FILE\n"
                    "       bench_core memory URL RUNS WARM acidic|plain\n"
                    "       bench_core walcommits PATH\n");
    exit(2);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc < 3)
        usage();
    const char *m = argv[1];
    if (strcmp(m, "workflow") == 0 && argc == 5)
        return measure_workflow(argv[2], atoi(argv[3]), atoi(argv[4]));
    if (strcmp(m, "lock") == 0 && argc == 4)
        return measure_lock(argv[2], atoi(argv[3]));
    if (strcmp(m, "workers") == 0 && argc >= 6)
        return measure_workers(argv[2], atof(argv[3]), atoi(argv[4]), argc - 5, argv + 5);
    if (strcmp(m, "awaits") == 0 && argc == 6)
        return measure_awaits(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]));
    if (strcmp(m, "history") == 0 && argc == 8)
        return measure_history(argv[2], argv[3], atol(argv[4]), atol(argv[5]), atoi(argv[6]),
                               argv[7]);
    if (strcmp(m, "memory") == 0 && argc == 6)
        return measure_memory(argv[2], atol(argv[3]), atol(argv[4]), argv[5]);
    if (strcmp(m, "walcommits") == 0 && argc == 3) {
        printf("%ld\n", wal_commits(argv[2]));
        return 0;
    }
    usage();
    return 2;
}
