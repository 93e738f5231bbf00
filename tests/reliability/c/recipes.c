/*
 * The defect recipes of issue 9 (sections 2 to 5), in C, against the public API.
 *
 * Each test asserts the behaviour the issue asks for, so it fails on the core that has the
 * defect and passes once it is fixed. Usage: recipes sqlite|postgres (PostgreSQL needs
 * AJ_TEST_PG_URL, and AJ_TEST_PG_DIR + AJ_TEST_ROOT for the tests that restart it).
 * Prints cmocka's report and "SUMMARY reliability c-recipes-<db> <passed> <failed>".
 *
 * The fresh database per test, the readers of the tables and the scripted step callback
 * come from tests/c/harness.c; every call of the API whose shape changes goes through
 * api.c.
 */
#include "../../c/harness.h"
#include "api.h"

#include <errno.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------
 * helpers
 * ------------------------------------------------------------------------------------- */

static int is_pg(void) { return g_db == DB_POSTGRES; }

static aj_store *open_ok(int64_t lock_ms)
{
    aj_store *s = NULL;
    int rc = api_open(&s, test_url(), lock_ms, 0);
    if (rc != AJ_OK)
        fail_msg("api_open(%s): %s: %s", test_url(), aj_code_name(rc), aj_error_last()->message);
    return s;
}

static void insert_app(aj_store *s, const char *tag)
{
    aj_value v = {.type = AJ_TEXT, .text = tag, .len = strlen(tag)};
    int rc = aj_store_exec(s, "INSERT INTO app_log (step) VALUES (?)", &v, 1, NULL);
    if (rc != AJ_OK)
        fail_msg("insert %s: %s: %s", tag, aj_code_name(rc), aj_error_last()->message);
}

/* Stage `n` rows directly, as an older process would have left them (delivered never). */
static void stage_rows(aj_store *s, const char *adapter, int n)
{
    for (int i = 0; i < n; i++) {
        char payload[32];
        snprintf(payload, sizeof payload, "%s-%d", adapter, i);
        aj_value v[2] = {{.type = AJ_TEXT, .text = adapter, .len = strlen(adapter)},
                         {.type = AJ_TEXT, .text = payload, .len = strlen(payload)}};
        int rc = aj_store_exec(s,
                               "INSERT INTO staged_acidic_jobs (adapter, job_name, job_args, "
                               "created_at, updated_at) VALUES (?, 'Job', ?, "
                               "'2000-01-01 00:00:00', '2000-01-01 00:00:00')",
                               v, 2, NULL);
        if (rc != AJ_OK)
            fail_msg("stage: %s", aj_error_last()->message);
    }
}

/* Counts the jobs handed to it and refuses those of adapter "refused". */
typedef struct picky {
    int offered, accepted;
} picky;

static int picky_enqueue(void *ctx, const aj_staged_job *job)
{
    picky *p = ctx;
    p->offered++;
    if (strcmp(job->adapter, "refused") == 0)
        return 1;
    p->accepted++;
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * 2.1 and 2.7: an owned PostgreSQL store survives the server going away mid-step
 * ------------------------------------------------------------------------------------- */

typedef struct restart_step {
    const char *mode;  /* pg_ctl shutdown mode */
    int after_write;   /* 1: one more write after the restart; 0: return at once, so the
                          core's own COMMIT meets the dead connection */
    int restarted;     /* the restart happened (once) */
} restart_step;

/* Step "b" inserts, then restarts the server: the server goes away between two statements
 * of the step (the step's next write, or the core's COMMIT). Every other step, and "b"
 * after the restart, inserts once. */
static int restarting_step(aj_run *run, const char *step, void *ctx)
{
    restart_step *rs = ctx;
    aj_store *s = aj_run_store(run);
    aj_value v = {.type = AJ_TEXT, .text = step, .len = strlen(step)};
    if (aj_store_exec(s, "INSERT INTO app_log (step) VALUES (?)", &v, 1, NULL) != AJ_OK)
        return 1;
    if (strcmp(step, "b") == 0 && !rs->restarted) {
        rs->restarted = 1;
        if (pg_restart(rs->mode) != 0)
            fail_msg("could not restart the server (%s)", rs->mode);
        if (rs->after_write &&
            aj_store_exec(s, "INSERT INTO app_log (step) VALUES ('b-after')", NULL, 0, NULL) != AJ_OK)
            return 1;
    }
    return 0;
}

/* Run "k" (steps a, b, c) until step b has lost the server; returns the failed run. */
static aj_run *lose_the_server_in_step_b(aj_store *s, const aj_workflow *wf, restart_step *rs)
{
    aj_run *run = NULL;
    assert_aj(api_acquire(&run, s, wf, "k", "TestJob", NULL, 0), AJ_OK);
    assert_aj(aj_run_step(run, restarting_step, rs), AJ_OK); /* a */
    int rc = aj_run_step(run, restarting_step, rs);          /* b: the server goes away */
    assert_int_equal(rs->restarted, 1);
    assert_int_not_equal(rc, AJ_OK);
    printf("# step b after pg_ctl stop -m %s (%s): %s: %s\n", rs->mode,
           rs->after_write ? "then a write" : "then the commit", aj_code_name(rc),
           aj_error_last()->message);
    return run;
}

/* 2.1: the store reconnects and the next step succeeds: a new run on the same store
 * executes at once. Today every later call fails with "AJ_EMISUSE PostgreSQL exec: the
 * connection is in pipeline mode" until the process restarts. */
static void pg_owned_survives_shutdown(const char *mode, int after_write)
{
    aj_store *s = open_ok(0);
    create_app_table(s);
    aj_workflow *wf = make_wf("a", "b", "c", NULL);
    restart_step rs = {mode, after_write, 0};
    aj_run *lost = lose_the_server_in_step_b(s, wf, &rs);
    aj_run_free(lost);
    restart_step plain = {mode, 0, 1};
    int status = 0;
    int rc = api_run_to_end(s, wf, "k2", "TestJob", NULL, 0, restarting_step, &plain, 1, &status);
    if (rc != AJ_OK)
        fail_msg("the next run on the store after the restart failed: %s: %s", aj_code_name(rc),
                 aj_error_last()->message);
    assert_int_equal(status, AJ_RUN_SUCCEEDED);
    aj_workflow_free(wf);
    aj_store_free(s);
}

static void test_pg_owned_reconnects_after_immediate_shutdown_before_a_write(void **state)
{
    (void)state;
    pg_owned_survives_shutdown("immediate", 1);
}

static void test_pg_owned_reconnects_after_immediate_shutdown_before_commit(void **state)
{
    (void)state;
    pg_owned_survives_shutdown("immediate", 0);
}

static void test_pg_owned_reconnects_after_fast_shutdown(void **state)
{
    (void)state;
    pg_owned_survives_shutdown("fast", 1);
}

/* 2.7, third case: the step that lost its connection must not leave the run locked: once
 * the server is back, the failure is recorded and the lock released, so the run resumes at
 * once (here or in another worker), and each step's writes happen exactly once. */
static void test_pg_lost_connection_mid_step_releases_lock(void **state)
{
    (void)state;
    aj_store *s = open_ok(0);
    create_app_table(s);
    aj_workflow *wf = make_wf("a", "b", "c", NULL);
    restart_step rs = {"immediate", 1, 0};
    aj_run *lost = lose_the_server_in_step_b(s, wf, &rs);
    aj_store *other = open_ok(0);
    int locked = key_locked(other, "k");
    char *error = key_error(other, "k");
    if (locked != 0 || !error)
        fail_msg("after the lost connection the run is %s, error %s (expected: unlocked, "
                 "error recorded)", locked ? "still locked" : "unlocked", error ? error : "NULL");
    free(error);
    aj_run_free(lost);
    int status = 0;
    assert_aj(api_run_to_end(other, wf, "k", "TestJob", NULL, 0, restarting_step, &rs, 1, &status),
              AJ_OK);
    assert_int_equal(status, AJ_RUN_SUCCEEDED);
    assert_int_equal(app_rows(other, "a"), 1);
    assert_int_equal(app_rows(other, "b"), 1);
    assert_int_equal(app_rows(other, "b-after"), 0);
    assert_int_equal(app_rows(other, "c"), 1);
    aj_store_free(other);
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* ---------------------------------------------------------------------------------------
 * 2.3: a borrowed PostgreSQL connection whose host deallocates the core's statements
 * ------------------------------------------------------------------------------------- */

static PGconn *pg_connect(void)
{
    PGconn *c = PQconnectdb(test_url());
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("connect: %s", PQerrorMessage(c));
    PQclear(PQexec(c, "SET client_min_messages = warning"));
    return c;
}

static void pg_exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(c));
        PQclear(r);
        fail_msg("%s: %s", sql, msg);
    }
    PQclear(r);
}

