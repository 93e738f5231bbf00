/*
 * The C worker of the kill-anywhere harness (kill/driver.py starts and SIGKILLs it).
 *
 *   kill_worker --db URL --keys N [--mode url|borrowed] [--final] [--recover]
 *               [--kill-at POINT:PERCENT]... [--lock-ms MS] [--pace-ms MS]
 *
 * It works through the workflows "k0".."k<N-1>" (job "KillFlow", steps s1 s2 s3) in a
 * random order, skipping the ones another worker holds. Each step inserts one row
 * (key, step) into app_steps. Step s2 stages a job "plain" with the key as payload, or,
 * for every fourth key, awaits two children with a continuation that resumes the run.
 * Every run records how to resume it (a "resume KEY" job), so recovery can hand it back.
 * Staged jobs go to an in-memory queue (lost when the process dies, as with Sidekiq's basic
 * fetch) that the worker performs after each run: "plain" and children insert a row into
 * deliveries and are acknowledged; "resume" runs its key again.
 *
 * --mode borrowed opens the connection itself (libpq or sqlite3) and lends it to the core
 * (aj_store_borrow_*) with an aj_host_tx hook table that begins and commits on it as an
 * application does; it resets a lost PostgreSQL connection before its next transaction, as
 * a connection pool would.
 * --recover calls aj_store_recover before each pass over the keys; "RECOVERED N D" tells
 * the driver it handed N runs back (and marked D dead).
 * --final: the rerun after the chaos. It never runs a key that has a row again by itself:
 * it recovers, drains and performs what comes back until every run has finished and every
 * staged job is acknowledged; only keys without a row (their first job was lost before
 * anything committed) are started. Then it exits 0.
 * --kill-at POINT:PERCENT kills the process with SIGKILL at a chosen point with that
 * probability: acquire (a run was just acquired, inside its first step's transaction: the
 * AJ_EVENT_ACQUIRED event), step (inside a step, after its write), push (after a commit,
 * before the job is queued), child (inside an awaited child, after its write, before its
 * ack), recovery (a sweep handed a run back: AJ_EVENT_RECOVERED).
 * --pace-ms sleeps between runs (the PostgreSQL fault suite restarts the server meanwhile).
 * Prints "READY" once the store is open and "OPENFAIL <message>" for each failed open.
 */
#include "api.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_QUEUE 4096

typedef struct job {
    int64_t id;
    char kind[16]; /* plain, child0, child1, resume */
    char key[32];
} job;

static job queue[MAX_QUEUE];
static int nqueue;
static aj_store *store;
static int borrowed;   /* --mode borrowed: the connection is the worker's, lent to the core */
static api_borrowed lent;
static aj_workflow *wf_plain, *wf_await; /* s2 stages, s2 awaits */
static int64_t lock_ms = 2000;

enum { AT_ACQUIRE, AT_STEP, AT_PUSH, AT_CHILD, AT_RECOVERY, N_POINTS };
static const char *const point_names[N_POINTS] = {"acquire", "step", "push", "child", "recovery"};
static int kill_percent[N_POINTS];

/* Tell the driver where, then die as a crash would. */
static void maybe_die(int point)
{
    if (kill_percent[point] > 0 && rand() % 100 < kill_percent[point]) {
        printf("SELFKILL %s\n", point_names[point]);
        raise(SIGKILL);
    }
}

/* The core's events: the kill points inside acquisition and recovery. */
static void on_event(void *ctx, const aj_event *ev)
{
    (void)ctx;
    if (ev->type == AJ_EVENT_ACQUIRED)
        maybe_die(AT_ACQUIRE);
    else if (ev->type == AJ_EVENT_RECOVERED)
        maybe_die(AT_RECOVERY);
}

static int enqueue(void *ctx, const aj_staged_job *sj)
{
    (void)ctx;
    maybe_die(AT_PUSH);
    if (nqueue == MAX_QUEUE)
        return 1;
    job *j = &queue[nqueue++];
    j->id = sj->id;
    /* payloads are "kind key" */
    if (sscanf(sj->payload, "%15s %31s", j->kind, j->key) != 2) {
        nqueue--;
        return 1;
    }
    return 0;
}

static int insert2(const char *sql, const char *a, const char *b)
{
    aj_value v[2] = {{.type = AJ_TEXT, .text = a, .len = strlen(a)},
                     {.type = AJ_TEXT, .text = b, .len = strlen(b)}};
    return aj_store_exec(store, sql, v, 2, NULL);
}

static int awaits_children(const char *key) { return atoi(key + 1) % 4 == 0; }

