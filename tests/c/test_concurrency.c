/* Several processes at once: one winner per key; a batch completes exactly once. */
#include "harness.h"
#include "tests.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

aj_workflow *await_wf(void);

/* N processes acquire one new key at the same moment: exactly one wins. */
void test_race_acquire_new_key(void **state) {
    (void)state;
    enum { N = 6 };
    /* the schema exists before the race (a race on migrations is tested elsewhere) */
    aj_store *s = open_store();
    barrier b;
    barrier_init(&b);
    int pids[N];
    for (int i = 0; i < N; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            /* a child: no cmocka assertions here; report through the exit status */
            aj_store *cs = NULL;
            if (aj_store_open(&cs, test_url(), NULL) != AJ_OK) _exit(10);
            aj_workflow *wf = NULL;
            if (aj_workflow_new(&wf) || aj_workflow_add_step(wf, "a", NULL, 0)) _exit(11);
            barrier_wait(&b);
            aj_run *run = NULL;
            int rc = acquire(&run, cs, wf, "race", "[1]");
            int status;
            if (rc == AJ_OK && aj_run_status(run) == AJ_RUN_READY) status = 0;
            else if (rc == AJ_ELOCKED) status = 1;
            else {
                fprintf(stderr, "child: %s: %s\n", aj_code_name(rc), aj_error_last()->message);
                status = 12;
            }
            aj_run_free(run);
            aj_workflow_free(wf);
            aj_store_free(cs);
            _exit(status);
        }
    }
    barrier_release(&b);
    int winners = 0, locked = 0;
    for (int i = 0; i < N; i++) {
        int st = wait_child(pids[i]);
        if (st == 0) winners++;
        else if (st == 1) locked++;
        else fail_msg("child %d exited with %d", i, st);
    }
    assert_int_equal(winners, 1);
    assert_int_equal(locked, N - 1);
    assert_int_equal(count_rows(s, "acidic_job_keys"), 1);
    assert_int_equal(key_locked(s, "race"), 1);
    aj_store_free(s);
}

/* The children of a batch are acknowledged from several processes at once, each
 * acknowledging every child (so duplicates race too): one continuation. */
