/* Acquiring runs and running their steps. */
#include "harness.h"
#include "tests.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void assert_text_eq(char *got, const char *want) {
    if (!got) fail_msg("expected \"%s\", got NULL", want);
    assert_string_equal(got, want);
    free(got);
}

void test_acquire_new(void **state) {
    (void)state;
    aj_store *s = open_store();
    aj_workflow *wf = make_wf("a", "b", NULL);
    aj_run_params p = {.version = AJ_RUN_PARAMS_VERSION, .key = "order-1", .job_name = "ChargeJob", .args = "[\"x\",2]",
                       .args_len = 7, .attributes = "{\"n\":0}", .attributes_len = 7};
    aj_run *run = NULL;
    assert_aj(aj_run_acquire(&run, s, wf, &p), AJ_OK);
    assert_non_null(run);
    assert_aj(aj_run_status(run), AJ_RUN_READY);
    assert_string_equal(aj_run_key(run), "order-1");
    assert_string_equal(aj_run_recovery_point(run), "a");
    assert_true(aj_run_id(run) > 0);
    assert_ptr_equal(aj_run_store(run), s);
    size_t len = 0;
    const char *attrs = aj_run_attributes(run, &len);
    assert_int_equal(len, 7);
    assert_memory_equal(attrs, "{\"n\":0}", 7);
    assert_null(aj_run_error(run, &len));
    assert_int_equal(len, 0);

    char id[32];
    snprintf(id, sizeof id, "%lld", (long long)aj_run_id(run));
    assert_int_equal(q_int(s, "SELECT COUNT(*) FROM acidic_job_keys WHERE CAST(id AS TEXT) = ? "
                              "AND job_name = 'ChargeJob' AND job_args = ? "
                              "AND locked_at IS NOT NULL AND last_run_at IS NOT NULL "
                              "AND error_object IS NULL",
                           id, "[\"x\",2]"),
                     1);
    assert_text_eq(key_recovery_point(s, "order-1"), "a");
    assert_text_eq(key_attributes(s, "order-1"), "{\"n\":0}");
    aj_run_free(run);

    /* arguments are optional; documents are stored verbatim, byte for byte */
    run = acquire_ok(s, wf, "order-2", NULL);
    assert_aj(aj_run_status(run), AJ_RUN_READY);
    aj_run_free(run);
    assert_int_equal(count_rows(s, "acidic_job_keys"), 2);
    aj_workflow_free(wf);
    aj_store_free(s);
}

void test_acquire_mismatch(void **state) {
    (void)state;
    aj_store *s = open_store();
    aj_workflow *wf = make_wf("a", NULL);
    aj_run *run = acquire_ok(s, wf, "k", "[1]");
    script sc = {0};
    assert_aj(aj_run_execute(run, script_step, &sc), AJ_OK);
    aj_run_free(run);

    run = (aj_run *)(uintptr_t)0x1;
    aj_error_clear();
    assert_aj(acquire(&run, s, wf, "k", "[2]"), AJ_EMISMATCH);
    assert_last_error(AJ_EMISMATCH);
    assert_ptr_equal(run, (aj_run *)(uintptr_t)0x1);
    assert_aj(acquire(&run, s, wf, "k", NULL), AJ_EMISMATCH);
    assert_aj(acquire(&run, s, wf, "k", "[1] "), AJ_EMISMATCH);
    assert_int_equal(count_rows(s, "acidic_job_keys"), 1);
    /* the same arguments still find the run */
    run = acquire_ok(s, wf, "k", "[1]");
    assert_aj(aj_run_status(run), AJ_RUN_SUCCEEDED);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
}

void test_acquire_locked(void **state) {
    (void)state;
    aj_store *s = open_store();
    aj_store *s2 = open_store();
    aj_workflow *wf = make_wf("a", "b", NULL);
    aj_run *run = acquire_ok(s, wf, "k", "[1]");
    aj_run *other = (aj_run *)(uintptr_t)0x1;
    aj_error_clear();
    assert_aj(acquire(&other, s2, wf, "k", "[1]"), AJ_ELOCKED);
    assert_last_error(AJ_ELOCKED);
    assert_ptr_equal(other, (aj_run *)(uintptr_t)0x1);
    /* also from the same store: a lock is a lock */
    assert_aj(acquire(&other, s, wf, "k", "[1]"), AJ_ELOCKED);
    /* a run freed while locked stays locked */
    aj_run_free(run);
    assert_int_equal(key_locked(s, "k"), 1);
    assert_aj(acquire(&other, s2, wf, "k", "[1]"), AJ_ELOCKED);
    aj_workflow_free(wf);
    aj_store_free(s2);
    aj_store_free(s);
}