static int step(aj_run *run, const char *name, void *ctx)
{
    (void)ctx;
    const char *key = aj_run_key(run);
    if (insert2("INSERT INTO app_steps (key, step) VALUES (?, ?)", key, name) != AJ_OK)
        return 1;
    maybe_die(AT_STEP);
    if (strcmp(name, "s2") != 0)
        return 0;
    char payload[64];
    if (!awaits_children(key)) {
        int n = snprintf(payload, sizeof payload, "plain %s", key);
        return aj_run_stage(run, "harness", "plain", payload, (size_t)n, NULL) != AJ_OK;
    }
    for (int c = 0; c < 2; c++) {
        int n = snprintf(payload, sizeof payload, "child%d %s", c, key);
        if (aj_run_await(run, "harness", c ? "child1" : "child0", payload, (size_t)n, NULL))
            return 1;
    }
    int n = snprintf(payload, sizeof payload, "resume %s", key);
    return aj_run_set_continuation(run, "harness", "resume", payload, (size_t)n) != AJ_OK;
}

/* Run one key to its end (aj_run_new, aj_run_execute); returns its status, or 0 when it
 * could not run now. */
static int run_key(const char *key)
{
    aj_run *run = NULL;
    const aj_workflow *wf = awaits_children(key) ? wf_await : wf_plain;
    char resume[64];
    aj_run_params p = api_params(key, "KillFlow", NULL, 0, resume, sizeof resume);
    int rc = aj_run_new(&run, store, wf, &p);
    if (rc == AJ_OK)
        rc = aj_run_execute(run, step, NULL);
    if (rc != AJ_OK && rc != AJ_ELOCKED && rc != AJ_ECONFLICT)
        fprintf(stderr, "run %s: %s: %s\n", key, aj_code_name(rc), aj_error_last()->message);
    int status = run ? aj_run_status(run) : 0;
    aj_run_free(run);
    return rc == AJ_OK ? status : 0;
}

static void perform_queue(void)
{
    while (nqueue > 0) {
        job j = queue[--nqueue];
        if (strcmp(j.kind, "resume") == 0) {
            int status = run_key(j.key);
            if (status != AJ_RUN_SUCCEEDED && status != AJ_RUN_FINISHED_FAILED &&
                status != AJ_RUN_AWAITING)
                continue; /* not acknowledged: a drain hands it out again */
        } else {
            if (insert2("INSERT INTO deliveries (key, job) VALUES (?, ?)", j.key, j.kind) != AJ_OK)
                continue;
            if (strncmp(j.kind, "child", 5) == 0)
                maybe_die(AT_CHILD);
        }
        int rc = aj_staged_ack(store, j.id, NULL);
        if (rc != AJ_OK)
            fprintf(stderr, "ack %lld: %s: %s\n", (long long)j.id, aj_code_name(rc),
                    aj_error_last()->message);
    }
}

static long long count(const char *sql)
{
    aj_rows *rows = NULL;
    if (aj_store_exec(store, sql, NULL, 0, &rows) != AJ_OK)
        return -1;
    const aj_value *c = aj_rows_cell(rows, 0, 0);
    long long n = c->type == AJ_INT ? c->integer : atoll(c->text);
    aj_rows_free(rows);
    return n;
}

/* Every run finished and every staged job acknowledged. */
static int all_done(int nkeys)
{
    return count("SELECT count(*) FROM acidic_job_keys WHERE recovery_point = 'FINISHED'") >= nkeys &&
           count("SELECT count(*) FROM staged_acidic_jobs") == 0;
}

/* 1 when the key has a row (something of it committed). */
static int has_row(const char *key)
{
    aj_value v = {.type = AJ_TEXT, .text = key, .len = strlen(key)};
    aj_rows *rows = NULL;
    if (aj_store_exec(store, "SELECT 1 FROM acidic_job_keys WHERE idempotency_key = ?", &v, 1,
                      &rows) != AJ_OK)
        return 1; /* unknown now: leave it to the next pass */
    int n = (int)aj_rows_count(rows);
    aj_rows_free(rows);
    return n > 0;
}

static void recover(void)
{
    size_t requeued = 0, dead = 0;
    int rc = aj_store_recover(store, 0, &requeued, &dead);
    if (rc != AJ_OK && rc != AJ_ECONFLICT)
        fprintf(stderr, "recover: %s: %s\n", aj_code_name(rc), aj_error_last()->message);
    if (requeued || dead)
        printf("RECOVERED %zu %zu\n", requeued, dead);
}

static void drain(void)
{
    size_t delivered = 0;
    int rc = aj_store_drain(store, 0, &delivered);
    if (rc != AJ_OK && rc != AJ_ECONFLICT)
        fprintf(stderr, "drain: %s: %s\n", aj_code_name(rc), aj_error_last()->message);
}

