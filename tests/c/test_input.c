/* Bad input everywhere, fork safety and the error API. */
#include "harness.h"
#include "tests.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void test_null_arguments(void **state) {
    (void)state;
    aj_store *s = open_store();
    aj_workflow *wf = make_wf("a", "b", NULL);
    aj_run *run = NULL;
    aj_run_params p = {.version = AJ_RUN_PARAMS_VERSION, .key = "k", .job_name = "J"};

    aj_error_clear();
    assert_aj(aj_run_acquire(NULL, s, wf, &p), AJ_EINVALID);
    assert_last_error(AJ_EINVALID);
    assert_aj(aj_run_acquire(&run, NULL, wf, &p), AJ_EINVALID);
    assert_aj(aj_run_acquire(&run, s, NULL, &p), AJ_EINVALID);
    assert_aj(aj_run_acquire(&run, s, wf, NULL), AJ_EINVALID);
    aj_run_params bad = p;
    bad.key = NULL;
    assert_aj(aj_run_acquire(&run, s, wf, &bad), AJ_EINVALID);
    bad.key = "";
    assert_aj(aj_run_acquire(&run, s, wf, &bad), AJ_EINVALID);
    bad = p;
    bad.job_name = NULL;
    assert_aj(aj_run_acquire(&run, s, wf, &bad), AJ_EINVALID);
    bad.job_name = "";
    assert_aj(aj_run_acquire(&run, s, wf, &bad), AJ_EINVALID);
    bad = p;
    bad.args = NULL;
    bad.args_len = 3; /* a length without a document */
    assert_aj(aj_run_acquire(&run, s, wf, &bad), AJ_EINVALID);
    assert_null(run);
    assert_int_equal(count_rows(s, "acidic_job_keys"), 0);

    assert_aj(aj_run_step(NULL, script_step, NULL), AJ_EINVALID);
    assert_aj(aj_run_execute(NULL, script_step, NULL), AJ_EINVALID);
    assert_aj(aj_run_stage(NULL, "a", "j", "p", 1, NULL), AJ_EINVALID);
    assert_aj(aj_run_await(NULL, "a", "j", "p", 1, NULL), AJ_EINVALID);
    assert_aj(aj_run_set_continuation(NULL, "a", "j", "p", 1), AJ_EINVALID);
    assert_aj(aj_run_finish(NULL), AJ_EINVALID);
    assert_aj(aj_run_goto(NULL, "a"), AJ_EINVALID);
    assert_aj(aj_run_set_error(NULL, "e", 1), AJ_EINVALID);
    assert_aj(aj_run_set_attributes(NULL, "{}", 2), AJ_EINVALID);
    assert_aj(aj_store_migrate(NULL), AJ_EINVALID);
    assert_aj(aj_staged_ack(NULL, 1, NULL), AJ_EINVALID);
    assert_aj(aj_store_exec(NULL, "SELECT 1", NULL, 0, NULL), AJ_EINVALID);
    assert_aj(aj_host_row(NULL, NULL, 0), AJ_EINVALID);
    aj_store_set_enqueue(NULL, NULL, NULL);
    aj_store_free(NULL);
    aj_run_free(NULL);
    aj_rows_free(NULL);
    aj_workflow_free(NULL);
    assert_aj(aj_options_init(NULL, AJ_OPTIONS_VERSION), AJ_EINVALID);
    assert_int_equal(aj_rows_count(NULL), 0);
    assert_int_equal(aj_rows_columns(NULL), 0);
    assert_null(aj_rows_cell(NULL, 0, 0));
    assert_int_equal(aj_workflow_count(NULL), 0);
    assert_null(aj_workflow_step(NULL, 0));

    /* a step callback must be given */
    run = acquire_ok(s, wf, "k", NULL);
    assert_aj(aj_run_step(run, NULL, NULL), AJ_EINVALID);
    assert_string_equal(aj_run_recovery_point(run), "a");
    /* params without their version are refused */
    aj_run_params old = {.key = "k", .job_name = "J"};
    assert_aj(aj_run_acquire(&run, s, wf, &old), AJ_EINVALID);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* Calls that take documents: NUL bytes, NULL with a length, empty names. */
