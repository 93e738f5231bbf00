/*
 * make bench, C part: the rate of acidic_job steps against the same application write
 * in plain transactions on the same database, measured in the same run.
 *
 *   baseline   BEGIN; INSERT INTO bench_rides ...; COMMIT
 *   acidic     one workflow step whose callback makes that same INSERT on the same
 *              connection; the core adds its row lock, recovery point and COMMIT
 *
 * Steps are timed on their own; "in 10-step runs" adds each run's acquisition (one
 * transaction per run) to the same steps.
 *
 * Usage: bench_core URL [STEPS]. Prints one line per measurement and the ratio.
 */
#include "acidic_job.h"

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STEPS_PER_RUN 10

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of n values (sorts them). */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

static void die(const char *what)
{
    fprintf(stderr, "bench: %s: %s\n", what, aj_error_last()->message);
    exit(1);
}

typedef struct app {
    aj_store *store;
    sqlite3_stmt *sq_insert;
    int pg_prepared;
    long n;
} app;

/* The application's write: the same in the baseline and in a step. */
static int app_write(app *a)
{
    char name[32];
    snprintf(name, sizeof name, "ride %ld", a->n++);
    sqlite3 *db = aj_store_sqlite(a->store);
    if (db) {
        if (!a->sq_insert &&
            sqlite3_prepare_v2(db, "INSERT INTO bench_rides (name) VALUES (?)", -1,
                               &a->sq_insert, NULL) != SQLITE_OK)
            return 1;
        sqlite3_bind_text(a->sq_insert, 1, name, -1, SQLITE_TRANSIENT);
        int rc = sqlite3_step(a->sq_insert);
        sqlite3_reset(a->sq_insert);
        return rc == SQLITE_DONE ? 0 : 1;
    }
    PGconn *pg = aj_store_pg(a->store);
    if (!a->pg_prepared) {
        PGresult *r = PQprepare(pg, "bench_insert", "INSERT INTO bench_rides (name) VALUES ($1)",
                                1, NULL);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        if (!ok)
            return 1;
        a->pg_prepared = 1;
    }
    const char *vals[1] = {name};
    PGresult *r = PQexecPrepared(pg, "bench_insert", 1, vals, NULL, NULL, 0);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok ? 0 : 1;
}

static int exec_plain(app *a, const char *sql)
{
    sqlite3 *db = aj_store_sqlite(a->store);
    if (db)
        return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : 1;
    PGresult *r = PQexec(aj_store_pg(a->store), sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok ? 0 : 1;
}

static double baseline(app *a, long n)
{
    double t0 = now_s();
    for (long i = 0; i < n; i++)
        if (exec_plain(a, "BEGIN") || app_write(a) || exec_plain(a, "COMMIT")) {
            fprintf(stderr, "bench: baseline transaction failed\n");
            exit(1);
        }
    return n / (now_s() - t0);
}

static int step_cb(aj_run *run, const char *step, void *ctx)
{
    (void)run;
    (void)step;
    return app_write(ctx);
}

/* Steps only: runs of STEPS_PER_RUN steps; acquisition is timed separately. */
static double acidic(app *a, aj_workflow *wf, long n, double *run_rate, const char *tag)
{
    double in_steps = 0, in_acquire = 0;
    long runs = n / STEPS_PER_RUN;
    for (long r = 0; r < runs; r++) {
        char key[64];
        snprintf(key, sizeof key, "%s-%ld-%ld-%.0f", tag, (long)getpid(), r, now_s() * 1e6);
        aj_run_params p = {key, "BenchJob", "[]", 2, "{}", 2};
        aj_run *run;
        double t0 = now_s();
        if (aj_run_acquire(&run, a->store, wf, &p))
            die("acquire");
        double t1 = now_s();
        if (aj_run_execute(run, step_cb, a))
            die("step");
        double t2 = now_s();
        if (aj_run_status(run) != AJ_RUN_SUCCEEDED) {
            fprintf(stderr, "bench: run did not finish\n");
            exit(1);
        }
        aj_run_free(run);
        in_acquire += t1 - t0;
        in_steps += t2 - t1;
    }
    *run_rate = runs * STEPS_PER_RUN / (in_acquire + in_steps);
    return runs * STEPS_PER_RUN / in_steps;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_core URL [STEPS]\n");
        return 2;
    }
    long n = argc > 2 ? atol(argv[2]) : 3000;
    if (n < STEPS_PER_RUN)
        n = STEPS_PER_RUN;
    app a = {0};
    if (aj_store_open(&a.store, argv[1], NULL))
        die("open");
    const char *create = aj_store_sqlite(a.store)
        ? "CREATE TABLE IF NOT EXISTS bench_rides (id INTEGER PRIMARY KEY, name TEXT NOT NULL)"
        : "CREATE TABLE IF NOT EXISTS bench_rides (id bigserial PRIMARY KEY, name text NOT NULL)";
    if (aj_store_exec(a.store, create, NULL, 0, NULL))
        die("create table");
    aj_workflow *wf;
    aj_workflow_new(&wf);
    for (int i = 0; i < STEPS_PER_RUN; i++) {
        char name[16];
        snprintf(name, sizeof name, "step_%d", i);
        aj_workflow_add_step(wf, name, NULL, 0);
    }
    /* Warm up both paths, then alternate short rounds so that the load of a shared
     * machine hits both alike; report medians of the rounds. */
    double warm_runs;
    baseline(&a, n / 10);
    acidic(&a, wf, n / 10, &warm_runs, "warm");
    enum { ROUNDS = 11 };
    double base[ROUNDS], steps[ROUNDS], ratio[ROUNDS], runs[ROUNDS], run_ratio[ROUNDS];
    long per_round = n / ROUNDS < STEPS_PER_RUN ? STEPS_PER_RUN : n / ROUNDS;
    for (int r = 0; r < ROUNDS; r++) {
        char tag[16];
        snprintf(tag, sizeof tag, "r%d", r);
        base[r] = baseline(&a, per_round);
        steps[r] = acidic(&a, wf, per_round, &runs[r], tag);
        ratio[r] = steps[r] / base[r];
        run_ratio[r] = runs[r] / base[r];
    }
    const char *db = aj_store_driver(a.store);
    printf("%-8s C       plain transactions  %9.0f /s\n", db, median(base, ROUNDS));
    printf("%-8s C       acidic_job steps    %9.0f /s\n", db, median(steps, ROUNDS));
    printf("%-8s C       in 10-step runs     %9.0f steps/s (acquisition included)\n", db,
           median(runs, ROUNDS));
    printf("RATIO c %s %.3f\n", db, median(ratio, ROUNDS));
    printf("RATIO c-runs %s %.3f\n", db, median(run_ratio, ROUNDS));
    if (a.sq_insert)
        sqlite3_finalize(a.sq_insert);
    aj_workflow_free(wf);
    aj_store_free(a.store);
    return 0;
}
