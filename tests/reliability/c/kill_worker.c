/*
 * The C worker of the kill-anywhere harness (kill/driver.py starts and SIGKILLs it).
 *
 *   kill_worker --db URL --keys N [--mode url|borrowed] [--final]
 *               [--kill-at POINT:PERCENT]... [--recover] [--lock-ms MS] [--pace-ms MS]
 *
 * It works through the workflows "k0".."k<N-1>" (job "KillFlow", steps s1 s2 s3) in a
 * random order, skipping the ones another worker holds. Each step inserts one row
 * (key, step) into app_steps. Step s2 stages a job "plain" with the key as payload, or,
 * for every fourth key, awaits two children with a continuation that resumes the run.
 * Staged jobs go to an in-memory queue (lost when the process dies, as with Sidekiq's basic
 * fetch) that the worker performs after each run: "plain" and children insert a row into
 * deliveries and are acknowledged; the continuation resumes its parent.
 *
 * --mode borrowed opens the connection itself (libpq or sqlite3), lends it to the core
 * (aj_store_borrow_*) and runs every transaction on it as an application does; it resets
 * a lost PostgreSQL connection before its next transaction, as a connection pool would.
 * --final keeps going (drain, perform, rerun) until every run has finished, then exits 0.
 * --kill-at POINT:PERCENT kills the process with SIGKILL at a chosen point with that
 * probability: step (inside a step, after its write), push (after a commit, before the job
 * is queued), child (inside an awaited child, after its write, before its ack); acquire and
 * recovery need the next core's events (aj_store_set_events) and are refused for now.
 * --recover calls aj_store_recover before each pass: unavailable until the core has it.
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

/* The worker's own failures before the core is involved: a message for OPENFAIL. */
static int aj_error_set_message(const char *message)
{
    fprintf(stderr, "%s\n", message);
    return AJ_EDATABASE;
}

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
static int kill_step, kill_push, kill_child; /* percent */

/* Tell the driver where, then die as a crash would. */
static void maybe_die(int percent, const char *point)
{
    if (percent > 0 && rand() % 100 < percent) {
        printf("SELFKILL %s\n", point);
        raise(SIGKILL);
    }
}