/* What the host does between two steps: psycopg 3 sends DEALLOCATE ALL after a rollback
 * once it has prepared statements of its own; poolers send DISCARD ALL. Here the host
 * resets the session between two steps, and after the rollback of a failed step, before
 * the core records the failure. */
static void pg_borrowed_survives_host_reset(const char *reset)
{
    PGconn *c = pg_connect();
    api_borrowed b;
    assert_aj(api_borrow_pg(&b, c, NULL), AJ_OK);
    assert_aj(aj_store_migrate(b.store), AJ_OK);
    aj_workflow *wf = make_wf("a", "b", "c", NULL);
    aj_run *run = NULL;
    char resume[64];
    aj_run_params p = api_params("k", "TestJob", NULL, 0, resume, sizeof resume);
    assert_aj(aj_run_new(&run, b.store, wf, &p), AJ_OK);
    script sc = {0};
    assert_aj(aj_run_step(run, script_step, &sc), AJ_OK);
    pg_exec_ok(c, reset);
    int rc = aj_run_step(run, script_step, &sc);
    if (rc != AJ_OK)
        fail_msg("the step after %s failed: %s: %s", reset, aj_code_name(rc),
                 aj_error_last()->message);
    /* A failed step, the host's reset after its rollback, then the failure record. */
    script failing = {.fail_at = "c", .error_doc = "{\"e\":1}"};
    b.after_rollback = reset;
    rc = aj_run_step(run, script_step, &failing);
    b.after_rollback = NULL;
    if (rc != AJ_ESTEP)
        fail_msg("the failing step after %s: %s: %s (expected AJ_ESTEP)", reset,
                 aj_code_name(rc), aj_error_last()->message);
    aj_run_free(run);
    aj_store *reader = open_ok(0);
    int locked = key_locked(reader, "k");
    char *error = key_error(reader, "k");
    if (locked != 0 || !error || !strstr(error, "\"e\""))
        fail_msg("after %s the failed run is %s with error %s (expected: unlocked, the "
                 "step's error recorded)", reset, locked ? "locked" : "unlocked",
                 error ? error : "NULL");
    free(error);
    aj_store_free(reader);
    aj_workflow_free(wf);
    api_borrowed_free(&b);
    PQfinish(c);
}

static void test_pg_borrowed_survives_deallocate_all(void **state)
{
    (void)state;
    pg_borrowed_survives_host_reset("DEALLOCATE ALL");
}

static void test_pg_borrowed_survives_discard_all(void **state)
{
    (void)state;
    pg_borrowed_survives_host_reset("DISCARD ALL");
}

/* ---------------------------------------------------------------------------------------
 * 2.4: drains
 * ------------------------------------------------------------------------------------- */

/* 100 rows nobody in this process can deliver, then 20 it can: the 20 must go out.
 * Today: `more = nrows == 100 && accepted > 0` ends the drain on the first page. */
static void test_drain_past_a_refused_page(void **state)
{
    (void)state;
    aj_store *s = open_ok(0);
    stage_rows(s, "refused", 100);
    stage_rows(s, "ok", 20);
    picky p = {0};
    aj_store_set_enqueue(s, picky_enqueue, &p);
    size_t delivered = 0;
    assert_aj(aj_store_drain(s, 0, &delivered), AJ_OK);
    if (delivered != 20 || p.accepted != 20)
        fail_msg("drain delivered %zu rows (offered %d); expected the 20 behind the 100 refused",
                 delivered, p.offered);
    aj_store_free(s);
}

/* A borrowed store delivers every page in one call. Today: one page (100 rows). */
static void test_borrowed_drain_delivers_every_page(void **state)
{
    (void)state;
    aj_store *s = open_ok(0);
    stage_rows(s, "ok", 250);
    api_borrowed b;
    PGconn *pg = NULL;
    sqlite3 *db = NULL;
    if (is_pg()) {
        pg = pg_connect();
        assert_aj(api_borrow_pg(&b, pg, NULL), AJ_OK);
    } else {
        assert_int_equal(sqlite3_open(test_sqlite_path(), &db), SQLITE_OK);
        sqlite3_busy_timeout(db, 5000);
        assert_aj(api_borrow_sqlite(&b, db, NULL), AJ_OK);
    }
    picky p = {0};
    aj_store_set_enqueue(b.store, picky_enqueue, &p);
    size_t delivered = 0;
    assert_aj(aj_store_drain(b.store, 0, &delivered), AJ_OK);
    if (delivered != 250)
        fail_msg("a borrowed drain delivered %zu of 250 rows in one call", delivered);
    api_borrowed_free(&b);
    if (pg)
        PQfinish(pg);
    if (db)
        sqlite3_close(db);
    aj_store_free(s);
}

/* ---------------------------------------------------------------------------------------
 * 2.5: two borrowed PostgreSQL connections creating the same key
 * ------------------------------------------------------------------------------------- */

typedef struct acquirer {
    aj_store *store;
    const aj_workflow *wf;
    int rc;
    char message[1024];
} acquirer;

static void *acquire_in_thread(void *arg)
{
    acquirer *a = arg;
    aj_run *run = NULL;
    a->rc = api_acquire(&run, a->store, a->wf, "same-key", "TestJob", "[1]", 3);
    snprintf(a->message, sizeof a->message, "%s", aj_error_last()->message);
    aj_run_free(run);
    return NULL;
}

/* Worker A has created the key and holds its transaction open (its host waits before
 * COMMIT); worker B, on its own connection, finds no row and inserts, waits for A's
 * commit, and meets the unique index. That is the key created by a racing worker:
 * AJ_ELOCKED (0.8: AJ_EDATABASE "duplicate key value violates unique constraint ...
 * (SQLSTATE 23505)"). */