void test_acquire_lock_timeout(void **state) {
    (void)state;
    aj_store *s = open_store();
    aj_store *fast = open_store_lock(50);
    aj_workflow *wf = make_wf("a", "b", NULL);
    aj_run *first = acquire_ok(s, wf, "k", NULL);
    sleep_ms(300); /* well past the 50 ms lock timeout of `fast` */
    /* the default 90 s timeout still considers it locked */
    aj_run *other = NULL;
    assert_aj(acquire(&other, s, wf, "k", NULL), AJ_ELOCKED);
    /* a store with a 50 ms timeout takes the run over */
    aj_run *second = acquire_ok(fast, wf, "k", NULL);
    assert_aj(aj_run_status(second), AJ_RUN_READY);
    assert_string_equal(aj_run_recovery_point(second), "a");
    /* the first worker lost its lock: its step commits nothing */
    create_app_table(s);
    script sc = {.write_app = 1};
    aj_error_clear();
    assert_aj(aj_run_step(first, script_step, &sc), AJ_ELOCKED);
    assert_last_error(AJ_ELOCKED);
    assert_int_equal(sc.ncalls, owned_claims_first() ? 0 : 1);
    assert_int_equal(app_rows(s, NULL), 0);
    sc.ncalls = 0;
    /* the new owner proceeds */
    assert_aj(aj_run_execute(second, script_step, &sc), AJ_OK);
    assert_string_equal(script_calls(&sc), "a,b");
    assert_aj(aj_run_status(second), AJ_RUN_SUCCEEDED);
    aj_run_free(first);
    aj_run_free(second);
    aj_workflow_free(wf);
    aj_store_free(fast);
    aj_store_free(s);
}

void test_acquire_finished(void **state) {
    (void)state;
    aj_store *s = open_store();
    create_app_table(s);
    aj_workflow *wf = make_wf("a", "b", NULL);
    aj_run *run = acquire_ok(s, wf, "k", "[1]");
    script sc = {.write_app = 1};
    assert_aj(aj_run_execute(run, script_step, &sc), AJ_OK);
    assert_aj(aj_run_status(run), AJ_RUN_SUCCEEDED);
    assert_string_equal(aj_run_recovery_point(run), AJ_RECOVERY_POINT_FINISHED);
    aj_run_free(run);
    assert_int_equal(key_locked(s, "k"), 0);
    assert_text_eq(key_recovery_point(s, "k"), "FINISHED");

    script again = {.write_app = 1};
    run = acquire_ok(s, wf, "k", "[1]");
    assert_aj(aj_run_status(run), AJ_RUN_SUCCEEDED);
    assert_int_equal(key_locked(s, "k"), 0); /* nothing locked */
    assert_aj(aj_run_execute(run, script_step, &again), AJ_OK);
    assert_int_equal(again.ncalls, 0);
    assert_aj(aj_run_status(run), AJ_RUN_SUCCEEDED);
    assert_int_equal(app_rows(s, NULL), 2);
    aj_run_free(run);

    /* a finished 0.7.0 row with an error recorded */
    q_exec(s, "UPDATE acidic_job_keys SET error_object = 'old error' WHERE idempotency_key = ?",
           "k", NULL);
    run = acquire_ok(s, wf, "k", "[1]");
    assert_aj(aj_run_status(run), AJ_RUN_FINISHED_FAILED);
    assert_aj(aj_run_execute(run, script_step, &again), AJ_OK);
    assert_int_equal(again.ncalls, 0);
    assert_int_equal(key_locked(s, "k"), 0);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
}

