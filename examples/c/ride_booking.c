/*
 * Ride booking: the README's three-step workflow, in C, on an embedded SQLite file.
 *
 *   create_ride_and_audit_record -> create_stripe_charge -> send_receipt
 *
 * Each step runs in one SQLite transaction together with the run's bookkeeping, so a
 * step's writes happen exactly once and a retry resumes where the last attempt failed.
 * examples/ruby and examples/python tell the same story with the same data, line for line.
 *
 *   ride_booking --db PATH [--stripe-fails]
 *
 * --stripe-fails makes the payment provider fail in step 2. Run it once with the flag and
 * once without (examples/c/run.sh does, for `make demo`): the second run resumes at step
 * 2 and never creates the ride again.
 *
 * Exit status: 0 when the run behaved as the story says (the planned failure included),
 * 1 otherwise.
 */
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acidic_job.h"

#define KEY "ride-request-42"
#define USER_ID 42
#define ORIGIN "Alexanderplatz"
#define TARGET "BER Airport"
#define AMOUNT_CENTS 2000
#define ARGS "[42,{\"origin\":\"" ORIGIN "\",\"target\":\"" TARGET "\"}]"

typedef struct demo {
    sqlite3 *db;
    int stripe_down;
    int64_t receipt_staged_id; /* handed to the "queue", acknowledged once performed */
} demo;

/* Runs SQL built with sqlite3_mprintf's formats (%Q quotes a text value). */
static int app_exec(sqlite3 *db, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    char *sql = sqlite3_vmprintf(format, ap);
    va_end(ap);
    char *err = NULL;
    int rc = sql ? sqlite3_exec(db, sql, NULL, NULL, &err) : SQLITE_NOMEM;
    if (rc != SQLITE_OK)
        fprintf(stderr, "ride_booking: %s: %s\n", sql ? sql : "?", err ? err : sqlite3_errstr(rc));
    sqlite3_free(err);
    sqlite3_free(sql);
    return rc == SQLITE_OK ? 0 : -1;
}