static void test_pg_borrowed_unique_violation_is_locked(void **state)
{
    (void)state;
    aj_store *setup = open_ok(0); /* creates the tables */
    aj_store_free(setup);
    aj_workflow *wf = make_wf("a", "b", NULL);
    PGconn *ca = pg_connect(), *cb = pg_connect();
    api_borrowed a, b;
    assert_aj(api_borrow_pg(&a, ca, NULL), AJ_OK);
    assert_aj(api_borrow_pg(&b, cb, NULL), AJ_OK);
    a.hold_commit = 1;
    acquirer acq_a = {a.store, wf, 0, ""}, acq_b = {b.store, wf, 0, ""};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, acquire_in_thread, &acq_a);
    for (int i = 0; i < 10000 && !a.holding; i++)
        sleep_ms(1);
    assert_true(a.holding);
    pthread_create(&tb, NULL, acquire_in_thread, &acq_b);
    sleep_ms(500); /* B's INSERT waits for A's transaction */
    api_release_commit(&a);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_aj(acq_a.rc, AJ_OK);
    if (acq_b.rc != AJ_ELOCKED)
        fail_msg("the worker that lost the creation race got %s: %s (expected AJ_ELOCKED)",
                 aj_code_name(acq_b.rc), acq_b.message);
    api_borrowed_free(&a);
    api_borrowed_free(&b);
    PQfinish(ca);
    PQfinish(cb);
    aj_workflow_free(wf);
}

/* ---------------------------------------------------------------------------------------
 * 2.6: opening a store on a busy SQLite file waits for the other writer
 * ------------------------------------------------------------------------------------- */

/* Another process holds the write lock for `hold_ms`: aj_store_open waits (busy timeout
 * 5 s) instead of failing with "BEGIN IMMEDIATE: database is locked". */
static void test_sqlite_open_waits_for_a_busy_writer(void **state)
{
    (void)state;
    aj_store *s = open_ok(0);
    aj_store_free(s);
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        sqlite3 *db = NULL;
        sqlite3_open(test_sqlite_path(), &db);
        int ok = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
        if (write(ready[1], ok ? "1" : "0", 1) != 1)
            _exit(3);
        sleep_ms(700);
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
        sqlite3_close(db);
        _exit(ok ? 0 : 2);
    }
    char c = 0;
    assert_int_equal(read(ready[0], &c, 1), 1);
    assert_int_equal(c, '1');
    aj_store *busy = NULL;
    int rc = api_open(&busy, test_url(), 0, 5000);
    char message[1024];
    snprintf(message, sizeof message, "%s", aj_error_last()->message);
    assert_int_equal(wait_child(pid), 0);
    close(ready[0]);
    close(ready[1]);
    if (rc != AJ_OK)
        fail_msg("aj_store_open on a file another process writes: %s: %s", aj_code_name(rc),
                 message);
    aj_store_free(busy);
}

/* A few workers open one fresh file at once, 20 times: every open succeeds. */
static void test_sqlite_concurrent_opens_all_succeed(void **state)
{
    (void)state;
    int failures = 0;
    char first_failure[1024] = "";
    for (int round = 0; round < 20; round++) {
        const char *url = round == 0 ? test_url() : test_url_extra(round % 8);
        if (round >= 8) {
            /* start from a fresh file again */
            char path[600];
            snprintf(path, sizeof path, "%s", url + strlen("sqlite:"));
            unlink(path);
            char aux[640];
            snprintf(aux, sizeof aux, "%s-wal", path);
            unlink(aux);
            snprintf(aux, sizeof aux, "%s-shm", path);
            unlink(aux);
        }
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        barrier bar;
        barrier_init(&bar);
        pid_t pids[4];
        for (int w = 0; w < 4; w++) {
            pids[w] = fork();
            if (pids[w] == 0) {
                close(fds[0]);
                barrier_wait(&bar);
                aj_store *s = NULL;
                int rc = api_open(&s, url, 0, 5000);
                if (rc != AJ_OK) {
                    char msg[1024];
                    int n = snprintf(msg, sizeof msg, "%s: %s\n", aj_code_name(rc),
                                     aj_error_last()->message);
                    if (write(fds[1], msg, (size_t)n) < 0)
                        _exit(3);
                    _exit(1);
                }
                aj_store_free(s);
                _exit(0);
            }
        }
        close(fds[1]);
        barrier_release(&bar);
        for (int w = 0; w < 4; w++)
            if (wait_child(pids[w]) != 0)
                failures++;
        if (!first_failure[0]) {
            ssize_t n = read(fds[0], first_failure, sizeof first_failure - 1);
            first_failure[n > 0 ? n : 0] = 0;
        }
        close(fds[0]);
    }
    if (failures)
        fail_msg("%d of 80 concurrent opens failed; first: %s", failures, first_failure);
}

/* ---------------------------------------------------------------------------------------
 * 2.7: a run is not left locked by errors that are not the step's
 * ------------------------------------------------------------------------------------- */

/* 0.8: AJ_EUNKNOWN_RECOVERY_POINT "the run stays locked", so an immediate retry (after
 * the step is restored under its old name) was AJ_ELOCKED for 90 s. */
static void test_unknown_recovery_point_releases_the_lock(void **state)
{
    (void)state;
    aj_store *s = open_ok(0);
    aj_workflow *old_wf = make_wf("a", "renamed", NULL);
    script sc = {0};
    aj_run *run = NULL;
    assert_aj(api_acquire(&run, s, old_wf, "k", "TestJob", NULL, 0), AJ_OK);
    assert_aj(aj_run_step(run, script_step, &sc), AJ_OK); /* now at "renamed" */
    aj_run_free(run);
    run = NULL;
    /* the run's lock expires, as after its worker died */
    q_exec(s, "UPDATE acidic_job_keys SET locked_at = NULL", NULL, NULL);
    aj_workflow *new_wf = make_wf("a", "b", NULL);
    int status = 0;
    assert_aj(api_run_to_end(s, new_wf, "k", "TestJob", NULL, 0, script_step, &sc, 1, &status),
              AJ_EUNKNOWN_RECOVERY_POINT);
    int locked = key_locked(s, "k");
    char *error = key_error(s, "k");
    if (locked != 0 || !error || !strstr(error, "renamed"))
        fail_msg("after AJ_EUNKNOWN_RECOVERY_POINT the run is %s with error %s (expected: "
                 "unlocked, the error naming the step recorded)", locked ? "locked" : "unlocked",
                 error ? error : "NULL");
    free(error);
    /* the step is back under its old name: the retry runs at once */
    assert_aj(api_run_to_end(s, old_wf, "k", "TestJob", NULL, 0, script_step, &sc, 1, &status),
              AJ_OK);
    assert_int_equal(status, AJ_RUN_SUCCEEDED);
    aj_workflow_free(old_wf);
    aj_workflow_free(new_wf);
    aj_store_free(s);
}

/* ---------------------------------------------------------------------------------------
 * 2.9: messages
 * ------------------------------------------------------------------------------------- */

/* Busy SQLite: SQLite allows one writer; the message says so and how long the other held
 * it. Today: "SQLite: BEGIN IMMEDIATE: database is locked" (and the bindings add "another
 * transaction touched the same rows"). */