void test_steps_advance(void **state) {
    (void)state;
    aj_store *s = open_store();
    create_app_table(s);
    aj_workflow *wf = make_wf("a", "b", "c", NULL);
    aj_run *run = acquire_ok(s, wf, "k", NULL);
    script sc = {.write_app = 1};
    const char *expect[] = {"b", "c", "FINISHED"};
    for (int i = 0; i < 3; i++) {
        assert_aj(aj_run_step(run, script_step, &sc), AJ_OK);
        assert_int_equal(sc.api_rc, AJ_OK);
        assert_int_equal(sc.ncalls, i + 1);
        assert_string_equal(aj_run_recovery_point(run), expect[i]);
        assert_text_eq(key_recovery_point(s, "k"), expect[i]);
        assert_int_equal(app_rows(s, NULL), i + 1);
        assert_int_equal(aj_run_status(run), i < 2 ? AJ_RUN_READY : AJ_RUN_SUCCEEDED);
        assert_int_equal(key_locked(s, "k"), i < 2 ? 1 : 0);
    }
    assert_string_equal(script_calls(&sc), "a,b,c");
    /* stepping a finished run runs nothing */
    aj_run_step(run, script_step, &sc);
    assert_int_equal(sc.ncalls, 3);
    assert_aj(aj_run_status(run), AJ_RUN_SUCCEEDED);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
}

void test_step_failure_and_retry(void **state) {
    (void)state;
    aj_store *s = open_store();
    create_app_table(s);
    aj_workflow *wf = make_wf("a", "b", "c", NULL);
    aj_run *run = acquire_ok(s, wf, "k", "[1]");
    script sc = {.write_app = 1, .fail_at = "b", .error_doc = "{\"class\":\"Boom\"}",
                 .attrs_at = "b", .attrs_doc = "{\"in_b\":true}"};
    aj_error_clear();
    assert_aj(aj_run_execute(run, script_step, &sc), AJ_ESTEP);
    assert_last_error(AJ_ESTEP);
    assert_int_equal(sc.api_rc, AJ_OK);
    assert_string_equal(script_calls(&sc), "a,b");
    assert_aj(aj_run_status(run), AJ_RUN_FAILED);
    assert_string_equal(aj_run_recovery_point(run), "b");
    size_t len = 0;
    const char *err = aj_run_error(run, &len);
    assert_non_null(err);
    assert_int_equal(len, strlen("{\"class\":\"Boom\"}"));
    assert_memory_equal(err, "{\"class\":\"Boom\"}", len);
    /* b's own write was rolled back with it; a's is kept */
    assert_int_equal(app_rows(s, "a"), 1);
    assert_int_equal(app_rows(s, "b"), 0);
    /* the row: error recorded, still at b, unlocked, b's attributes not kept */
    assert_text_eq(key_recovery_point(s, "k"), "b");
    assert_text_eq(key_error(s, "k"), "{\"class\":\"Boom\"}");
    assert_int_equal(key_locked(s, "k"), 0);
    char *attrs = key_attributes(s, "k");
    assert_true(attrs == NULL || strstr(attrs, "in_b") == NULL);
    free(attrs);
    aj_run_free(run);

    /* the retry resumes at b and never reruns a */
    script retry = {.write_app = 1};
    run = acquire_ok(s, wf, "k", "[1]");
    assert_aj(aj_run_status(run), AJ_RUN_READY);
    assert_string_equal(aj_run_recovery_point(run), "b");
    assert_aj(aj_run_execute(run, script_step, &retry), AJ_OK);
    assert_string_equal(script_calls(&retry), "b,c");
    assert_aj(aj_run_status(run), AJ_RUN_SUCCEEDED);
    assert_int_equal(app_rows(s, "a"), 1);
    assert_int_equal(app_rows(s, "b"), 1);
    assert_int_equal(app_rows(s, "c"), 1);
    assert_int_equal(key_locked(s, "k"), 0);
    aj_run_free(run);

    /* a failure without an error document still unlocks and can be retried */
    run = acquire_ok(s, wf, "k2", NULL);
    script bare = {.fail_at = "a"};
    assert_aj(aj_run_step(run, script_step, &bare), AJ_ESTEP);
    assert_aj(aj_run_status(run), AJ_RUN_FAILED);
    assert_int_equal(key_locked(s, "k2"), 0);
    aj_run_free(run);
    run = acquire_ok(s, wf, "k2", NULL);
    assert_aj(aj_run_status(run), AJ_RUN_READY);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
}