typedef struct bad_docs_ctx {
    int rc[16];
    int n;
} bad_docs_ctx;

static int bad_docs_step(aj_run *run, const char *step, void *ctx) {
    (void)step;
    bad_docs_ctx *c = ctx;
    int64_t id = -1;
    c->rc[c->n++] = aj_run_stage(run, "activejob", "J", "ab\0cd", 5, &id);
    c->rc[c->n++] = aj_run_stage(run, "activejob", "J", NULL, 4, &id);
    c->rc[c->n++] = aj_run_stage(run, NULL, "J", "p", 1, &id);
    c->rc[c->n++] = aj_run_stage(run, "activejob", NULL, "p", 1, &id);
    c->rc[c->n++] = aj_run_stage(run, "", "J", "p", 1, &id);
    c->rc[c->n++] = aj_run_stage(run, "activejob", "", "p", 1, &id);
    c->rc[c->n++] = aj_run_set_attributes(run, "{\"a\":\"\0\"}", 9);
    c->rc[c->n++] = aj_run_set_attributes(run, NULL, 3);
    c->rc[c->n++] = aj_run_set_error(run, "err\0or", 6);
    c->rc[c->n++] = aj_run_set_error(run, NULL, 2);
    c->rc[c->n++] = (id == -1) ? AJ_EINVALID : AJ_OK; /* id untouched by failed calls */
    return 0;
}

void test_nul_bytes_in_documents(void **state) {
    (void)state;
    aj_store *s = open_store();
    aj_workflow *wf = make_wf("a", "b", NULL);
    aj_run *run = (aj_run *)(uintptr_t)0x1;
    aj_run_params p = {.version = AJ_RUN_PARAMS_VERSION, .key = "k", .job_name = "J", .args = "[1,\0 2]", .args_len = 7};
    aj_error_clear();
    assert_aj(aj_run_acquire(&run, s, wf, &p), AJ_EINVALID);
    assert_last_error(AJ_EINVALID);
    assert_ptr_equal(run, (aj_run *)(uintptr_t)0x1);
    aj_run_params p2 = {.version = AJ_RUN_PARAMS_VERSION, .key = "k", .job_name = "J", .attributes = "{\0}", .attributes_len = 3};
    assert_aj(aj_run_acquire(&run, s, wf, &p2), AJ_EINVALID);
    assert_int_equal(count_rows(s, "acidic_job_keys"), 0);

    /* the same document without the NUL is fine; a length shorter than the string
     * stores exactly that prefix */
    aj_run_params ok = {.version = AJ_RUN_PARAMS_VERSION, .key = "k", .job_name = "J", .args = "[1,2]xyz", .args_len = 5,
                        .attributes = "{\"v\":1}", .attributes_len = 7};
    run = NULL;
    assert_aj(aj_run_acquire(&run, s, wf, &ok), AJ_OK);
    char *args = q_text(s, "SELECT job_args FROM acidic_job_keys WHERE idempotency_key = 'k'",
                        NULL, NULL);
    assert_string_equal(args, "[1,2]");
    free(args);

    bad_docs_ctx c = {0};
    assert_aj(aj_run_step(run, bad_docs_step, &c), AJ_OK);
    for (int i = 0; i < c.n; i++) {
        if (c.rc[i] != AJ_EINVALID)
            fail_msg("bad document call %d returned %s, expected AJ_EINVALID", i,
                     aj_code_name(c.rc[i]));
    }
    /* nothing was written by the refused calls */
    assert_int_equal(count_rows(s, "staged_acidic_jobs"), 0);
    char *attrs = key_attributes(s, "k");
    assert_string_equal(attrs, "{\"v\":1}");
    free(attrs);
    size_t len = 0;
    const char *a = aj_run_attributes(run, &len);
    assert_int_equal(len, 7);
    assert_memory_equal(a, "{\"v\":1}", 7);
    assert_aj(aj_run_set_attributes(run, "x\0y", 3), AJ_EINVALID);
    a = aj_run_attributes(run, &len);
    assert_int_equal(len, 7);
    assert_memory_equal(a, "{\"v\":1}", 7);
    assert_string_equal(aj_run_recovery_point(run), "b");
    aj_run_free(run);

    /* a NUL inside a workflow name or key cannot be expressed in C strings: empty and
     * NULL are covered by test_null_arguments */
    aj_workflow_free(wf);
    aj_store_free(s);
}

