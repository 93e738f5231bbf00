/*
 * Ride booking: a three-step acidic_job workflow on an embedded SQLite file.
 *
 *   create_ride_and_audit_record -> create_stripe_charge -> send_receipt
 *
 * Each step runs in one SQLite transaction together with the run's bookkeeping, so a
 * step's writes happen exactly once and a retry resumes where the last attempt failed.
 *
 *   ride_booking [--db PATH] [--stripe-fails]
 *
 * --stripe-fails (or AJ_DEMO_STRIPE_FAILS=1) makes the payment provider fail in step 2.
 * Run it once with the flag and once without: the second run resumes at step 2 and never
 * creates the ride again. `make demo` does exactly that.
 *
 * Exit status: 0 when the run behaved as expected (including the planned failure),
 * 1 otherwise.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acidic_job.h"

#define KEY "ride-request-42"
#define ARGS "{\"user_id\":42,\"origin\":\"Alexanderplatz\",\"destination\":\"BER Airport\"}"

typedef struct demo {
    int stripe_fails;
    long long ride_id;
} demo;

static int app_exec(sqlite3 *db, const char *sql) {
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "    SQL failed: %s\n", err ? err : "?");
        sqlite3_free(err);
        return -1;
    }
    return 0;
}

static long long app_count(sqlite3 *db, const char *table) {
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM %s", table);
    sqlite3_stmt *st = NULL;
    long long n = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

static void print_tables(sqlite3 *db) {
    printf("  tables now: rides=%lld, audit_records=%lld, charges=%lld\n", app_count(db, "rides"),
           app_count(db, "audit_records"), app_count(db, "charges"));
}

/* The ride id travels between steps (and between attempts) in the run's attributes. */
static long long ride_id_of(aj_run *run) {
    size_t len = 0;
    const char *doc = aj_run_attributes(run, &len);
    long long id = 0;
    if (doc) {
        char buf[64];
        size_t n = len < sizeof buf - 1 ? len : sizeof buf - 1;
        memcpy(buf, doc, n);
        buf[n] = 0;
        if (sscanf(buf, "{\"ride_id\":%lld}", &id) != 1) id = 0;
    }
    return id;
}

static int step_create_ride(aj_run *run, sqlite3 *db, demo *d) {
    if (app_exec(db, "INSERT INTO rides (user_id, origin, destination) "
                     "VALUES (42, 'Alexanderplatz', 'BER Airport')"))
        return 1;
    d->ride_id = (long long)sqlite3_last_insert_rowid(db);
    char sql[160];
    snprintf(sql, sizeof sql,
             "INSERT INTO audit_records (action, ride_id) VALUES ('ride.created', %lld)",
             d->ride_id);
    if (app_exec(db, sql)) return 1;
    char attrs[64];
    int n = snprintf(attrs, sizeof attrs, "{\"ride_id\":%lld}", d->ride_id);
    if (aj_run_set_attributes(run, attrs, (size_t)n) != AJ_OK) return 1;
    printf("    ride #%lld booked (Alexanderplatz -> BER Airport), audit record written\n",
           d->ride_id);
    return 0;
}

static int step_create_charge(aj_run *run, sqlite3 *db, demo *d) {
    long long ride = ride_id_of(run);
    char sql[200];
    snprintf(sql, sizeof sql,
             "INSERT INTO charges (ride_id, amount_cents, stripe_charge_id) "
             "VALUES (%lld, 2350, 'ch_demo_%lld')",
             ride, ride);
    if (app_exec(db, sql)) return 1;
    printf("    charge row for ride #%lld written (23.50 EUR); calling Stripe...\n", ride);
    if (d->stripe_fails) {
        const char *err = "{\"class\":\"Stripe::APIConnectionError\","
                          "\"message\":\"payment provider unavailable (simulated)\"}";
        aj_run_set_error(run, err, strlen(err));
        printf("    Stripe: payment provider unavailable (simulated failure)\n");
        return 1;
    }
    printf("    Stripe: charge ch_demo_%lld succeeded\n", ride);
    return 0;
}

static int step_send_receipt(aj_run *run, demo *d) {
    (void)d;
    long long ride = ride_id_of(run);
    char payload[64];
    int n = snprintf(payload, sizeof payload, "{\"ride_id\":%lld}", ride);
    int64_t id = 0;
    if (aj_run_stage(run, "activejob", "ReceiptMailerJob", payload, (size_t)n, &id) != AJ_OK)
        return 1;
    printf("    receipt email job staged (staged job #%lld, pushed after the commit)\n",
           (long long)id);
    return 0;
}

static int on_step(aj_run *run, const char *step, void *ctx) {
    demo *d = ctx;
    sqlite3 *db = aj_store_sqlite(aj_run_store(run));
    int index = strcmp(step, "create_ride_and_audit_record") == 0 ? 1
                : strcmp(step, "create_stripe_charge") == 0   ? 2
                                                              : 3;
    printf("  [%d/3] %s\n", index, step);
    switch (index) {
    case 1: return step_create_ride(run, db, d);
    case 2: return step_create_charge(run, db, d);
    default: return step_send_receipt(run, d);
    }
}

