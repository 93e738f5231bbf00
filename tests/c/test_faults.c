/* Faults from outside: the PostgreSQL server crashing in the middle of a step, the
 * application discarding the session's prepared statements, SQLite's one writer. */
#include "harness.h"
#include "tests.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

static void restart_server(const char *mode) {
    const char *dir = getenv("AJ_TEST_PG_DIR");
    if (!dir || !*dir) fail_msg("AJ_TEST_PG_DIR is not set: cannot restart the server");
    const char *root = getenv("AJ_TEST_ROOT");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "PG_STOP_MODE=%s \"%s/scripts/pg-server.sh\" restart \"%s\" >/dev/null",
             mode, root ? root : ".", dir);
    fflush(NULL);
    if (system(cmd) != 0) fail_msg("%s failed", cmd);
}

typedef struct crash {
    const char *at;   /* the step that crashes the server between two of its statements */
    const char *mode; /* pg_ctl stop mode */
} crash;

static int crashing_step(aj_run *run, const char *step, void *ctx) {
    crash *c = ctx;
    aj_store *s = aj_run_store(run);
    aj_value v = {.type = AJ_TEXT, .text = step, .len = strlen(step)};
    if (aj_store_exec(s, "INSERT INTO app_log (step) VALUES (?)", &v, 1, NULL) != AJ_OK)
        return 1;
    if (c->at && strcmp(step, c->at) == 0) {
        c->at = NULL;
        restart_server(c->mode);
        /* the step's connection is gone: its next statement fails */
        if (aj_store_exec(s, "INSERT INTO app_log (step) VALUES (?)", &v, 1, NULL) == AJ_OK)
            fail_msg("a statement succeeded on a connection the server cut");
        return 1;
    }
    return 0;
}

/* pg_ctl stop -m immediate (and -m fast) between two statements of a step: the step
 * fails, the failure is recorded once the server is back, and the same store runs the
 * next workflows without a restart of the process. */
void test_pg_crash_mid_step(void **state) {
    (void)state;
    const char *modes[] = {"immediate", "fast"};
    for (int m = 0; m < 2; m++) {
        aj_store *s = open_store();
        if (m == 0) create_app_table(s);
        aj_workflow *wf = make_wf("a", "b", "c", NULL);
        char key[16];
        snprintf(key, sizeof key, "crash-%d", m);
        aj_run_params p = AJ_RUN_PARAMS_INIT;
        p.key = key;
        p.job_name = "TestJob";
        aj_run *run = NULL;
        assert_aj(aj_run_new(&run, s, wf, &p), AJ_OK);
        crash c = {"b", modes[m]};
        int rc = aj_run_execute(run, crashing_step, &c);
        assert_aj(rc, AJ_ESTEP);
        aj_run_free(run);
        /* the next runs on the same store just work */
        for (int attempt = 0; attempt < 2; attempt++) {
            assert_aj(aj_run_new(&run, s, wf, &p), AJ_OK);
            crash none = {NULL, NULL};
            rc = aj_run_execute(run, crashing_step, &none);
            if (rc == AJ_OK) break;
            /* the failure record may not have made it (the server was still starting):
             * then the lock is ours until it expires; nothing else is acceptable */
            assert_aj(rc, AJ_ELOCKED);
            aj_run_free(run);
            run = NULL;
            q_exec(s, "UPDATE acidic_job_keys SET locked_at = NULL WHERE idempotency_key = ?",
                   key, NULL);
        }
        assert_int_equal(aj_run_status(run), AJ_RUN_SUCCEEDED);
        aj_run_free(run);
        /* a, b, c exactly once per run: b's first write died with the server */
        assert_int_equal(app_rows(s, "a"), m + 1);
        assert_int_equal(app_rows(s, "b"), m + 1);
        assert_int_equal(app_rows(s, "c"), m + 1);
        aj_workflow_free(wf);
        aj_store_free(s);
    }
}

