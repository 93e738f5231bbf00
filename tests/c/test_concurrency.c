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

/* PostgreSQL: a serialization failure reaches the caller as AJ_ECONFLICT. Two borrowed
 * connections in SERIALIZABLE transactions: the second took its snapshot before the
 * first created the key, so its own creation of the same key cannot be serialized.
 * (Owned stores retry this a bounded number of times, see test_race_acquire_new_key;
 * a borrowed transaction is the application's to retry.) */
void test_pg_serialization_conflict(void **state)
{
    (void)state;
    aj_store *owner = open_store(); /* the schema */
    PGconn *c1 = PQconnectdb(test_pg_conninfo()), *c2 = PQconnectdb(test_pg_conninfo());
    assert_int_equal(PQstatus(c1), CONNECTION_OK);
    assert_int_equal(PQstatus(c2), CONNECTION_OK);
    aj_store *s1, *s2;
    assert_int_equal(aj_store_borrow_pg(&s1, c1, NULL), AJ_OK);
    assert_int_equal(aj_store_borrow_pg(&s2, c2, NULL), AJ_OK);
    aj_workflow *wf = make_wf("a", NULL);
    aj_run_params p = {"contended", "TestJob", "[1]", 3, NULL, 0};

    PQclear(PQexec(c2, "BEGIN ISOLATION LEVEL SERIALIZABLE"));
    PQclear(PQexec(c2, "SELECT count(*) FROM acidic_job_keys")); /* c2's snapshot */
    PQclear(PQexec(c1, "BEGIN ISOLATION LEVEL SERIALIZABLE"));
    aj_run *r1, *r2 = NULL;
    assert_int_equal(aj_run_acquire(&r1, s1, wf, &p), AJ_OK);
    PGresult *res = PQexec(c1, "COMMIT");
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    assert_int_equal(aj_store_settle(s1, 1), AJ_OK);

    assert_int_equal(aj_run_acquire(&r2, s2, wf, &p), AJ_ECONFLICT);
    assert_null(r2);
    assert_non_null(strstr(aj_error_last()->message, "40001"));
    PQclear(PQexec(c2, "ROLLBACK"));
    assert_int_equal(aj_store_settle(s2, 0), AJ_OK);

    /* Retried in a new transaction, it sees the first run: locked. */
    PQclear(PQexec(c2, "BEGIN"));
    assert_int_equal(aj_run_acquire(&r2, s2, wf, &p), AJ_ELOCKED);
    PQclear(PQexec(c2, "ROLLBACK"));

    aj_run_free(r1);
    aj_workflow_free(wf);
    aj_store_free(s1);
    aj_store_free(s2);
    PQfinish(c1);
    PQfinish(c2);
    aj_store_free(owner);
}