void test_step_finish_early(void **state) {
    (void)state;
    aj_store *s = open_store();
    create_app_table(s);
    aj_workflow *wf = make_wf("a", "b", "c", NULL);
    aj_run *run = acquire_ok(s, wf, "k", NULL);
    script sc = {.write_app = 1, .finish_at = "a"};
    assert_aj(aj_run_execute(run, script_step, &sc), AJ_OK);
    assert_int_equal(sc.api_rc, AJ_OK);
    assert_string_equal(script_calls(&sc), "a");
    assert_aj(aj_run_status(run), AJ_RUN_SUCCEEDED);
    assert_string_equal(aj_run_recovery_point(run), "FINISHED");
    assert_text_eq(key_recovery_point(s, "k"), "FINISHED");
    assert_int_equal(key_locked(s, "k"), 0);
    assert_int_equal(app_rows(s, NULL), 1);
    /* finish outside a step is a misuse */
    assert_aj(aj_run_finish(run), AJ_EMISUSE);
    aj_run_free(run);

    /* a finish in a step that then fails does not finish */
    run = acquire_ok(s, wf, "k2", NULL);
    script f = {.finish_at = "a", .fail_at = "a"};
    assert_aj(aj_run_execute(run, script_step, &f), AJ_ESTEP);
    assert_text_eq(key_recovery_point(s, "k2"), "a");
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
}

void test_step_goto(void **state) {
    (void)state;
    aj_store *s = open_store();
    aj_workflow *wf = make_wf("a", "b", "c", NULL);
    aj_run *run = acquire_ok(s, wf, "k", NULL);
    script sc = {.goto_at = "a", .goto_to = "c"};
    assert_aj(aj_run_step(run, script_step, &sc), AJ_OK);
    assert_int_equal(sc.api_rc, AJ_OK);
    assert_string_equal(aj_run_recovery_point(run), "c");
    assert_text_eq(key_recovery_point(s, "k"), "c");
    assert_aj(aj_run_execute(run, script_step, &sc), AJ_OK);
    assert_string_equal(script_calls(&sc), "a,c");
    assert_aj(aj_run_status(run), AJ_RUN_SUCCEEDED);
    aj_run_free(run);

    /* jumping backwards works too (a loop the callback ends) */
    run = acquire_ok(s, wf, "k2", NULL);
    script back = {.goto_at = "b", .goto_to = "a"};
    assert_int_equal(aj_run_step(run, script_step, &back), AJ_OK); /* a */
    assert_int_equal(aj_run_step(run, script_step, &back), AJ_OK); /* b -> a */
    assert_string_equal(aj_run_recovery_point(run), "a");
    back.goto_at = NULL;
    assert_aj(aj_run_execute(run, script_step, &back), AJ_OK);
    assert_string_equal(script_calls(&back), "a,b,a,b,c");
    aj_run_free(run);

    /* an unknown step is refused at the call; the step then commits normally */
    run = acquire_ok(s, wf, "k3", NULL);
    script bad = {.goto_at = "a", .goto_to = "nope"};
    assert_aj(aj_run_step(run, script_step, &bad), AJ_OK);
    assert_int_equal(bad.api_rc, AJ_EUNKNOWN_RECOVERY_POINT);
    assert_string_equal(aj_run_recovery_point(run), "b");
    script bad2 = {.goto_at = "b", .goto_to = NULL};
    assert_aj(aj_run_step(run, script_step, &bad2), AJ_OK);
    assert_int_equal(bad2.api_rc, AJ_EINVALID);
    assert_string_equal(aj_run_recovery_point(run), "c");
    /* goto outside a step is a misuse */
    assert_aj(aj_run_goto(run, "a"), AJ_EMISUSE);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
}