/* The server restarts between two steps, immediately: the next step reconnects. */
void test_pg_crash_between_steps(void **state) {
    (void)state;
    aj_store *s = open_store();
    aj_workflow *wf = make_wf("a", "b", NULL);
    aj_run *run = acquire_ok(s, wf, "k", NULL);
    script sc = {0};
    assert_aj(aj_run_step(run, script_step, &sc), AJ_OK);
    restart_server("immediate");
    assert_aj(aj_run_step(run, script_step, &sc), AJ_OK);
    assert_int_equal(aj_run_status(run), AJ_RUN_SUCCEEDED);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* The application discards the session's prepared statements on an owned store
 * (DISCARD ALL through aj_store_exec): the core prepares them again. */
void test_pg_discard_all_owned(void **state) {
    (void)state;
    aj_store *s = open_store();
    aj_workflow *wf = make_wf("a", "b", NULL);
    for (int i = 0; i < 3; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        aj_run *run = acquire_ok(s, wf, key, NULL);
        assert_aj(aj_store_exec(s, "DISCARD ALL", NULL, 0, NULL), AJ_OK);
        script sc = {0};
        assert_aj(aj_run_execute(run, script_step, &sc), AJ_OK);
        aj_run_free(run);
    }
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* The host's hooks: BEGIN and COMMIT (or ROLLBACK) on the borrowed connection. */
static int plain_tx(void *ctx, aj_tx_body body, void *arg, int *committed) {
    PGconn *pg = ctx;
    PQclear(PQexec(pg, "BEGIN"));
    int rc = body(arg);
    PGresult *r = PQexec(pg, rc == 0 ? "COMMIT" : "ROLLBACK");
    *committed = rc == 0 && PQresultStatus(r) == PGRES_COMMAND_OK &&
                 strcmp(PQcmdStatus(r), "COMMIT") == 0;
    PQclear(r);
    return 0;
}

/* A borrowed connection whose driver deallocates everything, between runs and inside a
 * step (psycopg 3 after a rollback, a pooler's DISCARD ALL between clients). */
static int pg_tx(void *ctx, aj_tx_body body, void *arg, int *committed) {
    plain_tx(ctx, body, arg, committed);
    PQclear(PQexec((PGconn *)ctx, "DEALLOCATE ALL"));
    return 0;
}

static int deallocating_step(aj_run *run, const char *step, void *ctx) {
    (void)step;
    PQclear(PQexec(aj_store_pg(aj_run_store(run)), "DEALLOCATE ALL"));
    return ctx && strcmp(step, "b") == 0; /* fail b when asked */
}

void test_pg_borrowed_statements_discarded(void **state) {
    (void)state;
    aj_store *owner = open_store();
    PGconn *pg = PQconnectdb(test_pg_conninfo());
    assert_int_equal(PQstatus(pg), CONNECTION_OK);
    static const aj_host_tx hooks = {AJ_HOST_TX_VERSION, pg_tx, 0, 0, 0};
    aj_store *s = NULL;
    assert_aj(aj_store_borrow_pg(&s, pg, &hooks, pg, NULL), AJ_OK);
    aj_workflow *wf = make_wf("a", "b", NULL);
    for (int i = 0; i < 3; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        aj_run_params p = AJ_RUN_PARAMS_INIT;
        p.key = key;
        p.job_name = "TestJob";
        aj_run *run = NULL;
        assert_aj(aj_run_new(&run, s, wf, &p), AJ_OK);
        /* the first time, b fails: the failure record runs after a DEALLOCATE ALL */
        static int fail_b = 1;
        assert_aj(aj_run_execute(run, deallocating_step, i == 0 ? &fail_b : NULL),
                  i == 0 ? AJ_ESTEP : AJ_OK);
        aj_run_free(run);
        PQclear(PQexec(pg, "DISCARD ALL"));
    }
    assert_int_equal(q_int(owner, "SELECT COUNT(*) FROM acidic_job_keys WHERE idempotency_key ="
                                  " 'k0' AND locked_at IS NULL AND error_object IS NOT NULL",
                           NULL, NULL), 1);
    aj_workflow_free(wf);
    aj_store_free(s);
    PQfinish(pg);
    aj_store_free(owner);
}

/* On a borrowed connection the core's statements are prepared once per session (named),
 * each pipeline in a savepoint of its own: statements the application deallocates in the
 * middle of a step, a second store borrowing the same connection (its PREPAREs meet names
 * the session holds), and a transaction with more pipelines than there are savepoints to
 * spend, all run without a failed step and with each write exactly once. */
static int64_t named_statements(PGconn *pg) {
    PGresult *r = PQexec(pg, "SELECT COUNT(*) FROM pg_prepared_statements WHERE name LIKE 'aj\\_%'");
    int64_t n = PQresultStatus(r) == PGRES_TUPLES_OK ? atoll(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    return n;
}

static int writing_step(aj_run *run, const char *step, void *ctx) {
    int *mode = ctx;
    aj_store *s = aj_run_store(run);
    aj_value v = {.type = AJ_TEXT, .text = step, .len = strlen(step)};
    if (aj_store_exec(s, "INSERT INTO app_log (step) VALUES (?)", &v, 1, NULL) != AJ_OK)
        return 1;
    if (*mode == 1) /* the application's driver drops every statement mid-step */
        PQclear(PQexec(aj_store_pg(s), "DEALLOCATE ALL"));
    if (*mode == 2 && strcmp(step, "b") == 0) /* many pipelines in one transaction */
        for (int i = 0; i < 3 * 32; i++)
            if (aj_run_stage(run, "activejob", "StagedJob", "{}", 2, NULL) != AJ_OK ||
                aj_store_exec(s, "SELECT 1", NULL, 0, NULL) != AJ_OK)
                return 1;
    return 0;
}

void test_pg_borrowed_statements_named(void **state) {
    (void)state;
    aj_store *owner = open_store();
    create_app_table(owner);
    PGconn *pg = PQconnectdb(test_pg_conninfo());
    assert_int_equal(PQstatus(pg), CONNECTION_OK);
    static const aj_host_tx hooks = {AJ_HOST_TX_VERSION, plain_tx, 0, 0, 0};
    aj_store *s = NULL, *twin = NULL;
    assert_aj(aj_store_borrow_pg(&s, pg, &hooks, pg, NULL), AJ_OK);
    assert_aj(aj_store_borrow_pg(&twin, pg, &hooks, pg, NULL), AJ_OK);
    aj_workflow *wf = make_wf("a", "b", NULL);
    /* mode 0: plain runs; 1: DEALLOCATE ALL in each step; 0 on the twin store; 2 */
    const int modes[] = {0, 0, 1, 1, 0, 2};
    int64_t runs = 0;
    for (int i = 0; i < 6; i++) {
        char key[16];
        snprintf(key, sizeof key, "named-%d", i);
        aj_run_params p = AJ_RUN_PARAMS_INIT;
        p.key = key;
        p.job_name = "TestJob";
        aj_run *run = NULL;
        int mode = modes[i];
        assert_aj(aj_run_new(&run, i == 4 ? twin : s, wf, &p), AJ_OK);
        assert_aj(aj_run_execute(run, writing_step, &mode), AJ_OK);
        assert_int_equal(aj_run_status(run), AJ_RUN_SUCCEEDED);
        aj_run_free(run);
        runs++;
        if (i == 1)
            assert_true(named_statements(pg) >= 3); /* the core's statements are prepared */
        assert_int_equal(app_rows(owner, "a"), runs);
        assert_int_equal(app_rows(owner, "b"), runs);
        assert_int_equal(PQtransactionStatus(pg), PQTRANS_IDLE);
    }
    assert_int_equal(q_int(owner, "SELECT COUNT(*) FROM acidic_job_keys WHERE recovery_point"
                                  " = 'FINISHED' AND error_object IS NULL", NULL, NULL), 6);
    assert_int_equal(q_int(owner, "SELECT COUNT(*) FROM staged_acidic_jobs", NULL, NULL), 96);
    aj_workflow_free(wf);
    aj_store_free(twin);
    aj_store_free(s);
    PQfinish(pg);
    aj_store_free(owner);
}

/* ---- SQLite: one writer, held only while a step writes ------------------------- */

typedef struct slow {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int other_done;
    int other_rc;
    int seen_done; /* the other workflow had finished when "wait" went on to write */
} slow;

/* Step "wait" writes nothing until the other workflow has committed a whole step on
 * the same file (or 5 s have passed). */
static int waiting_step(aj_run *run, const char *step, void *ctx) {
    slow *w = ctx;
    if (strcmp(step, "wait") == 0) {
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 5;
        pthread_mutex_lock(&w->mu);
        while (!w->other_done && pthread_cond_timedwait(&w->cv, &w->mu, &deadline) == 0) {
        }
        w->seen_done = w->other_done;
        pthread_mutex_unlock(&w->mu);
    }
    aj_value v = {.type = AJ_TEXT, .text = step, .len = strlen(step)};
    return aj_store_exec(aj_run_store(run), "INSERT INTO app_log (step) VALUES (?)", &v, 1,
                         NULL) != AJ_OK;
}

static void *other_workflow(void *arg) {
    slow *w = arg;
    aj_store *s = NULL;
    int rc = aj_store_open(&s, test_url(), NULL);
    if (rc == AJ_OK) {
        aj_workflow *wf = NULL;
        aj_workflow_new(&wf);
        aj_workflow_add_step(wf, "quick", NULL, 0);
        aj_run_params p = AJ_RUN_PARAMS_INIT;
        p.key = "other";
        p.job_name = "TestJob";
        aj_run *run = NULL;
        if ((rc = aj_run_new(&run, s, wf, &p)) == AJ_OK)
            rc = aj_run_execute(run, waiting_step, w);
        aj_run_free(run);
        aj_workflow_free(wf);
        aj_store_free(s);
    }
    pthread_mutex_lock(&w->mu);
    w->other_done = 1;
    w->other_rc = rc;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

void test_sqlite_write_lock_held_late(void **state) {
    (void)state;
    aj_store *s = open_store();
    create_app_table(s);
    aj_workflow *wf = make_wf("first", "wait", NULL);
    aj_run *run = acquire_ok(s, wf, "slow", NULL);
    slow w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, -1, 0};
    script sc = {0};
    assert_aj(aj_run_step(run, script_step, &sc), AJ_OK); /* now at "wait" */
    pthread_t t;
    /* The other workflow runs while this one's step "wait" is inside its callback. */
    assert_int_equal(pthread_create(&t, NULL, other_workflow, &w), 0);
    assert_aj(aj_run_step(run, waiting_step, &w), AJ_OK);
    pthread_join(t, NULL);
    /* it committed while "wait" was running, not after: the step held no lock */
    assert_int_equal(w.seen_done, 1);
    assert_aj(w.other_rc, AJ_OK);
    assert_int_equal(app_rows(s, "quick"), 1);
    assert_int_equal(app_rows(s, "wait"), 1);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
}

typedef struct rival {
    int calls;
    int rival_rc;
} rival;

static int rival_step(aj_run *run, const char *step, void *ctx) {
    (void)ctx;
    aj_value v = {.type = AJ_TEXT, .text = "rival", .len = 5};
    (void)step;
    return aj_store_exec(aj_run_store(run), "INSERT INTO app_log (step) VALUES (?)", &v, 1, NULL);
}

/* While the first step of a new run is in its callback (before it writes), another worker
 * creates and finishes a run of the same key. */
static int raced_step(aj_run *run, const char *step, void *ctx) {
    rival *r = ctx;
    if (r->calls++ == 0) {
        aj_store *other = open_store();
        aj_workflow *wf = make_wf("a", NULL);
        aj_run_params p = AJ_RUN_PARAMS_INIT;
        p.key = "contested";
        p.job_name = "TestJob";
        aj_run *o = NULL;
        r->rival_rc = aj_run_new(&o, other, wf, &p);
        if (r->rival_rc == AJ_OK) r->rival_rc = aj_run_execute(o, rival_step, NULL);
        aj_run_free(o);
        aj_workflow_free(wf);
        aj_store_free(other);
    }
    aj_value v = {.type = AJ_TEXT, .text = step, .len = strlen(step)};
    return aj_store_exec(aj_run_store(run), "INSERT INTO app_log (step) VALUES (?)", &v, 1, NULL);
}

/* SQLite writes a new run's row at the end of its first step: when a rival created the key
 * meanwhile, the step is told (AJ_ELOCKED), its writes are rolled back and the rival's run
 * is left as it was. */
void test_sqlite_key_created_during_first_step(void **state) {
    (void)state;
    aj_store *s = open_store();
    create_app_table(s);
    aj_workflow *wf = make_wf("a", "b", NULL);
    aj_run_params p = AJ_RUN_PARAMS_INIT;
    p.key = "contested";
    p.job_name = "TestJob";
    aj_run *run = NULL;
    assert_aj(aj_run_new(&run, s, wf, &p), AJ_OK);
    rival r = {0, -1};
    assert_aj(aj_run_step(run, raced_step, &r), AJ_ELOCKED);
    assert_aj(r.rival_rc, AJ_OK);
    assert_int_equal(app_rows(s, "rival"), 1);
    assert_int_equal(app_rows(s, "a"), 0);
    assert_int_equal(count_rows(s, "acidic_job_keys"), 1);
    char *rp = key_recovery_point(s, "contested");
    assert_string_equal(rp, "FINISHED");
    free(rp);
    assert_int_equal(key_locked(s, "contested"), 0);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* ---- a borrowed connection cut by the server ------------------------------------ */

/* The application's side, the way a C application writes it (and the way ActiveRecord
 * and psycopg behave): a connection found dead is reset before the next BEGIN; a body
 * that failed is rolled back when a transaction is still open. */
typedef struct cut_host {
    PGconn *pg;
    aj_store *owner; /* a second connection, to cut the borrowed one from outside */
    const char *cut_at; /* the step during which the server cuts the connection */
    const char *how;    /* "terminate" (pg_terminate_backend) or a pg_ctl stop mode */
    int resets, failed_sync;
} cut_host;

static int cut_tx(void *ctx, aj_tx_body body, void *arg, int *committed) {
    cut_host *h = ctx;
    *committed = 0;
    if (PQstatus(h->pg) == CONNECTION_BAD) {
        h->resets++;
        PQreset(h->pg);
    }
    PGresult *r = PQexec(h->pg, "BEGIN");
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok) {
        h->failed_sync += PQpipelineStatus(h->pg) != PQ_PIPELINE_OFF;
        return aj_error_report(AJ_EDATABASE, "host BEGIN failed");
    }
    if (body(arg) != 0) {
        h->failed_sync += PQpipelineStatus(h->pg) != PQ_PIPELINE_OFF;
        if (PQtransactionStatus(h->pg) == PQTRANS_INTRANS ||
            PQtransactionStatus(h->pg) == PQTRANS_INERROR)
            PQclear(PQexec(h->pg, "ROLLBACK"));
        return 0;
    }
    r = PQexec(h->pg, "COMMIT");
    ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok)
        return aj_error_report(AJ_EDATABASE, "host COMMIT failed");
    *committed = 1;
    return 0;
}

static void *terminate_later(void *arg) {
    cut_host *h = arg;
    usleep(300 * 1000);
    char pid[16];
    snprintf(pid, sizeof pid, "%d", PQbackendPID(h->pg));
    aj_store *s = open_store();
    q_exec(s, "SELECT pg_terminate_backend(CAST(? AS integer))", pid, NULL);
    aj_store_free(s);
    return NULL;
}

static int cutting_step(aj_run *run, const char *step, void *ctx) {
    cut_host *h = ctx;
    if (!h->cut_at || strcmp(step, h->cut_at) != 0)
        return 0;
    h->cut_at = NULL;
    if (strcmp(h->how, "during") == 0) {
        /* the server ends the backend while the core's pipeline waits for a statement */
        pthread_t t;
        pthread_create(&t, NULL, terminate_later, h);
        aj_store_exec(aj_run_store(run), "SELECT pg_sleep(2)", NULL, 0, NULL);
        pthread_join(t, NULL);
        assert_int_equal(PQpipelineStatus(h->pg), PQ_PIPELINE_OFF);
        assert_int_equal(PQstatus(h->pg), CONNECTION_BAD);
    } else if (strcmp(h->how, "terminate") == 0) {
        char pid[16];
        snprintf(pid, sizeof pid, "%d", PQbackendPID(h->pg));
        /* returns once the backend has been signalled; wait until it is gone */
        q_exec(h->owner, "SELECT pg_terminate_backend(CAST(? AS integer), 5000)", pid, NULL);
    } else {
        restart_server(h->how);
    }
    (void)run;
    return 0; /* the core's next statements meet the cut connection */
}

/* The server cuts a borrowed connection in the middle of a step, so the core's own
 * pipeline meets a dead socket: the core hands the connection back out of pipeline mode
 * (the host's ROLLBACK, BEGIN and PQreset work on it), and after the host's reset the
 * same borrowed store finishes the run. */
void test_pg_borrowed_connection_cut(void **state) {
    (void)state;
    const char *hows[] = {"during", "during", "terminate", "immediate", "terminate", "fast"};
    const char *ats[] = {"a", "c", "b", "a", "c", "b"};
    for (int m = 0; m < 6; m++) {
        cut_host h = {0};
        h.owner = open_store();
        h.pg = PQconnectdb(test_pg_conninfo());
        assert_int_equal(PQstatus(h.pg), CONNECTION_OK);
        static const aj_host_tx hooks = {AJ_HOST_TX_VERSION, cut_tx, 0, 0, 0};
        aj_store *s = NULL;
        assert_aj(aj_store_borrow_pg(&s, h.pg, &hooks, &h, NULL), AJ_OK);
        aj_workflow *wf = make_wf("a", "b", "c", NULL);
        char key[16];
        snprintf(key, sizeof key, "cut-%d", m);
        aj_run_params p = AJ_RUN_PARAMS_INIT;
        p.key = key;
        p.job_name = "TestJob";
        h.cut_at = ats[m];
        h.how = hows[m];
        aj_run *run = NULL;
        assert_aj(aj_run_new(&run, s, wf, &p), AJ_OK);
        int rc = aj_run_execute(run, cutting_step, &h);
        assert_true(rc != AJ_OK);
        aj_run_free(run);
        assert_int_equal(PQpipelineStatus(h.pg), PQ_PIPELINE_OFF);
        assert_int_equal(h.failed_sync, 0);
        int done = 0;
        for (int attempt = 0; attempt < 6 && !done; attempt++) {
            run = NULL;
            rc = aj_run_new(&run, s, wf, &p);
            if (rc == AJ_OK)
                rc = aj_run_execute(run, cutting_step, &h);
            if (rc == AJ_OK) {
                assert_int_equal(aj_run_status(run), AJ_RUN_SUCCEEDED);
                done = 1;
            } else if (rc == AJ_ELOCKED) {
                /* the failure record died with the connection: the lock is the dead
                 * worker's until it expires; stand in for the expiry */
                q_exec(h.owner, "UPDATE acidic_job_keys SET locked_at = NULL WHERE"
                                " idempotency_key = ?", key, NULL);
            } else {
                assert_int_equal(PQpipelineStatus(h.pg), PQ_PIPELINE_OFF);
                usleep(200 * 1000); /* the server may still be starting */
            }
            aj_run_free(run);
        }
        assert_true(done);
        assert_true(h.resets >= 1);
        assert_int_equal(h.failed_sync, 0);
        aj_workflow_free(wf);
        aj_store_free(s);
        PQfinish(h.pg);
        aj_store_free(h.owner);
    }
}

/* The same, at random moments: a thread ends the borrowed connection's backend every few
 * milliseconds while runs whose steps fail a statement go on (a failed statement widens
 * the moment between a statement's answer and the sync's, the one a fast shutdown hit in
 * the fault suite). Whenever the host gets its connection back, it is out of pipeline mode
 * or visibly lost (CONNECTION_BAD), never stuck in between; afterwards a run finishes. */
typedef struct cutter {
    cut_host *h;
    volatile int pid; /* the borrowed connection's backend; 0 while it is being reset */
    volatile int stop;
    int cuts;
} cutter;

static void *cut_repeatedly(void *arg) {
    cutter *k = arg;
    aj_store *s = open_store();
    unsigned seed = 7;
    while (!k->stop && k->cuts < 150) {
        usleep(2000 + (unsigned)(rand_r(&seed) % 12000));
        int pid = k->pid;
        if (!pid)
            continue;
        char p[16];
        snprintf(p, sizeof p, "%d", pid);
        if (q_int(s, "SELECT CAST(pg_terminate_backend(CAST(? AS integer)) AS integer)", p,
                  NULL) == 1)
            k->cuts++;
    }
    aj_store_free(s);
    return NULL;
}

static cutter *g_cutter;

static int failing_statement_step(aj_run *run, const char *step, void *ctx) {
    (void)ctx;
    aj_store *s = aj_run_store(run);
    if (strcmp(step, "a") == 0)
        return aj_store_exec(s, "SELECT 1 / 0", NULL, 0, NULL) == AJ_OK; /* fails: retried */
    aj_value v = {.type = AJ_TEXT, .text = step, .len = strlen(step)};
    return aj_store_exec(s, "INSERT INTO app_log (step) VALUES (?)", &v, 1, NULL) != AJ_OK;
}

static int cut_tx_tracking(void *ctx, aj_tx_body body, void *arg, int *committed) {
    cut_host *h = ctx;
    if (PQstatus(h->pg) == CONNECTION_BAD) {
        g_cutter->pid = 0;
        int rc = cut_tx(ctx, body, arg, committed);
        g_cutter->pid = PQstatus(h->pg) == CONNECTION_OK ? PQbackendPID(h->pg) : 0;
        return rc;
    }
    h->failed_sync += PQpipelineStatus(h->pg) != PQ_PIPELINE_OFF;
    return cut_tx(ctx, body, arg, committed);
}

void test_pg_borrowed_connection_cut_anywhere(void **state) {
    (void)state;
    cut_host h = {0};
    h.owner = open_store();
    create_app_table(h.owner);
    h.pg = PQconnectdb(test_pg_conninfo());
    assert_int_equal(PQstatus(h.pg), CONNECTION_OK);
    PQclear(PQexec(h.pg, "SET client_min_messages = error"));
    static const aj_host_tx hooks = {AJ_HOST_TX_VERSION, cut_tx_tracking, 0, 0, 0};
    aj_store *s = NULL;
    aj_options o = AJ_OPTIONS_INIT;
    o.lock_timeout_ms = 1; /* a run whose failure record was lost is taken over at once */
    assert_aj(aj_store_borrow_pg(&s, h.pg, &hooks, &h, &o), AJ_OK);
    aj_workflow *wf = make_wf("a", "b", NULL);
    cutter k = {.h = &h, .pid = PQbackendPID(h.pg)};
    g_cutter = &k;
    pthread_t t;
    pthread_create(&t, NULL, cut_repeatedly, &k);
    int runs = 0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do {
        char key[24];
        snprintf(key, sizeof key, "any-%d", runs++ % 20);
        aj_run_params p = AJ_RUN_PARAMS_INIT;
        p.key = key;
        p.job_name = "TestJob";
        aj_run *run = NULL;
        if (aj_run_new(&run, s, wf, &p) == AJ_OK)
            aj_run_execute(run, failing_statement_step, NULL);
        aj_run_free(run);
        /* the host's view once the core handed the connection back */
        assert_true(PQpipelineStatus(h.pg) == PQ_PIPELINE_OFF || PQstatus(h.pg) == CONNECTION_BAD);
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (k.cuts < 150 && now.tv_sec - start.tv_sec < 20);
    k.stop = 1;
    pthread_join(t, NULL);
    /* A cut that landed as the cutter stopped shows at the next statement: the host
     * reconnects before the run below, as it does after any cut it has seen. */
    PQclear(PQexec(h.pg, "SELECT 1"));
    assert_int_equal(h.failed_sync, 0);
    assert_true(k.cuts >= 20);
    if (getenv("AJ_TEST_VERBOSE"))
        printf("%d cuts over %d runs\n", k.cuts, runs);
    /* and the connection still serves: a run with no failing step finishes */
    aj_workflow *ok = make_wf("b", NULL);
    aj_run_params p = AJ_RUN_PARAMS_INIT;
    p.key = "after-the-cuts";
    p.job_name = "TestJob";
    aj_run *run = NULL;
    assert_aj(aj_run_new(&run, s, ok, &p), AJ_OK);
    assert_aj(aj_run_execute(run, failing_statement_step, NULL), AJ_OK);
    aj_run_free(run);
    aj_workflow_free(ok);
    aj_workflow_free(wf);
    aj_store_free(s);
    PQfinish(h.pg);
    aj_store_free(h.owner);
}