void test_use_after_fork(void **state) {
    (void)state;
    aj_store *s = open_store();
    aj_workflow *wf = make_wf("a", "b", NULL);
    aj_run *run = acquire_ok(s, wf, "k", NULL);
    fflush(NULL);
    int pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* the child must refuse the parent's store and run, and free them without
         * touching the parent's connection */
        int fails = 0;
        aj_run *r2 = NULL;
        if (acquire(&r2, s, wf, "k2", NULL) != AJ_EMISUSE) fails |= 1;
        if (aj_error_last()->code != AJ_EMISUSE) fails |= 2;
        script sc = {0};
        if (aj_run_step(run, script_step, &sc) != AJ_EMISUSE || sc.ncalls != 0) fails |= 4;
        if (aj_store_exec(s, "SELECT 1", NULL, 0, NULL) != AJ_EMISUSE) fails |= 8;
        if (aj_staged_ack(s, 1, NULL) != AJ_EMISUSE) fails |= 16;
        if (aj_store_drain(s, 0, NULL) != AJ_EMISUSE) fails |= 32;
        aj_run_free(run);
        aj_store_free(s);
        aj_workflow_free(wf);
        _exit(fails);
    }
    int st = wait_child(pid);
    if (st != 0) fail_msg("the child's checks failed (bits %d)", st);
    /* the parent's connection survived the child's cleanup */
    script sc = {0};
    assert_aj(aj_run_execute(run, script_step, &sc), AJ_OK);
    assert_string_equal(script_calls(&sc), "a,b");
    assert_int_equal(count_rows(s, "acidic_job_keys"), 1);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
}