static void test_sqlite_busy_message_names_the_single_writer(void **state)
{
    (void)state;
    aj_store *setup = open_ok(0);
    aj_store_free(setup);
    sqlite3 *holder = NULL;
    assert_int_equal(sqlite3_open(test_sqlite_path(), &holder), SQLITE_OK);
    assert_int_equal(sqlite3_exec(holder, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    aj_store *s = NULL;
    /* opening may already need the write lock: then its error is the one to judge */
    int rc = api_open(&s, test_url(), 0, 200);
    aj_workflow *wf = make_wf("a", NULL);
    aj_run *run = NULL;
    if (rc == AJ_OK)
        rc = api_acquire(&run, s, wf, "k", "TestJob", NULL, 0);
    char message[1024];
    snprintf(message, sizeof message, "%s", aj_error_last()->message);
    sqlite3_exec(holder, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(holder);
    assert_int_equal(rc, AJ_ECONFLICT);
    printf("# busy message: %s\n", message);
    if (strstr(message, "touched the same rows") || !strstr(message, "writer") ||
        !strstr(message, "ms"))
        fail_msg("the busy message should say SQLite allows one writer and how long it "
                 "waited for it: %s", message);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* `postgres://@:99999/x`: a port out of range is a malformed URL. Today: AJ_EDATABASE. */
static void test_port_out_of_range_is_invalid(void **state)
{
    (void)state;
    aj_store *s = NULL;
    int rc = aj_store_open(&s, "postgres://@:99999/x", NULL);
    if (rc != AJ_EINVALID)
        fail_msg("postgres://@:99999/x: %s: %s (expected AJ_EINVALID)", aj_code_name(rc),
                 aj_error_last()->message);
}

/* Tables written by a newer acidic_job are refused with AJ_ESCHEMA (0.8: accepted
 * silently). */
static void test_newer_schema_version_is_refused(void **state)
{
    (void)state;
    aj_store *s = open_ok(0);
    q_exec(s, "UPDATE acidic_job_schema SET version = 999", NULL, NULL);
    aj_store_free(s);
    s = NULL;
    int rc = aj_store_open(&s, test_url(), NULL);
    aj_store_free(s);
    if (rc != AJ_ESCHEMA)
        fail_msg("a schema of version 999 was opened: %s %s", aj_code_name(rc),
                 aj_error_last()->message);
}

/* Tables dropped under a current schema version are recreated. Today: never. */
static void test_dropped_tables_are_recreated(void **state)
{
    (void)state;
    aj_store *s = open_ok(0);
    q_exec(s, "DROP TABLE staged_acidic_jobs", NULL, NULL);
    aj_store_free(s);
    s = open_ok(0);
    aj_workflow *wf = make_wf("a", NULL);
    script sc = {.stage_at = "a", .n_stage = 1};
    int status = 0;
    int rc = api_run_to_end(s, wf, "k", "TestJob", NULL, 0, script_step, &sc, 1, &status);
    if (rc != AJ_OK)
        fail_msg("a staging run after the table was dropped: %s: %s", aj_code_name(rc),
                 aj_error_last()->message);
    assert_int_equal(count_rows(s, "staged_acidic_jobs"), 1);
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* ---------------------------------------------------------------------------------------
 * 3.1 and 3.2: a step that ends its own transaction
 * ------------------------------------------------------------------------------------- */

typedef struct misbehaving {
    int attempt;          /* of step "b" */
    int64_t staged_id;    /* staged by step "a" */
    const char *statement;/* "ack", or SQL the step runs between its two writes */
    int call_rc;          /* what the misbehaving call returned on the first attempt */
} misbehaving;

/* Fail the step with an error document (today's core records none without one). */
static int fail_step(aj_run *run, const char *why)
{
    char doc[128];
    int n = snprintf(doc, sizeof doc, "{\"error\":\"%s\"}", why);
    aj_run_set_error(run, doc, (size_t)n);
    return 1;
}

/* Step a stages a job. Step b writes "b-before", makes the misbehaving call, writes
 * "b-after", and fails on its first attempt (a retry then runs it again). */
static int misbehaving_step(aj_run *run, const char *step, void *ctx)
{
    misbehaving *m = ctx;
    aj_store *s = aj_run_store(run);
    if (strcmp(step, "a") == 0)
        return aj_run_stage(run, "activejob", "Job", "{}", 2, &m->staged_id) != AJ_OK;
    if (strcmp(step, "b") != 0)
        return 0;
    m->attempt++;
    insert_app(s, "b-before");
    if (m->attempt == 1) {
        if (strcmp(m->statement, "ack") == 0)
            m->call_rc = aj_staged_ack(s, m->staged_id, NULL);
        else
            m->call_rc = aj_store_exec(s, m->statement, NULL, 0, NULL);
        if (m->call_rc != AJ_OK && m->call_rc != AJ_EMISUSE)
            fail_msg("%s inside a step: %s: %s (expected AJ_OK or AJ_EMISUSE)", m->statement,
                     aj_code_name(m->call_rc), aj_error_last()->message);
        if (m->call_rc != AJ_OK)
            return fail_step(run, "the call was refused");
    }
    aj_value v = {.type = AJ_TEXT, .text = "b-after", .len = 7};
    if (aj_store_exec(s, "INSERT INTO app_log (step) VALUES (?)", &v, 1, NULL) != AJ_OK)
        return fail_step(run, "the write after the call failed");
    return m->attempt == 1 ? fail_step(run, "the first attempt fails after its writes") : 0;
}

static void step_ending_its_transaction(const char *statement)
{
    aj_store *s = open_ok(0);
    create_app_table(s);
    aj_workflow *wf = make_wf("a", "b", "c", NULL);
    misbehaving m = {0, 0, statement, 0};
    aj_run *run = NULL;
    assert_aj(api_acquire(&run, s, wf, "k", "TestJob", NULL, 0), AJ_OK);
    assert_aj(aj_run_step(run, misbehaving_step, &m), AJ_OK);
    int rc = aj_run_step(run, misbehaving_step, &m);
    char message[1024];
    snprintf(message, sizeof message, "%s", aj_error_last()->message);
    aj_run_free(run);
    printf("# step b with %s: %s: %s\n", statement, aj_code_name(rc), message);
    if (rc != AJ_ESTEP && rc != AJ_EMISUSE)
        fail_msg("the step that ran %s returned %s: %s (expected AJ_EMISUSE, or AJ_ESTEP when "
                 "the call was refused)", statement, aj_code_name(rc), message);
    /* nothing of the failed attempt committed, the run is unlocked with its error */
    int64_t before = app_rows(s, "b-before"), after = app_rows(s, "b-after");
    if (before != 0 || after != 0)
        fail_msg("the failed attempt that ran %s committed %lld \"b-before\" and %lld "
                 "\"b-after\" rows (expected none)", statement, (long long)before,
                 (long long)after);
    int locked = key_locked(s, "k");
    char *error = key_error(s, "k");
    if (locked != 0 || !error)
        fail_msg("after the step ran %s the run is %s with error %s", statement,
                 locked ? "locked" : "unlocked", error ? error : "NULL");
    free(error);
    int status = 0;
    assert_aj(api_run_to_end(s, wf, "k", "TestJob", NULL, 0, misbehaving_step, &m, 2, &status),
              AJ_OK);
    assert_int_equal(status, AJ_RUN_SUCCEEDED);
    assert_int_equal(app_rows(s, "b-before"), 1);
    assert_int_equal(app_rows(s, "b-after"), 1);
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* 3.1: the ack's failed BEGIN and its ROLLBACK end the step's transaction today. */
static void test_ack_inside_a_step_keeps_its_transaction(void **state)
{
    (void)state;
    step_ending_its_transaction("ack");
}

/* 3.2: COMMIT or ROLLBACK run by the step callback on an owned store. */
static void test_commit_inside_a_step_is_refused(void **state)
{
    (void)state;
    step_ending_its_transaction("COMMIT");
}

static void test_rollback_inside_a_step_is_refused(void **state)
{
    (void)state;
    step_ending_its_transaction("ROLLBACK");
}

/* ---------------------------------------------------------------------------------------
 * 3.5: huge timeouts
 * ------------------------------------------------------------------------------------- */

/* lock_timeout_ms >= 2^63/1000 overflows: a fresh lock looks expired and a second worker
 * acquires a locked run. Clamp or refuse. (2^63/1000 + 1 itself happens to wrap twice and
 * come out right today; 1.7e16 and INT64_MAX do not.) */
static void huge_lock_timeout_keeps_the_lock(int64_t huge)
{
    aj_store *s1 = NULL, *s2 = NULL;
    int rc = api_open(&s1, test_url(), huge, 0);
    if (rc == AJ_EINVALID)
        return; /* refused: fine */
    assert_aj(rc, AJ_OK);
    assert_aj(api_open(&s2, test_url(), huge, 0), AJ_OK);
    aj_workflow *wf = make_wf("a", NULL);
    aj_run *r1 = NULL, *r2 = NULL;
    char key[32];
    snprintf(key, sizeof key, "k%lld", (long long)huge);
    assert_aj(api_acquire(&r1, s1, wf, key, "TestJob", NULL, 0), AJ_OK);
    rc = api_acquire(&r2, s2, wf, key, "TestJob", NULL, 0);
    aj_run_free(r1);
    aj_run_free(r2);
    aj_workflow_free(wf);
    aj_store_free(s1);
    aj_store_free(s2);
    if (rc != AJ_ELOCKED)
        fail_msg("with lock_timeout_ms = %lld a second worker acquired a locked run: %s",
                 (long long)huge, aj_code_name(rc));
}

/* In a child: UBSan (this program links the sanitized core) aborts at the overflow. */
static void test_huge_lock_timeout_keeps_the_lock(void **state)
{
    (void)state;
    static const int64_t huge[] = {INT64_MAX / 1000 + 1, 17000000000000000LL, INT64_MAX};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            huge_lock_timeout_keeps_the_lock(huge[i]);
            _exit(0);
        }
        int rc = wait_child(pid);
        if (rc != 0)
            fail_msg("lock_timeout_ms = %lld: the check ended with status %d (UBSan "
                     "reports above)", (long long)huge[i], rc);
    }
}

/* aj_store_drain(store, INT64_MAX): nothing is that old; refuse or deliver nothing. */
static void test_drain_with_a_huge_age_delivers_nothing_new(void **state)
{
    (void)state;
    aj_store *s = open_ok(0);
    aj_workflow *wf = make_wf("a", NULL);
    recorder refuse = {.reject = 1};
    aj_store_set_enqueue(s, recorder_enqueue, &refuse); /* leaves the row to a drain */
    script sc = {.stage_at = "a", .n_stage = 1};
    int status = 0;
    assert_aj(api_run_to_end(s, wf, "k", "TestJob", NULL, 0, script_step, &sc, 1, &status), AJ_OK);
    fflush(NULL);
    pid_t pid = fork(); /* UBSan aborts at the overflow */
    if (pid == 0) {
        aj_store *mine = open_ok(0); /* a store does not cross fork() */
        recorder take = {0};
        aj_store_set_enqueue(mine, recorder_enqueue, &take);
        size_t delivered = 0;
        int rc = aj_store_drain(mine, INT64_MAX, &delivered);
        if (rc != AJ_EINVALID && (rc != AJ_OK || delivered != 0)) {
            printf("aj_store_drain(INT64_MAX): %s, %zu delivered (a row staged just now is "
                   "not older than INT64_MAX ms)\n", aj_code_name(rc), delivered);
            _exit(1);
        }
        _exit(0);
    }
    int child = wait_child(pid);
    if (child != 0)
        fail_msg("aj_store_drain(INT64_MAX) in a child: status %d (UBSan reports above)", child);
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* ---------------------------------------------------------------------------------------
 * 3.7: a key reused by another job
 * ------------------------------------------------------------------------------------- */

static void test_key_of_another_job_is_a_mismatch(void **state)
{
    (void)state;
    aj_store *s = open_ok(0);
    aj_workflow *wf = make_wf("a", NULL);
    script sc = {0};
    int status = 0;
    assert_aj(api_run_to_end(s, wf, "shared", "AlphaJob", NULL, 0, script_step, &sc, 1, &status),
              AJ_OK);
    aj_run *run = NULL;
    int rc = api_acquire(&run, s, wf, "shared", "BravoJob", NULL, 0);
    const char *msg = aj_error_last()->message;
    if (rc != AJ_EMISMATCH || !strstr(msg, "AlphaJob") || !strstr(msg, "BravoJob"))
        fail_msg("key \"shared\" of AlphaJob acquired for BravoJob: %s %s (expected "
                 "AJ_EMISMATCH naming both jobs)", aj_code_name(rc),
                 rc ? msg : "(the run was handed out)");
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* ---------------------------------------------------------------------------------------
 * 4: secrets in messages
 * ------------------------------------------------------------------------------------- */

typedef struct secret_case {
    const char *input;
    const char *secrets[2];
} secret_case;

/* The addresses are loopback ports nobody listens on or unreachable socket paths: every
 * open fails, and its message must not show the password. */
static void test_passwords_never_reach_messages(void **state)
{
    (void)state;
    static const secret_case cases[] = {
        /* a '/' in a URI password that is not percent-encoded */
        {"postgresql://user:Secr/et9x@127.0.0.1:1/db?connect_timeout=1", {"Secr", "et9x"}},
        {"postgres://app:Pass/Word5@127.0.0.1:1/db", {"Pass", "Word5"}},
        /* misspelled keys */
        {"host=127.0.0.1 port=1 connect_timeout=1 passwd=Hunter2x", {"Hunter2x", NULL}},
        {"host=127.0.0.1 port=1 connect_timeout=1 PASSWORD=Hunter3x", {"Hunter3x", NULL}},
        /* libpq echoing the conninfo (found by the fuzzer) */
        {"host=/x\vpassword=Hunter2://x:Secret9@y", {"Hunter2", "Secret9"}},
        /* found by fuzz/fuzz_redact.c: a '?' or '#' in a URI password ends the redaction's
         * user info early; libpq's '' is no quote, so the rest of the value spills into
         * libpq's message */
        {"mysql://user:pa?ss9word@h/db", {"ss9word", NULL}},
        {"sqlite3://user:pa#ss8word@h/db", {"ss8word", NULL}},
        {"host=127.0.0.1 port=1 password = 'it''s-secret9'", {"secret9", NULL}},
        /* a conninfo value ends at a space, not at '&' (that is the URI query's separator) */
        {"host=127.0.0.1 port=1 connect_timeout=1 password=abc&secret7 dbname=x", {"secret7", NULL}},
        /* libpq needs no space after a quoted value and the second password wins: the
         * fuzzer found aj_redact_url showing it; driver_pg.c's second pass hides it here */
        {"host=127.0.0.1 port=1 connect_timeout=1 password='x'password=Second7secret", {"Second7", NULL}},
    };
    int leaks = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        aj_store *s = NULL;
        int rc = aj_store_open(&s, cases[i].input, NULL);
        aj_store_free(s);
        if (rc == AJ_OK)
            fail_msg("%s opened", cases[i].input);
        const char *msg = aj_error_last()->message;
        for (int j = 0; j < 2 && cases[i].secrets[j]; j++) {
            if (strstr(msg, cases[i].secrets[j])) {
                printf("# leak of \"%s\": %s\n", cases[i].secrets[j], msg);
                leaks++;
            }
        }
    }
    if (leaks)
        fail_msg("%d passwords appeared in error messages", leaks);
}

/* ---------------------------------------------------------------------------------------
 * 5: large arguments
 * ------------------------------------------------------------------------------------- */

/* `n` bytes of incompressible JSON: ["<random base64-ish text>"]. */
static char *random_args(size_t n, unsigned seed)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *s = malloc(n + 1);
    assert_non_null(s);
    uint64_t x = 0x9E3779B97F4A7C15ull ^ seed;
    s[0] = '[';
    s[1] = '"';
    for (size_t i = 2; i + 2 < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s[i] = alphabet[x & 63];
    }
    s[n - 2] = '"';
    s[n - 1] = ']';
    s[n] = 0;
    return s;
}

static void large_arguments(size_t n)
{
    aj_store *s = open_ok(0);
    aj_workflow *wf = make_wf("a", "b", NULL);
    char *args = random_args(n, (unsigned)n);
    script sc = {0};
    int status = 0;
    int rc = api_run_to_end(s, wf, "big", "TestJob", args, n, script_step, &sc, 1, &status);
    if (rc != AJ_OK)
        fail_msg("a run with %zu bytes of arguments: %s: %.300s", n, aj_code_name(rc),
                 aj_error_last()->message);
    assert_int_equal(status, AJ_RUN_SUCCEEDED);
    /* the same arguments: the finished run; one byte changed: a mismatch */
    aj_run *run = NULL;
    assert_aj(api_acquire(&run, s, wf, "big", "TestJob", args, n), AJ_OK);
    assert_int_equal(aj_run_status(run), AJ_RUN_SUCCEEDED);
    aj_run_free(run);
    run = NULL;
    args[n / 2] = args[n / 2] == 'A' ? 'B' : 'A';
    assert_aj(api_acquire(&run, s, wf, "big", "TestJob", args, n), AJ_EMISMATCH);
    free(args);
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* Today on PostgreSQL: "index row size 3080 exceeds btree version 4 maximum 2704". */
static void test_arguments_of_70_uuids(void **state)
{
    (void)state;
    aj_store *s = open_ok(0);
    aj_workflow *wf = make_wf("a", NULL);
    char args[70 * 40 + 8];
    size_t o = 0;
    args[o++] = '[';
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 70; i++) {
        char uuid[40];
        unsigned char b[16];
        for (int j = 0; j < 16; j++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b[j] = (unsigned char)x;
        }
        snprintf(uuid, sizeof uuid,
                 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
                 b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
                 b[13], b[14], b[15]);
        o += (size_t)snprintf(args + o, sizeof args - o, "%s\"%s\"", i ? "," : "", uuid);
    }
    args[o++] = ']';
    args[o] = 0;
    script sc = {0};
    int status = 0;
    int rc = api_run_to_end(s, wf, "uuids", "TestJob", args, o, script_step, &sc, 1, &status);
    if (rc != AJ_OK)
        fail_msg("a run with 70 UUIDs (%zu bytes): %s: %s", o, aj_code_name(rc),
                 aj_error_last()->message);
    aj_workflow_free(wf);
    aj_store_free(s);
}

static void test_arguments_of_1_mb(void **state)
{
    (void)state;
    large_arguments(1u << 20);
}

static void test_arguments_of_50_mb(void **state)
{
    (void)state;
    large_arguments(50u << 20);
}

/* ---------------------------------------------------------------------------------------
 * bad input: every entry point, the exact code
 * ------------------------------------------------------------------------------------- */

/* Bad inputs tried (each EXPECT is one), for the figures of a run. */
static int bad_inputs_tried;

#define EXPECT(call, code)                                                                  \
    do {                                                                                    \
        bad_inputs_tried++;                                                                 \
        int rc_ = (call);                                                                   \
        if (rc_ != (code)) {                                                                \
            printf("# line %d: %s = %s (%s), expected %s\n", __LINE__, #call,                 \
                   aj_code_name(rc_), aj_error_last()->message, aj_code_name(code));        \
            wrong++;                                                                        \
        }                                                                                   \
    } while (0)

static void test_bad_input_to_stores(void **state)
{
    (void)state;
    int wrong = 0;
    aj_store *s = NULL;
    aj_options o;
    EXPECT(aj_store_open(NULL, test_url(), NULL), AJ_EINVALID);
    EXPECT(aj_store_open(&s, NULL, NULL), AJ_EINVALID);
    EXPECT(aj_store_open(&s, "", NULL), AJ_EINVALID);
    EXPECT(aj_store_open(&s, "sqlite:", NULL), AJ_EINVALID);
    EXPECT(aj_store_open(&s, "sqlite:/tmp/\xff\xfe.db", NULL), AJ_EINVALID);
    EXPECT(aj_store_open(&s, "sqlite:/tmp/\xed\xa0\x80.db", NULL), AJ_EINVALID); /* surrogate */
    EXPECT(aj_store_open(&s, "mysql://localhost/x", NULL), AJ_EINVALID);
    EXPECT(aj_store_open(&s, "postgres://@:99999/x", NULL), AJ_EINVALID);
    EXPECT(aj_store_open(&s, "postgres://@:-1/x", NULL), AJ_EINVALID);
    EXPECT(aj_store_open(&s, "postgresql://h/db?sslmode=nonsense", NULL), AJ_EINVALID);
    /* -1 is AJ_UNSET (the default), so the smallest bad value is -2 */
    aj_options_init(&o, AJ_OPTIONS_VERSION);
    o.lock_timeout_ms = -2;
    EXPECT(aj_store_open(&s, test_url(), &o), AJ_EINVALID);
    aj_options_init(&o, AJ_OPTIONS_VERSION);
    o.busy_timeout_ms = -5;
    EXPECT(aj_store_open(&s, test_url(), &o), AJ_EINVALID);
    aj_options_init(&o, AJ_OPTIONS_VERSION);
    o.synchronous = 7;
    EXPECT(aj_store_open(&s, test_url(), &o), AJ_EINVALID);
    aj_options_init(&o, AJ_OPTIONS_VERSION);
    o.conflict_retries = -2;
    EXPECT(aj_store_open(&s, test_url(), &o), AJ_EINVALID);
    EXPECT(aj_options_init(NULL, AJ_OPTIONS_VERSION), AJ_EINVALID);
    EXPECT(aj_options_init(&o, AJ_OPTIONS_VERSION + 1), AJ_EINVALID);
    aj_options_init(&o, AJ_OPTIONS_VERSION);
    o.version = 0;
    EXPECT(aj_store_open(&s, test_url(), &o), AJ_EINVALID);
    aj_options_init(&o, AJ_OPTIONS_VERSION);
    o.max_attempts = -2;
    EXPECT(aj_store_open(&s, test_url(), &o), AJ_EINVALID);
    aj_options_init(&o, AJ_OPTIONS_VERSION);
    o.retry_base_ms = -2;
    EXPECT(aj_store_open(&s, test_url(), &o), AJ_EINVALID);
    aj_options_init(&o, AJ_OPTIONS_VERSION);
    o.match_job_name = 2;
    EXPECT(aj_store_open(&s, test_url(), &o), AJ_EINVALID);
    EXPECT(aj_store_borrow_sqlite(&s, NULL, NULL, NULL, NULL), AJ_EINVALID);
    EXPECT(aj_store_borrow_pg(&s, NULL, NULL, NULL, NULL), AJ_EINVALID);
    EXPECT(aj_store_borrow_host(&s, AJ_DIALECT_SQLITE, NULL, NULL, NULL, NULL), AJ_EINVALID);
    {
        /* hook tables of an unknown version, or without their function */
        sqlite3 *db = NULL;
        sqlite3_open(":memory:", &db);
        aj_host_tx no_fn = AJ_HOST_TX_INIT, bad_version = AJ_HOST_TX_INIT;
        bad_version.version = 0;
        EXPECT(aj_store_borrow_sqlite(&s, db, &no_fn, NULL, NULL), AJ_EINVALID);
        EXPECT(aj_store_borrow_sqlite(&s, db, &bad_version, NULL, NULL), AJ_EINVALID);
        aj_host_ops ops = AJ_HOST_OPS_INIT;
        EXPECT(aj_store_borrow_host(&s, AJ_DIALECT_SQLITE, &ops, &no_fn, NULL, NULL),
               AJ_EINVALID);
        sqlite3_close(db);
    }

    aj_store *ok = open_ok(0);
    aj_value nul = {.type = AJ_TEXT, .text = "a\0b", .len = 3};
    aj_value badtype = {.type = 9};
    aj_value nulltext = {.type = AJ_TEXT, .text = NULL, .len = 4};
    EXPECT(aj_store_exec(ok, "", NULL, 0, NULL), AJ_EINVALID);
    EXPECT(aj_store_exec(ok, NULL, NULL, 0, NULL), AJ_EINVALID);
    EXPECT(aj_store_exec(ok, "SELECT ?", NULL, 1, NULL), AJ_EINVALID);
    EXPECT(aj_store_exec(ok, "SELECT ?", &nul, 1, NULL), AJ_EINVALID);
    EXPECT(aj_store_exec(ok, "SELECT ?", &badtype, 1, NULL), AJ_EINVALID);
    EXPECT(aj_store_exec(ok, "SELECT ?", &nulltext, 1, NULL), AJ_EINVALID);
    EXPECT(aj_store_drain(ok, 0, NULL), AJ_EMISUSE); /* no enqueue callback */
    recorder r = {0};
    aj_store_set_enqueue(ok, recorder_enqueue, &r);
    EXPECT(aj_store_drain(ok, -1, NULL), AJ_EINVALID);
    EXPECT(aj_store_drain(NULL, 0, NULL), AJ_EINVALID);
    EXPECT(aj_staged_ack(ok, 0, NULL), AJ_EINVALID);
    EXPECT(aj_staged_ack(ok, -3, NULL), AJ_EINVALID);
    EXPECT(aj_staged_ack(NULL, 1, NULL), AJ_EINVALID);
    EXPECT(aj_store_migrate(NULL), AJ_EINVALID);
    EXPECT(aj_store_recover(NULL, 0, NULL, NULL), AJ_EINVALID);
    aj_store_free(ok);
    if (wrong)
        fail_msg("%d bad inputs got another code than expected (listed above)", wrong);
}

static int stage_outside_step;
static int bad_calls_step(aj_run *run, const char *step, void *ctx)
{
    (void)step;
    int *wrongp = ctx, wrong = 0;
    EXPECT(aj_run_stage(run, "", "Job", "{}", 2, NULL), AJ_EINVALID);
    EXPECT(aj_run_stage(run, "activejob", "", "{}", 2, NULL), AJ_EINVALID);
    EXPECT(aj_run_stage(run, "activejob", "Job", "a\0b", 3, NULL), AJ_EINVALID);
    EXPECT(aj_run_stage(run, "activejob", "Job", "\xc3\x28", 2, NULL), AJ_EINVALID);
    EXPECT(aj_run_stage(run, "activejob", "Job", NULL, 4, NULL), AJ_EINVALID);
    EXPECT(aj_run_await(run, "sidekiq", "Child", "{}", 2, NULL), AJ_EMISUSE); /* no awaits */
    EXPECT(aj_run_goto(run, "nowhere"), AJ_EUNKNOWN_RECOVERY_POINT);
    EXPECT(aj_run_goto(run, ""), AJ_EINVALID);
    EXPECT(aj_run_set_attributes(run, "\xff", 1), AJ_EINVALID);
    EXPECT(aj_run_set_error(run, "a\0", 2), AJ_EINVALID);
    *wrongp += wrong;
    return 0;
}

static void test_bad_input_to_workflows_and_runs(void **state)
{
    (void)state;
    int wrong = 0;
    aj_workflow *wf = NULL;
    assert_aj(aj_workflow_new(&wf), AJ_OK);
    char long_name[300];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = 0;
    const char *empty_await[1] = {""};
    EXPECT(aj_workflow_new(NULL), AJ_EINVALID);
    EXPECT(aj_workflow_add_step(wf, "", NULL, 0), AJ_EINVALID);
    EXPECT(aj_workflow_add_step(wf, NULL, NULL, 0), AJ_EINVALID);
    EXPECT(aj_workflow_add_step(wf, "FINISHED", NULL, 0), AJ_EINVALID);
    EXPECT(aj_workflow_add_step(wf, "\xc3\x28", NULL, 0), AJ_EINVALID);
    EXPECT(aj_workflow_add_step(wf, "\xed\xa0\x80", NULL, 0), AJ_EINVALID);
    EXPECT(aj_workflow_add_step(wf, long_name, NULL, 0), AJ_EINVALID);
    EXPECT(aj_workflow_add_step(wf, "a", NULL, 2), AJ_EINVALID);
    EXPECT(aj_workflow_add_step(wf, "a", empty_await, 1), AJ_EINVALID);
    EXPECT(aj_workflow_add_step(wf, "a", NULL, 0), AJ_OK);
    EXPECT(aj_workflow_add_step(wf, "a", NULL, 0), AJ_EDUPLICATE_STEP);
    EXPECT(aj_workflow_add_step(NULL, "b", NULL, 0), AJ_EINVALID);

    aj_store *s = open_ok(0);
    aj_workflow *empty = NULL;
    assert_aj(aj_workflow_new(&empty), AJ_OK);
    aj_run *run = NULL;
    EXPECT(api_acquire(&run, s, empty, "k", "Job", NULL, 0), AJ_ENO_STEPS);
    EXPECT(api_acquire(&run, s, wf, "", "Job", NULL, 0), AJ_EINVALID);
    EXPECT(api_acquire(&run, s, wf, NULL, "Job", NULL, 0), AJ_EINVALID);
    EXPECT(api_acquire(&run, s, wf, "k", "", NULL, 0), AJ_EINVALID);
    EXPECT(api_acquire(&run, s, wf, "k\xff", "Job", NULL, 0), AJ_EINVALID);
    EXPECT(api_acquire(&run, s, wf, "\xed\xb0\x80", "Job", NULL, 0), AJ_EINVALID);
    EXPECT(api_acquire(&run, s, wf, long_name, "Job", NULL, 0), AJ_EINVALID);
    EXPECT(api_acquire(&run, s, wf, "k", "Job", "[\"a\0b\"]", 7), AJ_EINVALID);
    EXPECT(api_acquire(&run, s, wf, "k", "Job", "\xf8\x88\x80\x80\x80", 5), AJ_EINVALID);
    aj_run_params null_args = AJ_RUN_PARAMS_INIT;
    null_args.key = "k";
    null_args.job_name = "Job";
    null_args.args_len = 5; /* and args NULL */
    EXPECT(aj_run_acquire(&run, s, wf, &null_args), AJ_EINVALID);
    EXPECT(aj_run_new(&run, s, wf, &null_args), AJ_EINVALID);
    null_args.args = NULL;
    null_args.args_len = 0;
    null_args.attributes_len = 3;
    EXPECT(aj_run_acquire(&run, s, wf, &null_args), AJ_EINVALID);
    null_args.attributes_len = 0;
    null_args.version = 0;
    EXPECT(aj_run_new(&run, s, wf, &null_args), AJ_EINVALID);
    null_args.version = AJ_RUN_PARAMS_VERSION;
    null_args.resume_adapter = "harness"; /* without a job name */
    EXPECT(aj_run_new(&run, s, wf, &null_args), AJ_EINVALID);
    null_args.resume_job_name = "resume";
    null_args.resume_payload_len = 4; /* and a NULL payload */
    EXPECT(aj_run_new(&run, s, wf, &null_args), AJ_EINVALID);
    aj_run_free(run); /* when one was wrongly acquired */
    run = NULL;
    q_exec(s, "DELETE FROM acidic_job_keys", NULL, NULL);
    EXPECT(api_acquire(NULL, s, wf, "k", "Job", NULL, 0), AJ_EINVALID);
    EXPECT(api_acquire(&run, NULL, wf, "k", "Job", NULL, 0), AJ_EINVALID);
    EXPECT(api_acquire(&run, s, NULL, "k", "Job", NULL, 0), AJ_EINVALID);
    /* outside a step */
    EXPECT(api_acquire(&run, s, wf, "k", "Job", NULL, 0), AJ_OK);
    EXPECT(aj_run_stage(run, "activejob", "Job", "{}", 2, NULL), AJ_EMISUSE);
    EXPECT(aj_run_finish(run), AJ_EMISUSE);
    EXPECT(aj_run_goto(run, "a"), AJ_EMISUSE);
    EXPECT(aj_run_step(run, NULL, NULL), AJ_EINVALID);
    EXPECT(aj_run_step(NULL, bad_calls_step, &wrong), AJ_EINVALID);
    /* inside one */
    EXPECT(aj_run_step(run, bad_calls_step, &wrong), AJ_OK);
    EXPECT(aj_run_step(run, bad_calls_step, &wrong), AJ_EMISUSE); /* the run has finished */
    (void)stage_outside_step;
    aj_run_free(run);
    aj_workflow_free(empty);
    aj_workflow_free(wf);
    aj_store_free(s);
    if (wrong)
        fail_msg("%d bad inputs got another code than expected (listed above)", wrong);
}

/* ---------------------------------------------------------------------------------------
 * the list
 * ------------------------------------------------------------------------------------- */

#define T(name) cmocka_unit_test_setup_teardown(name, fresh_db_setup, fresh_db_teardown)

int main(int argc, char **argv)
{
    if (argc != 2 || (strcmp(argv[1], "sqlite") != 0 && strcmp(argv[1], "postgres") != 0)) {
        fprintf(stderr, "usage: %s sqlite|postgres\n", argv[0]);
        return 2;
    }
    g_db = strcmp(argv[1], "sqlite") == 0 ? DB_SQLITE : DB_POSTGRES;
    if (g_db == DB_POSTGRES && (!getenv("AJ_TEST_PG_URL") || !*getenv("AJ_TEST_PG_URL"))) {
        fprintf(stderr, "AJ_TEST_PG_URL is not set\n");
        printf("SUMMARY reliability c-recipes-postgres 0 1\n");
        return 1;
    }
    setvbuf(stdout, NULL, _IONBF, 0);
    const struct CMUnitTest common[] = {
        T(test_drain_past_a_refused_page),
        T(test_borrowed_drain_delivers_every_page),
        T(test_unknown_recovery_point_releases_the_lock),
        T(test_port_out_of_range_is_invalid),
        T(test_newer_schema_version_is_refused),
        T(test_dropped_tables_are_recreated),
        T(test_ack_inside_a_step_keeps_its_transaction),
        T(test_commit_inside_a_step_is_refused),
        T(test_rollback_inside_a_step_is_refused),
        T(test_huge_lock_timeout_keeps_the_lock),
        T(test_drain_with_a_huge_age_delivers_nothing_new),
        T(test_key_of_another_job_is_a_mismatch),
        T(test_passwords_never_reach_messages),
        T(test_arguments_of_70_uuids),
        T(test_arguments_of_1_mb),
        T(test_arguments_of_50_mb),
        T(test_bad_input_to_stores),
        T(test_bad_input_to_workflows_and_runs),
    };
    const struct CMUnitTest sqlite_only[] = {
        T(test_sqlite_open_waits_for_a_busy_writer),
        T(test_sqlite_concurrent_opens_all_succeed),
        T(test_sqlite_busy_message_names_the_single_writer),
    };
    const struct CMUnitTest pg_only[] = {
        T(test_pg_borrowed_survives_deallocate_all),
        T(test_pg_borrowed_survives_discard_all),
        T(test_pg_borrowed_unique_violation_is_locked),
        /* last: they restart the server */
        T(test_pg_owned_reconnects_after_immediate_shutdown_before_a_write),
        T(test_pg_owned_reconnects_after_immediate_shutdown_before_commit),
        T(test_pg_owned_reconnects_after_fast_shutdown),
        T(test_pg_lost_connection_mid_step_releases_lock),
    };
    size_t ncommon = sizeof common / sizeof common[0];
    const struct CMUnitTest *extra = g_db == DB_SQLITE ? sqlite_only : pg_only;
    size_t nextra = g_db == DB_SQLITE ? sizeof sqlite_only / sizeof sqlite_only[0]
                                      : sizeof pg_only / sizeof pg_only[0];
    struct CMUnitTest tests[64];
    const char *filter = getenv("AJ_TEST_FILTER");
    size_t total = 0;
    for (size_t i = 0; i < ncommon + nextra; i++) {
        const struct CMUnitTest *t = i < ncommon ? &common[i] : &extra[i - ncommon];
        if (filter && *filter && fnmatch(filter, t->name, 0) != 0)
            continue;
        tests[total++] = *t;
    }
    char group[64];
    snprintf(group, sizeof group, "reliability-c/%s", argv[1]);
    int failed = _cmocka_run_group_tests(group, tests, total, harness_group_setup,
                                         harness_group_teardown);
    if (failed < 0 || (size_t)failed > total)
        failed = (int)total;
    printf("BAD-INPUTS c-%s %d\n", argv[1], bad_inputs_tried);
    printf("SUMMARY reliability c-recipes-%s %zu %d\n", argv[1], total - (size_t)failed, failed);
    return failed ? 1 : 0;
}