void test_unknown_recovery_point(void **state) {
    (void)state;
    aj_store *s = open_store();
    aj_workflow *wf = make_wf("a", "b", NULL);
    /* a run that stopped at a step the workflow no longer has (renamed in a deploy) */
    aj_run *run = acquire_ok(s, wf, "k", NULL);
    script sc = {.fail_at = "a"};
    assert_aj(aj_run_step(run, script_step, &sc), AJ_ESTEP);
    aj_run_free(run);
    q_exec(s, "UPDATE acidic_job_keys SET recovery_point = 'nope' WHERE idempotency_key = ?",
           "k", NULL);
    assert_int_equal(key_locked(s, "k"), 0);

    /* acquiring it is refused, and the refusal is recorded on the run, unlocked */
    script none = {0};
    aj_error_clear();
    run = NULL;
    assert_aj(acquire(&run, s, wf, "k", NULL), AJ_EUNKNOWN_RECOVERY_POINT);
    assert_null(run);
    assert_non_null(strstr(aj_error_last()->message, "\"nope\""));
    assert_int_equal(none.ncalls, 0);
    assert_int_equal(key_locked(s, "k"), 0);
    assert_text_eq(key_recovery_point(s, "k"), "nope");
    char *err = key_error(s, "k");
    assert_non_null(err);
    assert_non_null(strstr(err, "AJ_EUNKNOWN_RECOVERY_POINT"));
    free(err);
    /* the same through aj_run_execute on a new run */
    aj_run_params p = AJ_RUN_PARAMS_INIT;
    p.key = "k";
    p.job_name = "TestJob";
    assert_aj(aj_run_new(&run, s, wf, &p), AJ_OK);
    assert_aj(aj_run_execute(run, script_step, &none), AJ_EUNKNOWN_RECOVERY_POINT);
    assert_int_equal(key_locked(s, "k"), 0);
    aj_run_free(run);

    /* the row changed under a run that holds the lock: the run is no longer ours */
    run = acquire_ok(s, wf, "k2", NULL);
    q_exec(s, "UPDATE acidic_job_keys SET recovery_point = 'nope' WHERE idempotency_key = ?",
           "k2", NULL);
    int rc = aj_run_step(run, script_step, &none);
    assert_aj(rc, AJ_ELOCKED);
    assert_int_equal(none.ncalls, owned_claims_first() ? 0 : 1);
    assert_text_eq(key_recovery_point(s, "k2"), "nope");
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
}