static int on_enqueue(void *ctx, const aj_staged_job *job) {
    (void)ctx;
    printf("    -> committed, now handed to the queue: %s job %s %.*s (staged #%lld)\n",
           job->adapter, job->job_name, (int)job->payload_len, job->payload,
           (long long)job->id);
    return 0;
}

static const char *status_name(int status) {
    switch (status) {
    case AJ_RUN_READY: return "READY";
    case AJ_RUN_AWAITING: return "AWAITING";
    case AJ_RUN_SUCCEEDED: return "SUCCEEDED";
    case AJ_RUN_FAILED: return "FAILED";
    case AJ_RUN_FINISHED_FAILED: return "FINISHED_FAILED";
    default: return "?";
    }
}

static int fail(const char *what, int rc) {
    fprintf(stderr, "ride_booking: %s: %s: %s\n", what, aj_code_name(rc), aj_error_last()->message);
    return 1;
}

int main(int argc, char **argv) {
    const char *path = "build/demo/rides.db";
    demo d = {0};
    const char *env = getenv("AJ_DEMO_STRIPE_FAILS");
    d.stripe_fails = env && *env && strcmp(env, "0") != 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--db") == 0 && i + 1 < argc) path = argv[++i];
        else if (strcmp(argv[i], "--stripe-fails") == 0) d.stripe_fails = 1;
        else {
            fprintf(stderr, "usage: %s [--db PATH] [--stripe-fails]\n", argv[0]);
            return 2;
        }
    }

    char url[1024];
    snprintf(url, sizeof url, "sqlite:%s", path);
    aj_store *store = NULL;
    int rc = aj_store_open(&store, url, NULL);
    if (rc != AJ_OK) return fail("open the store", rc);
    aj_store_set_enqueue(store, on_enqueue, NULL);
    sqlite3 *db = aj_store_sqlite(store);
    if (app_exec(db, "CREATE TABLE IF NOT EXISTS rides (id INTEGER PRIMARY KEY, user_id INTEGER, "
                     "origin TEXT, destination TEXT);"
                     "CREATE TABLE IF NOT EXISTS audit_records (id INTEGER PRIMARY KEY, "
                     "action TEXT, ride_id INTEGER);"
                     "CREATE TABLE IF NOT EXISTS charges (id INTEGER PRIMARY KEY, ride_id INTEGER, "
                     "amount_cents INTEGER, stripe_charge_id TEXT)")) {
        aj_store_free(store);
        return 1;
    }

    aj_workflow *wf = NULL;
    if ((rc = aj_workflow_new(&wf)) != AJ_OK ||
        (rc = aj_workflow_add_step(wf, "create_ride_and_audit_record", NULL, 0)) != AJ_OK ||
        (rc = aj_workflow_add_step(wf, "create_stripe_charge", NULL, 0)) != AJ_OK ||
        (rc = aj_workflow_add_step(wf, "send_receipt", NULL, 0)) != AJ_OK)
        return fail("define the workflow", rc);

    printf("Booking a ride (idempotency key \"%s\", store %s)%s\n", KEY, url,
           d.stripe_fails ? " -- Stripe is down this time" : "");
    aj_run_params params = {.version = AJ_RUN_PARAMS_VERSION, .key = KEY, .job_name = "RideBookingJob", .args = ARGS,
                            .args_len = strlen(ARGS)};
    aj_run *run = NULL;
    rc = aj_run_acquire(&run, store, wf, &params);
    if (rc != AJ_OK) {
        aj_workflow_free(wf);
        aj_store_free(store);
        return fail("acquire the run", rc);
    }
    int status = aj_run_status(run);
    int expected_ok = 1;
    if (status == AJ_RUN_SUCCEEDED) {
        printf("  this ride was already booked and paid for: nothing to do\n");
    } else {
        if (ride_id_of(run))
            printf("  resuming an earlier attempt at step \"%s\" (ride #%lld already exists)\n",
                   aj_run_recovery_point(run), ride_id_of(run));
        else
            printf("  new run, starting at step \"%s\"\n", aj_run_recovery_point(run));
        rc = aj_run_execute(run, on_step, &d);
        status = aj_run_status(run);
        if (rc == AJ_ESTEP) {
            printf("  step \"%s\" failed: its writes were rolled back, the error was recorded\n"
                   "  and the run unlocked. Run again to resume at this step.\n",
                   aj_run_recovery_point(run));
            size_t len = 0;
            const char *err = aj_run_error(run, &len);
            if (err) printf("  recorded error: %.*s\n", (int)len, err);
            expected_ok = d.stripe_fails;
        } else if (rc != AJ_OK) {
            expected_ok = 0;
            fail("run the workflow", rc);
        } else {
            printf("  all steps done\n");
            expected_ok = !d.stripe_fails || status == AJ_RUN_SUCCEEDED;
        }
    }
    printf("  run status: %s\n", status_name(status));
    print_tables(db);
    if (status == AJ_RUN_SUCCEEDED) {
        if (app_count(db, "rides") == 1 && app_count(db, "charges") == 1)
            printf("  exactly one ride exists, charged once: the retry never re-created it\n");
        else
            expected_ok = 0;
    }

    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(store);
    return expected_ok ? 0 : 1;
}