/* An owned store on the URL, or the worker's own connection lent to the core. */
static int open_store(const char *url)
{
    aj_options o = api_options(lock_ms, 5000);
    o.retry_base_ms = 50;  /* failed runs (lost connections) come back soon */
    o.max_attempts = 0;    /* a run killed many times is never dead here */
    if (!borrowed)
        return aj_store_open(&store, url, &o);
    int rc;
    if (strncmp(url, "sqlite:", 7) == 0) {
        sqlite3 *db = NULL;
        if (sqlite3_open(url + 7, &db) != SQLITE_OK) {
            sqlite3_close(db);
            return aj_error_report(AJ_EDATABASE, "sqlite3_open failed");
        }
        sqlite3_busy_timeout(db, 5000);
        sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
        rc = api_borrow_sqlite(&lent, db, &o);
    } else {
        PGconn *pg = PQconnectdb(url);
        if (PQstatus(pg) != CONNECTION_OK) {
            PQfinish(pg);
            return aj_error_report(AJ_EDATABASE, "PQconnectdb failed");
        }
        PQclear(PQexec(pg, "SET client_min_messages = warning"));
        rc = api_borrow_pg(&lent, pg, &o);
    }
    if (rc == AJ_OK && (rc = aj_store_migrate(lent.store)) != AJ_OK)
        api_borrowed_free(&lent);
    store = lent.store;
    return rc;
}

static void shuffle(int *order, int n)
{
    for (int i = 0; i < n; i++)
        order[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int k = rand() % (i + 1), t = order[i];
        order[i] = order[k];
        order[k] = t;
    }
}

int main(int argc, char **argv)
{
    const char *url = NULL;
    int nkeys = 100, final = 0, recovering = 0, pace_ms = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--db") && i + 1 < argc)
            url = argv[++i];
        else if (!strcmp(argv[i], "--keys") && i + 1 < argc)
            nkeys = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--lock-ms") && i + 1 < argc)
            lock_ms = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--mode") && i + 1 < argc)
            borrowed = !strcmp(argv[++i], "borrowed");
        else if (!strcmp(argv[i], "--pace-ms") && i + 1 < argc)
            pace_ms = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--final"))
            final = 1;
        else if (!strcmp(argv[i], "--recover"))
            recovering = 1;
        else if (!strcmp(argv[i], "--kill-at") && i + 1 < argc) {
            char point[32];
            int percent = 0, known = 0;
            if (sscanf(argv[++i], "%31[^:]:%d", point, &percent) != 2)
                return 2;
            for (int p = 0; p < N_POINTS; p++)
                if (!strcmp(point, point_names[p])) {
                    kill_percent[p] = percent;
                    known = 1;
                }
            if (!known) {
                fprintf(stderr, "unknown kill point %s\n", point);
                return 2;
            }
        } else {
            fprintf(stderr, "usage: %s --db URL [--keys N] [--final] [--recover] "
                            "[--kill-at P:PCT]\n", argv[0]);
            return 2;
        }
    }
    if (!url)
        return 2;
    setvbuf(stdout, NULL, _IONBF, 0);
    srand((unsigned)getpid() ^ (unsigned)time(NULL));
    for (int attempt = 0; open_store(url) != AJ_OK; attempt++) {
        printf("OPENFAIL %s\n", aj_error_last()->message);
        if (attempt == 20)
            return 1;
        usleep(100000);
    }
    aj_store_set_enqueue(store, enqueue, NULL);
    aj_store_set_events(store, on_event, NULL);
    const char *await_names[2] = {"child0", "child1"};
    aj_workflow_new(&wf_plain);
    aj_workflow_new(&wf_await);
    aj_workflow_add_step(wf_plain, "s1", NULL, 0);
    aj_workflow_add_step(wf_plain, "s2", NULL, 0);
    aj_workflow_add_step(wf_plain, "s3", NULL, 0);
    aj_workflow_add_step(wf_await, "s1", NULL, 0);
    aj_workflow_add_step(wf_await, "s2", await_names, 2);
    aj_workflow_add_step(wf_await, "s3", NULL, 0);
    printf("READY\n");
    int *order = malloc(sizeof *order * (size_t)nkeys);
    time_t deadline = time(NULL) + 300;
    int done = 0;
    for (;;) {
        if (recovering || final)
            recover();
        if (final)
            drain();
        perform_queue();
        shuffle(order, nkeys);
        for (int i = 0; i < nkeys; i++) {
            char key[32];
            snprintf(key, sizeof key, "k%d", order[i]);
            if (final && has_row(key))
                continue; /* recovery's, not the rerun's */
            run_key(key);
            perform_queue();
            if (pace_ms)
                usleep((useconds_t)pace_ms * 1000);
        }
        if (!final)
            continue; /* until killed */
        if ((done = all_done(nkeys)) || time(NULL) > deadline)
            break;
        usleep(100000); /* locks of killed workers expire after --lock-ms */
    }
    free(order);
    aj_workflow_free(wf_plain);
    aj_workflow_free(wf_await);
    aj_store_free(store);
    if (borrowed) {
        if (lent.pg)
            PQfinish(lent.pg);
        if (lent.sqlite)
            sqlite3_close(lent.sqlite);
    }
    printf(done ? "DONE\n" : "GAVE UP\n");
    return done ? 0 : 1;
}