/* The first column of the first row as text (into buf), or "" when there is none. */
static const char *app_text(sqlite3 *db, const char *sql, const char *arg, char *buf, size_t n)
{
    sqlite3_stmt *st = NULL;
    buf[0] = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (arg)
            sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
            snprintf(buf, n, "%s", (const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    return buf;
}

/* The ride id travels between steps (and between attempts) in the run's attributes. */
static long long ride_id_of(aj_run *run)
{
    size_t len = 0;
    const char *doc = aj_run_attributes(run, &len);
    char buf[64];
    long long id = 0;
    snprintf(buf, sizeof buf, "%.*s", doc ? (int)len : 0, doc ? doc : "");
    return sscanf(buf, "{\"ride_id\":%lld}", &id) == 1 ? id : 0;
}

/* A stand-in for the Stripe API: a foreign state mutation that can fail. */
static int stripe_charge(demo *d, long long ride_id, char *charge_id, size_t n)
{
    if (d->stripe_down) {
        printf("        Stripe: could not connect to api.stripe.com\n");
        return -1;
    }
    snprintf(charge_id, n, "ch_%lld_%d", ride_id, AMOUNT_CENTS);
    printf("        Stripe: charged, %s\n", charge_id);
    return 0;
}

static int create_ride_and_audit_record(aj_run *run, demo *d)
{
    if (app_exec(d->db, "INSERT INTO rides (user_id, origin, target) VALUES (%d, %Q, %Q)",
                 USER_ID, ORIGIN, TARGET) != 0)
        return 1;
    long long ride = (long long)sqlite3_last_insert_rowid(d->db);
    if (app_exec(d->db, "INSERT INTO audit_records (action, ride_id) VALUES ('ride.created', %lld)",
                 ride) != 0)
        return 1;
    char attrs[64];
    int n = snprintf(attrs, sizeof attrs, "{\"ride_id\":%lld}", ride);
    if (aj_run_set_attributes(run, attrs, (size_t)n) != AJ_OK)
        return 1;
    printf("  [1/3] create_ride_and_audit_record: ride #%lld created, audit record "
           "\"ride.created\"\n", ride);
    return 0;
}

static int create_stripe_charge(aj_run *run, demo *d)
{
    long long ride = ride_id_of(run);
    if (app_exec(d->db, "INSERT INTO audit_records (action, ride_id) "
                        "VALUES ('charge.attempted', %lld)", ride) != 0)
        return 1;
    printf("  [2/3] create_stripe_charge: audit record \"charge.attempted\", charging %d.%02d "
           "EUR\n", AMOUNT_CENTS / 100, AMOUNT_CENTS % 100);
    char charge_id[64];
    if (stripe_charge(d, ride, charge_id, sizeof charge_id) != 0) {
        const char *err = "{\"class\":\"APIConnectionError\","
                          "\"message\":\"could not connect to api.stripe.com\"}";
        aj_run_set_error(run, err, strlen(err));
        return 1;
    }
    return app_exec(d->db, "UPDATE rides SET stripe_charge_id = %Q WHERE id = %lld", charge_id,
                    ride) != 0;
}

static int send_receipt(aj_run *run)
{
    char payload[64];
    int n = snprintf(payload, sizeof payload, "{\"ride_id\":%lld}", ride_id_of(run));
    if (aj_run_stage(run, "demo", "RideMailer.confirm_charge", payload, (size_t)n, NULL) != AJ_OK)
        return 1;
    printf("  [3/3] send_receipt: RideMailer.confirm_charge staged, handed to the queue after "
           "this step commits\n");
    return 0;
}

static int on_step(aj_run *run, const char *step, void *ctx)
{
    demo *d = ctx;
    if (strcmp(step, "create_ride_and_audit_record") == 0)
        return create_ride_and_audit_record(run, d);
    if (strcmp(step, "create_stripe_charge") == 0)
        return create_stripe_charge(run, d);
    return send_receipt(run);
}

/* The queue: performs the staged job at once, after the commit. */
static int on_enqueue(void *ctx, const aj_staged_job *job)
{
    demo *d = ctx;
    long long ride = 0;
    char buf[64];
    snprintf(buf, sizeof buf, "%.*s", (int)job->payload_len, job->payload);
    sscanf(buf, "{\"ride_id\":%lld}", &ride);
    printf("        queue: %s for ride #%lld performed, receipt sent\n", job->job_name, ride);
    d->receipt_staged_id = job->id;
    return 0;
}

static void report(sqlite3 *db)
{
    char ride[256], audits[256], point[64], locked[8], err[256], staged[16];
    app_text(db, "SELECT '#' || id || ' ' || origin || ' -> ' || target || ', charge ' || "
                 "coalesce(stripe_charge_id, 'none') FROM rides", NULL, ride, sizeof ride);
    app_text(db, "SELECT group_concat(action, ', ') FROM (SELECT action FROM audit_records "
                 "ORDER BY id)", NULL, audits, sizeof audits);
    app_text(db, "SELECT recovery_point FROM acidic_job_keys WHERE idempotency_key = ?", KEY,
             point, sizeof point);
    app_text(db, "SELECT locked_at IS NOT NULL FROM acidic_job_keys WHERE idempotency_key = ?",
             KEY, locked, sizeof locked);
    app_text(db, "SELECT coalesce('\"' || json_extract(error_object, '$.message') || '\" (' || "
                 "json_extract(error_object, '$.class') || ')', 'none') FROM acidic_job_keys "
                 "WHERE idempotency_key = ?", KEY, err, sizeof err);
    app_text(db, "SELECT count(*) FROM staged_acidic_jobs", NULL, staged, sizeof staged);
    printf("  database now:\n");
    printf("    rides:          %s\n", ride);
    printf("    audit records:  %s\n", audits);
    printf("    run:            recovery point %s, %s, error %s\n", point,
           strcmp(locked, "1") == 0 ? "locked" : "unlocked", err);
    printf("    staged jobs:    %s\n", staged);
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "ride_booking: %s: %s: %s\n", what, aj_code_name(rc), aj_error_last()->message);
    return 1;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    demo d = {0};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--db") == 0 && i + 1 < argc)
            path = argv[++i];
        else if (strcmp(argv[i], "--stripe-fails") == 0)
            d.stripe_down = 1;
        else
            path = NULL, i = argc;
    }
    if (!path) {
        fprintf(stderr, "usage: %s --db PATH [--stripe-fails]\n", argv[0]);
        return 2;
    }

    char url[1024];
    snprintf(url, sizeof url, "sqlite:%s", path);
    aj_store *store = NULL;
    aj_workflow *wf = NULL;
    aj_run *run = NULL;
    int rc = aj_store_open(&store, url, NULL);
    if (rc != AJ_OK)
        return fail("open the store", rc);
    aj_store_set_enqueue(store, on_enqueue, &d);
    d.db = aj_store_sqlite(store);
    if (app_exec(d.db, "CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT);"
                       "INSERT OR IGNORE INTO users (id, name) VALUES (%d, 'Ada');"
                       "CREATE TABLE IF NOT EXISTS rides (id INTEGER PRIMARY KEY,"
                       " user_id INTEGER, origin TEXT, target TEXT, stripe_charge_id TEXT);"
                       "CREATE TABLE IF NOT EXISTS audit_records (id INTEGER PRIMARY KEY,"
                       " action TEXT, ride_id INTEGER)", USER_ID) != 0) {
        aj_store_free(store);
        return 1;
    }

    if ((rc = aj_workflow_new(&wf)) != AJ_OK ||
        (rc = aj_workflow_add_step(wf, "create_ride_and_audit_record", NULL, 0)) != AJ_OK ||
        (rc = aj_workflow_add_step(wf, "create_stripe_charge", NULL, 0)) != AJ_OK ||
        (rc = aj_workflow_add_step(wf, "send_receipt", NULL, 0)) != AJ_OK) {
        aj_workflow_free(wf);
        aj_store_free(store);
        return fail("define the workflow", rc);
    }

    char name[64], point[64];
    printf("Booking a ride for %s (user %d): %s -> %s, %d.%02d EUR\n",
           app_text(d.db, "SELECT name FROM users WHERE id = 42", NULL, name, sizeof name),
           USER_ID, ORIGIN, TARGET, AMOUNT_CENTS / 100, AMOUNT_CENTS % 100);
    if (*app_text(d.db, "SELECT recovery_point FROM acidic_job_keys WHERE idempotency_key = ?",
                  KEY, point, sizeof point))
        printf("  run \"%s\": resumes at %s\n", KEY, point);
    else
        printf("  run \"%s\": new\n", KEY);

    aj_run_params params = AJ_RUN_PARAMS_INIT;
    params.key = KEY;
    params.job_name = "RideCreateJob";
    params.args = ARGS;
    params.args_len = strlen(ARGS);
    int as_told = 0;
    rc = aj_run_new(&run, store, wf, &params); /* nothing written yet */
    if (rc == AJ_OK)
        rc = aj_run_execute(run, on_step, &d); /* the first step acquires the run */
    if (rc == AJ_OK && d.receipt_staged_id)
        rc = aj_staged_ack(store, d.receipt_staged_id, NULL);
    if (rc == AJ_OK) {
        printf("  the run succeeded\n");
        as_told = !d.stripe_down;
    } else if (rc == AJ_ESTEP) {
        printf("  failed at %s: the step rolled back, the run recorded the error and was "
               "unlocked\n", aj_run_recovery_point(run));
        as_told = d.stripe_down;
    } else {
        fail("run the workflow", rc);
    }
    report(d.db);

    if (as_told && !d.stripe_down) {
        char rides[16], charged[16];
        app_text(d.db, "SELECT count(*) FROM rides", NULL, rides, sizeof rides);
        app_text(d.db, "SELECT count(stripe_charge_id) FROM rides", NULL, charged, sizeof charged);
        as_told = strcmp(rides, "1") == 0 && strcmp(charged, "1") == 0;
        if (as_told)
            printf("OK: one ride, charged once; the retry resumed at create_stripe_charge.\n");
    }
    if (!as_told)
        fprintf(stderr, "UNEXPECTED: the run did not go as the story says\n");

    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(store);
    return as_told ? 0 : 1;
}