static int enqueue(void *ctx, const aj_staged_job *sj)
{
    (void)ctx;
    maybe_die(kill_push, "push");
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
    maybe_die(kill_step, "step");
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

/* Acquire and execute one run; returns its status, or 0 when it could not run now. */
static int run_key(const char *key)
{
    aj_run *run = NULL;
    const aj_workflow *wf = awaits_children(key) ? wf_await : wf_plain;
    int rc = borrowed ? api_borrowed_acquire(&lent, &run, wf, key, "KillFlow", NULL, 0)
                      : api_acquire(&run, store, wf, key, "KillFlow", NULL, 0);
    if (rc != AJ_OK) {
        if (rc != AJ_ELOCKED && rc != AJ_ECONFLICT)
            fprintf(stderr, "acquire %s: %s: %s\n", key, aj_code_name(rc), aj_error_last()->message);
        return 0;
    }
    if (borrowed) {
        while (aj_run_status(run) == AJ_RUN_READY &&
               (rc = api_borrowed_step(&lent, run, step, NULL)) == AJ_OK) {
        }
    } else if (aj_run_status(run) == AJ_RUN_READY) {
        rc = aj_run_execute(run, step, NULL);
    }
    if (rc != AJ_OK)
        fprintf(stderr, "execute %s: %s: %s\n", key, aj_code_name(rc), aj_error_last()->message);
    int status = aj_run_status(run);
    aj_run_free(run);
    return status;
}

static void perform_queue(void)
{
    while (nqueue > 0) {
        job j = queue[--nqueue];
        if (strcmp(j.kind, "resume") == 0) {
            int status = run_key(j.key);
            if (status != AJ_RUN_SUCCEEDED && status != AJ_RUN_FINISHED_FAILED)
                continue; /* not acknowledged: a drain hands it out again */
        } else {
            if (insert2("INSERT INTO deliveries (key, job) VALUES (?, ?)", j.key, j.kind) != AJ_OK)
                continue;
            if (strncmp(j.kind, "child", 5) == 0)
                maybe_die(kill_child, "child");
        }
        int rc = borrowed ? api_borrowed_ack(&lent, j.id) : aj_staged_ack(store, j.id, NULL);
        if (rc != AJ_OK)
            fprintf(stderr, "ack %lld: %s: %s\n", (long long)j.id, aj_code_name(rc),
                    aj_error_last()->message);
    }
}

static int all_finished(int nkeys)
{
    aj_rows *rows = NULL;
    if (aj_store_exec(store, "SELECT count(*) FROM acidic_job_keys WHERE recovery_point = 'FINISHED'",
                      NULL, 0, &rows) != AJ_OK)
        return 0;
    const aj_value *c = aj_rows_cell(rows, 0, 0);
    long long n = c->type == AJ_INT ? c->integer : atoll(c->text);
    aj_rows_free(rows);
    return n >= nkeys;
}

/* An owned store on the URL, or the worker's own connection lent to the core. */
static int open_store(const char *url, int64_t lock_ms)
{
    if (!borrowed)
        return api_open(&store, url, lock_ms, 5000);
    int rc;
    if (strncmp(url, "sqlite:", 7) == 0) {
        sqlite3 *db = NULL;
        if (sqlite3_open(url + 7, &db) != SQLITE_OK)
            return aj_error_set_message("sqlite3_open failed");
        sqlite3_busy_timeout(db, 5000);
        sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
        rc = api_borrow_sqlite(&lent, db, lock_ms);
    } else {
        PGconn *pg = PQconnectdb(url);
        if (PQstatus(pg) != CONNECTION_OK) {
            PQfinish(pg);
            return aj_error_set_message("PQconnectdb failed");
        }
        PQclear(PQexec(pg, "SET client_min_messages = warning"));
        rc = api_borrow_pg(&lent, pg, lock_ms);
    }
    if (rc == AJ_OK && (rc = api_borrowed_migrate(&lent)) != AJ_OK)
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
    int nkeys = 100, final = 0, recover = 0, pace_ms = 0;
    int64_t lock_ms = 2000;
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
            recover = 1;
        else if (!strcmp(argv[i], "--kill-at") && i + 1 < argc) {
            char point[32];
            int percent = 0;
            if (sscanf(argv[++i], "%31[^:]:%d", point, &percent) != 2)
                return 2;
            if (!strcmp(point, "step"))
                kill_step = percent;
            else if (!strcmp(point, "push"))
                kill_push = percent;
            else if (!strcmp(point, "child"))
                kill_child = percent;
            else {
                printf("UNAVAILABLE kill-at %s: needs aj_store_set_events (the next core)\n", point);
                return 3;
            }
        } else {
            fprintf(stderr, "usage: %s --db URL [--keys N] [--final] [--kill-at P:PCT]\n", argv[0]);
            return 2;
        }
    }
    if (!url)
        return 2;
    setvbuf(stdout, NULL, _IONBF, 0);
    srand((unsigned)getpid() ^ (unsigned)time(NULL));
    if (recover) {
        printf("UNAVAILABLE recover: aj_store_recover comes with the next core\n");
        return 3;
    }
    for (int attempt = 0; open_store(url, lock_ms) != AJ_OK; attempt++) {
        printf("OPENFAIL %s\n", aj_error_last()->message);
        if (attempt == 20)
            return 1;
        usleep(100000);
    }
    aj_store_set_enqueue(store, enqueue, NULL);
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
    do {
        if (final) {
            size_t delivered = 0;
            if (borrowed)
                api_borrowed_drain(&lent, 0, &delivered);
            else
                aj_store_drain(store, 0, &delivered);
            perform_queue();
        }
        shuffle(order, nkeys);
        for (int i = 0; i < nkeys; i++) {
            char key[32];
            snprintf(key, sizeof key, "k%d", order[i]);
            run_key(key);
            perform_queue();
            if (pace_ms)
                usleep((useconds_t)pace_ms * 1000);
        }
        if (final && !all_finished(nkeys))
            usleep(200000); /* locks of killed workers expire after --lock-ms */
    } while (!final || (!all_finished(nkeys) && time(NULL) < deadline)); /* else: until killed */
    if (final) {
        size_t delivered = 0;
        if (borrowed)
            api_borrowed_drain(&lent, 0, &delivered);
        else
            aj_store_drain(store, 0, &delivered);
        perform_queue();
    }
    free(order);
    aj_workflow_free(wf_plain);
    aj_workflow_free(wf_await);
    aj_store_free(store);
    printf("DONE\n");
    return 0;
}