void test_race_batch_countdown(void **state) {
    (void)state;
    enum { K = 8, P = 4 };
    aj_store *s = open_store();
    aj_workflow *wf = await_wf();
    aj_run *run = acquire_ok(s, wf, "k", NULL);
    script sc = {.await_at = "fan_out", .n_await = K};
    assert_aj(aj_run_step(run, script_step, &sc), AJ_OK);
    assert_int_equal(sc.api_rc, AJ_OK);
    assert_aj(aj_run_status(run), AJ_RUN_AWAITING);
    aj_run_free(run);
    assert_int_equal(sc.nids, K);

    int fds[2];
    assert_int_equal(pipe(fds), 0);
    barrier b;
    barrier_init(&b);
    int pids[P];
    for (int p = 0; p < P; p++) {
        pids[p] = fork();
        assert_true(pids[p] >= 0);
        if (pids[p] == 0) {
            close(fds[0]);
            aj_store *cs = NULL;
            if (aj_store_open(&cs, test_url(), NULL) != AJ_OK) _exit(10);
            barrier_wait(&b);
            int completions = 0;
            for (int i = 0; i < K; i++) {
                /* each process walks the children in its own order */
                int idx = (p % 2 == 0) ? (i + p) % K : (K - 1 - i + p) % K;
                int completed = 0;
                int rc;
                int tries = 0;
                do {
                    rc = aj_staged_ack(cs, sc.ids[idx], &completed);
                } while (rc == AJ_ECONFLICT && ++tries < 50);
                if (rc != AJ_OK) {
                    fprintf(stderr, "child ack: %s: %s\n", aj_code_name(rc),
                            aj_error_last()->message);
                    _exit(12);
                }
                completions += completed;
            }
            aj_store_free(cs);
            char c = (char)completions;
            if (write(fds[1], &c, 1) != 1) _exit(13);
            _exit(0);
        }
    }
    close(fds[1]);
    barrier_release(&b);
    for (int p = 0; p < P; p++) assert_int_equal(wait_child(pids[p]), 0);
    int total = 0;
    char c;
    int reports = 0;
    while (read(fds[0], &c, 1) == 1) {
        total += c;
        reports++;
    }
    close(fds[0]);
    assert_int_equal(reports, P);
    assert_int_equal(total, 1);
    assert_int_equal(count_rows(s, "acidic_job_batches"), 0);
    assert_int_equal(count_rows(s, "staged_acidic_jobs"), 1);
    assert_int_equal(q_int(s, "SELECT COUNT(*) FROM staged_acidic_jobs WHERE job_name = 'ContinueJob'",
                           NULL, NULL),
                     1);
    run = acquire_ok(s, wf, "k", NULL);
    assert_aj(aj_run_status(run), AJ_RUN_READY);
    assert_string_equal(aj_run_recovery_point(run), "fan_in");
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* Two workers take turns on distinct keys at once: nothing is lost or doubled. */
void test_race_many_keys(void **state) {
    (void)state;
    enum { P = 3, KEYS = 10 };
    aj_store *s = open_store();
    create_app_table(s);
    barrier b;
    barrier_init(&b);
    int pids[P];
    for (int p = 0; p < P; p++) {
        pids[p] = fork();
        assert_true(pids[p] >= 0);
        if (pids[p] == 0) {
            aj_store *cs = NULL;
            if (aj_store_open(&cs, test_url(), NULL) != AJ_OK) _exit(10);
            aj_workflow *wf = NULL;
            if (aj_workflow_new(&wf) || aj_workflow_add_step(wf, "a", NULL, 0) ||
                aj_workflow_add_step(wf, "b", NULL, 0))
                _exit(11);
            barrier_wait(&b);
            for (int k = 0; k < KEYS; k++) {
                char key[32];
                snprintf(key, sizeof key, "key-%d", k);
                aj_run *run = NULL;
                int rc = acquire(&run, cs, wf, key, NULL);
                if (rc == AJ_ELOCKED) continue;
                if (rc != AJ_OK) {
                    fprintf(stderr, "acquire: %s: %s\n", aj_code_name(rc), aj_error_last()->message);
                    _exit(12);
                }
                script sc = {.write_app = 1};
                rc = aj_run_execute(run, script_step, &sc);
                if (rc != AJ_OK || sc.api_rc != AJ_OK) {
                    fprintf(stderr, "execute: %s: %s\n", aj_code_name(rc), aj_error_last()->message);
                    _exit(13);
                }
                aj_run_free(run);
            }
            aj_workflow_free(wf);
            aj_store_free(cs);
            _exit(0);
        }
    }
    barrier_release(&b);
    for (int p = 0; p < P; p++) assert_int_equal(wait_child(pids[p]), 0);
    /* every key ran each step exactly once, whoever ran it */
    assert_int_equal(count_rows(s, "acidic_job_keys"), KEYS);
    assert_int_equal(q_int(s, "SELECT COUNT(*) FROM acidic_job_keys WHERE recovery_point = 'FINISHED' "
                              "AND locked_at IS NULL",
                           NULL, NULL),
                     KEYS);
    assert_int_equal(app_rows(s, "a"), KEYS);
    assert_int_equal(app_rows(s, "b"), KEYS);
    aj_store_free(s);
}

/* PostgreSQL, borrowed connections in the application's own transactions (READ
 * COMMITTED, as psycopg and ActiveRecord open them, and SERIALIZABLE): processes that
 * create the same key at once never see a unique violation. The core serializes the
 * creators of a key (an advisory lock), so exactly one runs the step and the others
 * are told the key is locked. */
typedef struct child_tx {
    PGconn *pg;
    const char *begin;
} child_tx;

static int child_atomically(void *ctx, aj_tx_body body, void *arg, int *committed)
{
    child_tx *c = ctx;
    PQclear(PQexec(c->pg, c->begin));
    int rc = body(arg);
    PGresult *r = PQexec(c->pg, rc == 0 ? "COMMIT" : "ROLLBACK");
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK &&
             strcmp(PQcmdStatus(r), rc == 0 ? "COMMIT" : "ROLLBACK") == 0;
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    int conflict = state && !strcmp(state, "40001");
    PQclear(r);
    *committed = rc == 0 && ok;
    if (rc == 0 && !ok)
        return aj_error_report(conflict ? AJ_ECONFLICT : AJ_EDATABASE, "commit failed");
    return 0;
}

static int slow_step(aj_run *run, const char *step, void *ctx)
{
    (void)run;
    (void)step;
    (void)ctx;
    sleep_ms(150); /* everybody else arrives while the winner's step is open */
    return 0;
}

void test_pg_serialization_conflict(void **state)
{
    (void)state;
    enum { N = 6 };
    aj_store *owner = open_store(); /* the schema */
    static const aj_host_tx hooks = {AJ_HOST_TX_VERSION, child_atomically, 0, 0, 0};
    const char *levels[2] = {"BEGIN", "BEGIN ISOLATION LEVEL SERIALIZABLE"};
    for (int level = 0; level < 2; level++) {
        char key[32];
        snprintf(key, sizeof key, "contended-%d", level);
        barrier b;
        barrier_init(&b);
        int pids[N];
        for (int i = 0; i < N; i++) {
            pids[i] = fork();
            assert_true(pids[i] >= 0);
            if (pids[i] == 0) {
                PGconn *pg = PQconnectdb(test_pg_conninfo());
                if (PQstatus(pg) != CONNECTION_OK) _exit(10);
                child_tx c = {pg, levels[level]};
                aj_store *cs = NULL;
                if (aj_store_borrow_pg(&cs, pg, &hooks, &c, NULL) != AJ_OK) _exit(11);
                aj_workflow *wf = NULL;
                if (aj_workflow_new(&wf) || aj_workflow_add_step(wf, "a", NULL, 0)) _exit(11);
                aj_run_params p = AJ_RUN_PARAMS_INIT;
                p.key = key;
                p.job_name = "TestJob";
                p.args = "[1]";
                p.args_len = 3;
                aj_run *run = NULL;
                if (aj_run_new(&run, cs, wf, &p) != AJ_OK) _exit(11);
                barrier_wait(&b);
                int rc = aj_run_execute(run, slow_step, NULL);
                int status;
                if (rc == AJ_OK && aj_run_status(run) == AJ_RUN_SUCCEEDED) status = 0;
                else if (rc == AJ_ELOCKED) status = 1;
                else {
                    fprintf(stderr, "child: %s: %s\n", aj_code_name(rc), aj_error_last()->message);
                    status = 12;
                }
                aj_run_free(run);
                aj_workflow_free(wf);
                aj_store_free(cs);
                PQfinish(pg);
                _exit(status);
            }
        }
        barrier_release(&b);
        int winners = 0, locked = 0;
        for (int i = 0; i < N; i++) {
            int st = wait_child(pids[i]);
            if (st == 0) winners++;
            else if (st == 1) locked++;
            else fail_msg("%s: child %d exited with %d", levels[level], i, st);
        }
        /* one ran it; the others found it locked or, arriving later, finished */
        assert_true(winners >= 1);
        assert_int_equal(winners + locked, N);
        assert_int_equal(q_int(owner, "SELECT COUNT(*) FROM acidic_job_keys WHERE "
                                      "idempotency_key = ? AND recovery_point = 'FINISHED' AND "
                                      "attempts = 1", key, NULL), 1);
    }
    aj_store_free(owner);
}