void test_attributes(void **state) {
    (void)state;
    aj_store *s = open_store();
    aj_workflow *wf = make_wf("a", "b", "c", NULL);
    aj_run *run = acquire_ok(s, wf, "k", NULL);
    size_t len = 99;
    assert_null(aj_run_attributes(run, &len));
    assert_int_equal(len, 0);

    /* set in a: committed with a */
    script sc = {.attrs_at = "a", .attrs_doc = "{\"ride\":7}"};
    assert_aj(aj_run_step(run, script_step, &sc), AJ_OK);
    assert_text_eq(key_attributes(s, "k"), "{\"ride\":7}");

    /* set in b, which fails: rolled back, in the row and in the run */
    script fail = {.attrs_at = "b", .attrs_doc = "{\"ride\":8}", .fail_at = "b"};
    assert_aj(aj_run_step(run, script_step, &fail), AJ_ESTEP);
    assert_text_eq(key_attributes(s, "k"), "{\"ride\":7}");
    const char *a = aj_run_attributes(run, &len);
    assert_non_null(a);
    assert_int_equal(len, strlen("{\"ride\":7}"));
    assert_memory_equal(a, "{\"ride\":7}", len);
    aj_run_free(run);

    /* visible after reacquiring */
    run = acquire_ok(s, wf, "k", NULL);
    a = aj_run_attributes(run, &len);
    assert_non_null(a);
    assert_int_equal(len, strlen("{\"ride\":7}"));
    assert_memory_equal(a, "{\"ride\":7}", len);

    /* set between steps: written by the next step */
    assert_aj(aj_run_set_attributes(run, "{\"ride\":9}", 10), AJ_OK);
    a = aj_run_attributes(run, &len);
    assert_int_equal(len, 10);
    assert_memory_equal(a, "{\"ride\":9}", len);
    script plain = {0};
    assert_aj(aj_run_step(run, script_step, &plain), AJ_OK);
    assert_string_equal(script_calls(&plain), "b");
    assert_text_eq(key_attributes(s, "k"), "{\"ride\":9}");

    /* the document is copied */
    char doc[16] = "{\"x\":1}";
    assert_aj(aj_run_set_attributes(run, doc, strlen(doc)), AJ_OK);
    memset(doc, 'Z', sizeof doc - 1);
    a = aj_run_attributes(run, &len);
    assert_int_equal(len, 7);
    assert_memory_equal(a, "{\"x\":1}", 7);
    assert_aj(aj_run_step(run, script_step, &plain), AJ_OK);
    assert_text_eq(key_attributes(s, "k"), "{\"x\":1}");
    assert_aj(aj_run_status(run), AJ_RUN_SUCCEEDED);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* The server restarts under an open store: the next transaction reconnects. */
void test_pg_reconnect(void **state) {
    (void)state;
    const char *dir = getenv("AJ_TEST_PG_DIR");
    if (!dir || !*dir) fail_msg("AJ_TEST_PG_DIR is not set: cannot restart the server");
    aj_store *s = open_store();
    aj_workflow *wf = make_wf("a", "b", NULL);
    aj_run *run = acquire_ok(s, wf, "k", NULL);
    script sc = {0};
    assert_aj(aj_run_step(run, script_step, &sc), AJ_OK);
    char cmd[1024];
    const char *root = getenv("AJ_TEST_ROOT");
    snprintf(cmd, sizeof cmd, "\"%s/scripts/pg-server.sh\" restart \"%s\" >/dev/null", root ? root : ".", dir);
    fflush(NULL);
    assert_int_equal(system(cmd), 0);
    /* the first use after the restart may fail once (its connection is gone) but must
     * not crash; the store reconnects before its next transaction */
    int rc = aj_run_step(run, script_step, &sc);
    if (rc != AJ_OK) {
        assert_int_equal(rc, AJ_EDATABASE);
        rc = aj_run_step(run, script_step, &sc);
    }
    assert_int_equal(rc, AJ_OK);
    assert_aj(aj_run_status(run), AJ_RUN_SUCCEEDED);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
}

typedef struct tx_count {
    int begins, commits, statements;
} tx_count;

static int count_tx(unsigned type, void *ctx, void *p, void *x) {
    (void)type;
    (void)x;
    tx_count *c = ctx;
    const char *sql = sqlite3_sql(p);
    c->statements++;
    c->begins += sql && strncmp(sql, "BEGIN", 5) == 0;
    c->commits += sql && strncmp(sql, "COMMIT", 6) == 0;
    return 0;
}

/* SQLite in process: a new 3-step run costs 3 transactions, as 3 plain ones do. The read
 * that acquires it before its first step is a statement alone (a transaction of its own),
 * once the store knows its tables (test_borrow_inside_app_transaction: inside the
 * application's open transaction it runs in that transaction). */
void test_run_sqlite_transactions_of_a_new_run(void **state) {
    (void)state;
    if (g_db != DB_SQLITE) skip();
    aj_store *s = open_store();
    aj_workflow *wf = make_wf("a", "b", "c", NULL);
    script sc = {0};
    aj_run *run = acquire_ok(s, wf, "warm", "[]"); /* the store learns its tables */
    assert_aj(aj_run_execute(run, script_step, &sc), AJ_OK);
    aj_run_free(run);

    sqlite3 *db = aj_store_sqlite(s);
    tx_count c = {0};
    sqlite3_trace_v2(db, SQLITE_TRACE_STMT, count_tx, &c);
    aj_run_params p = AJ_RUN_PARAMS_INIT;
    p.key = "new";
    p.job_name = "TestJob";
    p.args = "[]";
    p.args_len = 2;
    assert_aj(aj_run_new(&run, s, wf, &p), AJ_OK);
    assert_aj(aj_run_execute(run, script_step, &sc), AJ_OK);
    assert_int_equal(aj_run_status(run), AJ_RUN_SUCCEEDED);
    aj_run_free(run);
    assert_int_equal(c.begins, 3);
    assert_int_equal(c.commits, 3);

    /* a finished run: its read alone, nothing else */
    c = (tx_count){0};
    p.key = "new";
    assert_aj(aj_run_new(&run, s, wf, &p), AJ_OK);
    assert_aj(aj_run_execute(run, script_step, &sc), AJ_OK);
    aj_run_free(run);
    assert_int_equal(c.begins, 0);
    assert_int_equal(c.statements, 1);

    /* a transaction left open on the store's own connection: refused as before (the read
     * does not run alone there), nothing written */
    q_exec(s, "BEGIN", NULL, NULL);
    c = (tx_count){0};
    p.key = "inside";
    script none = {0};
    assert_aj(aj_run_new(&run, s, wf, &p), AJ_OK);
    assert_aj(aj_run_execute(run, script_step, &none), AJ_EMISUSE);
    assert_int_equal(none.ncalls, 0);
    assert_int_equal(aj_run_status(run), AJ_RUN_NEW);
    aj_run_free(run);
    assert_int_equal(c.begins, 0);
    q_exec(s, "ROLLBACK", NULL, NULL);
    assert_int_equal(q_int(s, "SELECT count(*) FROM acidic_job_keys WHERE idempotency_key = ?",
                           "inside", NULL), 0);
    sqlite3_trace_v2(db, 0, NULL, NULL);
    aj_workflow_free(wf);
    aj_store_free(s);
}