void test_code_names(void **state) {
    (void)state;
    static const struct {
        int code;
        const char *name;
    } names[] = {
        {AJ_OK, "AJ_OK"},
        {AJ_ERROR, "AJ_ERROR"},
        {AJ_EINVALID, "AJ_EINVALID"},
        {AJ_ENOMEM, "AJ_ENOMEM"},
        {AJ_EMISUSE, "AJ_EMISUSE"},
        {AJ_EDATABASE, "AJ_EDATABASE"},
        {AJ_ECONFLICT, "AJ_ECONFLICT"},
        {AJ_EMISMATCH, "AJ_EMISMATCH"},
        {AJ_ELOCKED, "AJ_ELOCKED"},
        {AJ_EUNKNOWN_RECOVERY_POINT, "AJ_EUNKNOWN_RECOVERY_POINT"},
        {AJ_ENO_STEPS, "AJ_ENO_STEPS"},
        {AJ_EDUPLICATE_STEP, "AJ_EDUPLICATE_STEP"},
        {AJ_ESTEP, "AJ_ESTEP"},
        {AJ_ENOTFOUND, "AJ_ENOTFOUND"},
        {AJ_ESCHEMA, "AJ_ESCHEMA"},
        {AJ_ESTATE, "AJ_ESTATE"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *got = aj_code_name(names[i].code);
        assert_non_null(got);
        assert_string_equal(got, names[i].name);
    }
    /* unknown codes still get a name */
    assert_non_null(aj_code_name(42));
    assert_non_null(aj_code_name(-999));
    assert_true(strlen(aj_code_name(-999)) > 0);
    assert_string_equal(AJ_VERSION, "0.9.0");
    assert_int_equal(AJ_VERSION_NUMBER, 9000);
}

static void *other_thread(void *arg) {
    (void)arg;
    /* a fresh thread has no error */
    const aj_error *e = aj_error_last();
    int ok = e && e->code == AJ_OK && e->message && strlen(e->message) > 0;
    /* and its failures stay its own */
    aj_workflow *wf = NULL;
    if (aj_workflow_new(&wf) == AJ_OK) {
        aj_workflow_add_step(wf, "", NULL, 0);
        ok = ok && aj_error_last()->code == AJ_EINVALID;
        aj_workflow_free(wf);
    }
    return ok ? (void *)1 : NULL;
}

void test_error_last(void **state) {
    (void)state;
    aj_error_clear();
    const aj_error *e = aj_error_last();
    assert_non_null(e);
    assert_int_equal(e->code, AJ_OK);
    assert_non_null(e->message);
    assert_string_equal(e->message, "no error");

    aj_store *s = open_store();
    aj_workflow *wf = make_wf("a", NULL);
    assert_aj(aj_workflow_add_step(wf, "a", NULL, 0), AJ_EDUPLICATE_STEP);
    e = aj_error_last();
    assert_int_equal(e->code, AJ_EDUPLICATE_STEP);
    assert_non_null(strstr(e->message, "a"));
    /* the error stays until the next failing call: successes do not clear it */
    assert_aj(aj_workflow_add_step(wf, "b", NULL, 0), AJ_OK);
    assert_int_equal(aj_error_last()->code, AJ_EDUPLICATE_STEP);

    pthread_t t;
    void *res = NULL;
    assert_int_equal(pthread_create(&t, NULL, other_thread, NULL), 0);
    assert_int_equal(pthread_join(t, &res), 0);
    assert_ptr_equal(res, (void *)1);
    assert_int_equal(aj_error_last()->code, AJ_EDUPLICATE_STEP);

    /* a database error carries the database's message */
    aj_rows *rows = NULL;
    assert_int_equal(aj_store_exec(s, "SELECT * FROM no_such_table_here", NULL, 0, &rows),
                     AJ_EDATABASE);
    assert_non_null(strstr(aj_error_last()->message, "no_such_table_here"));
    aj_error_clear();
    assert_int_equal(aj_error_last()->code, AJ_OK);
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* Rows a host connection reports are checked cell by cell: a text cell of some bytes at
 * NULL is refused instead of copied (found by tests/reliability's host_row fuzzer: the
 * row store read from NULL). */
typedef struct bad_rows {
    int rc[4];
} bad_rows;

static int bad_rows_exec(void *ctx, const char *sql, const aj_value *params, size_t nparams,
                         aj_host_result *result) {
    (void)sql, (void)params, (void)nparams;
    bad_rows *b = ctx;
    aj_value null_text = {.type = AJ_TEXT, .text = NULL, .len = 5};
    aj_value empty_null = {.type = AJ_TEXT, .text = NULL, .len = 0};
    aj_value unknown = {.type = 9};
    aj_value fine = {.type = AJ_INT, .integer = 7};
    b->rc[0] = aj_host_row(result, &null_text, 1);
    b->rc[1] = aj_host_row(result, &unknown, 1);
    b->rc[2] = aj_host_row(result, &empty_null, 1); /* no bytes: an empty text */
    b->rc[3] = aj_host_row(result, &fine, 1);
    return 0;
}

static int bad_rows_in_tx(void *ctx) {
    (void)ctx;
    return 1;
}

static int bad_rows_atomically(void *ctx, aj_tx_body body, void *arg, int *committed) {
    (void)ctx;
    *committed = body(arg) == 0;
    return 0;
}

void test_host_row_cells(void **state) {
    (void)state;
    bad_rows b = {{0}};
    aj_host_ops ops = AJ_HOST_OPS_INIT;
    ops.exec = bad_rows_exec;
    ops.in_transaction = bad_rows_in_tx;
    aj_host_tx tx = AJ_HOST_TX_INIT;
    tx.atomically = bad_rows_atomically;
    aj_store *s = NULL;
    assert_aj(aj_store_borrow_host(&s, AJ_DIALECT_SQLITE, &ops, &tx, &b, NULL), AJ_OK);
    aj_rows *rows = NULL;
    assert_aj(aj_store_exec(s, "SELECT 1", NULL, 0, &rows), AJ_OK);
    assert_aj(b.rc[0], AJ_EINVALID);
    assert_aj(b.rc[1], AJ_EINVALID);
    assert_aj(b.rc[2], AJ_OK);
    assert_aj(b.rc[3], AJ_OK);
    assert_int_equal(aj_rows_count(rows), 2);
    assert_int_equal(aj_rows_cell(rows, 0, 0)->len, 0);
    assert_int_equal(aj_rows_cell(rows, 1, 0)->integer, 7);
    aj_rows_free(rows);
    aj_store_free(s);
}
