/* Staged jobs: the transactional outbox. */
#include "harness.h"
#include "tests.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t staged_with_payload(aj_store *s, const char *payload) {
    return q_int(s, "SELECT COUNT(*) FROM staged_acidic_jobs WHERE job_args = ?", payload, NULL);
}

void test_stage_enqueued_after_commit(void **state) {
    (void)state;
    aj_store *s = open_store();
    aj_store *check = open_store();
    recorder rec = {.check = check};
    aj_store_set_enqueue(s, recorder_enqueue, &rec);
    aj_workflow *wf = make_wf("a", "b", NULL);
    aj_run *run = acquire_ok(s, wf, "k", NULL);
    script sc = {.stage_at = "a", .n_stage = 2};
    assert_aj(aj_run_step(run, script_step, &sc), AJ_OK);
    assert_int_equal(sc.api_rc, AJ_OK);
    assert_int_equal(sc.nids, 2);
    assert_true(sc.ids[0] > 0);
    assert_true(sc.ids[1] > sc.ids[0]);

    assert_int_equal(rec.n, 2);
    for (int i = 0; i < 2; i++) {
        char payload[8];
        snprintf(payload, sizeof payload, "p%d", i);
        assert_int_equal(rec.ids[i], sc.ids[i]);
        assert_string_equal(rec.adapter[i], "activejob");
        assert_string_equal(rec.job_name[i], "StagedJob");
        assert_string_equal(rec.payload[i], payload);
        assert_int_equal(rec.payload_len[i], 2);
        /* the callback ran after the commit: another connection saw the row */
        assert_int_equal(rec.visible[i], 1);
    }
    /* the rows stay until acknowledged */
    assert_int_equal(count_rows(s, "staged_acidic_jobs"), 2);
    assert_int_equal(q_int(s, "SELECT COUNT(*) FROM staged_acidic_jobs WHERE adapter = 'activejob' "
                              "AND job_name = 'StagedJob' AND job_args = 'p0' "
                              "AND created_at IS NOT NULL AND batch_id IS NULL",
                           NULL, NULL),
                     1);
    int completed = 7;
    assert_aj(aj_staged_ack(s, rec.ids[0], &completed), AJ_OK);
    assert_int_equal(completed, 0);
    assert_int_equal(count_rows(s, "staged_acidic_jobs"), 1);
    assert_int_equal(staged_with_payload(s, "p0"), 0);
    /* acknowledging again, or an id that never existed, is not an error */
    completed = 7;
    assert_aj(aj_staged_ack(s, rec.ids[0], &completed), AJ_OK);
    assert_int_equal(completed, 0);
    assert_aj(aj_staged_ack(s, 987654321, NULL), AJ_OK);
    assert_aj(aj_staged_ack(s, rec.ids[1], NULL), AJ_OK);
    assert_int_equal(count_rows(s, "staged_acidic_jobs"), 0);

    /* staging outside a step is a misuse and writes nothing */
    int64_t id = -5;
    aj_error_clear();
    assert_aj(aj_run_stage(run, "activejob", "X", "p", 1, &id), AJ_EMISUSE);
    assert_last_error(AJ_EMISUSE);
    assert_int_equal(id, -5);
    assert_int_equal(count_rows(s, "staged_acidic_jobs"), 0);

    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(check);
    aj_store_free(s);
}

void test_stage_rolled_back_with_step(void **state) {
    (void)state;
    aj_store *s = open_store();
    recorder rec = {0};
    aj_store_set_enqueue(s, recorder_enqueue, &rec);
    aj_workflow *wf = make_wf("a", "b", NULL);
    aj_run *run = acquire_ok(s, wf, "k", NULL);
    script sc = {.stage_at = "a", .n_stage = 3, .fail_at = "a"};
    assert_aj(aj_run_step(run, script_step, &sc), AJ_ESTEP);
    assert_int_equal(sc.api_rc, AJ_OK);
    assert_int_equal(rec.n, 0);
    assert_int_equal(count_rows(s, "staged_acidic_jobs"), 0);
    /* a later drain finds nothing either */
    q_exec(s, "UPDATE staged_acidic_jobs SET created_at = '2000-01-01 00:00:00.000000'", NULL,
           NULL);
    size_t delivered = 99;
    assert_aj(aj_store_drain(s, 0, &delivered), AJ_OK);
    assert_int_equal(delivered, 0);
    assert_int_equal(rec.n, 0);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* Make a staged row look old: created and last handed out long ago. */
static void backdate(aj_store *s, int64_t id) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)id);
    q_exec(s,
           "UPDATE staged_acidic_jobs SET created_at = '2000-01-01 00:00:00.000000', "
           "updated_at = '2000-01-01 00:00:00.000000', delivered_at = '2000-01-01 00:00:00.000000' "
           "WHERE CAST(id AS TEXT) = ?",
           buf, NULL);
}

void test_drain(void **state) {
    (void)state;
    aj_store *s = open_store();
    aj_workflow *wf = make_wf("a", "b", NULL);
    aj_run *run = acquire_ok(s, wf, "k", NULL);
    /* no enqueue callback yet: the jobs stay in the table */
    script sc = {.stage_at = "a", .n_stage = 3};
    assert_aj(aj_run_step(run, script_step, &sc), AJ_OK);
    assert_int_equal(count_rows(s, "staged_acidic_jobs"), 3);

    recorder rec = {0};
    aj_store_set_enqueue(s, recorder_enqueue, &rec);
    size_t delivered = 99;
    /* all three are younger than a minute */
    assert_aj(aj_store_drain(s, 60000, &delivered), AJ_OK);
    assert_int_equal(delivered, 0);
    assert_int_equal(rec.n, 0);

    /* two are old: delivered in id order; the young one is not */
    backdate(s, sc.ids[2]);
    backdate(s, sc.ids[0]);
    assert_aj(aj_store_drain(s, 60000, &delivered), AJ_OK);
    assert_int_equal(delivered, 2);
    assert_int_equal(rec.n, 2);
    assert_int_equal(rec.ids[0], sc.ids[0]);
    assert_int_equal(rec.ids[1], sc.ids[2]);
    assert_string_equal(rec.payload[0], "p0");
    assert_string_equal(rec.payload[1], "p2");
    assert_string_equal(rec.job_name[0], "StagedJob");
    assert_string_equal(rec.adapter[0], "activejob");
    /* handed out rows are stamped: the next drain waits the age again */
    assert_aj(aj_store_drain(s, 60000, &delivered), AJ_OK);
    assert_int_equal(delivered, 0);
    assert_int_equal(rec.n, 2);
    /* delivering does not delete: only the acknowledgement does */
    assert_int_equal(count_rows(s, "staged_acidic_jobs"), 3);
    assert_aj(aj_staged_ack(s, sc.ids[0], NULL), AJ_OK);
    assert_int_equal(count_rows(s, "staged_acidic_jobs"), 2);

    /* the delivered count may be NULL */
    backdate(s, sc.ids[1]);
    assert_aj(aj_store_drain(s, 60000, NULL), AJ_OK);
    assert_int_equal(rec.n, 3);
    assert_int_equal(rec.ids[2], sc.ids[1]);

    /* bad ages */
    assert_aj(aj_store_drain(s, -1, &delivered), AJ_EINVALID);
    assert_aj(aj_store_drain(NULL, 0, &delivered), AJ_EINVALID);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
}

void test_enqueue_rejected_left_for_drain(void **state) {
    (void)state;
    aj_store *s = open_store();
    recorder rec = {.reject = 1};
    aj_store_set_enqueue(s, recorder_enqueue, &rec);
    aj_workflow *wf = make_wf("a", "b", NULL);
    aj_run *run = acquire_ok(s, wf, "k", NULL);
    script sc = {.stage_at = "a", .n_stage = 1};
    /* the queue refuses: the step still commits, the row waits */
    assert_aj(aj_run_step(run, script_step, &sc), AJ_OK);
    assert_int_equal(rec.n, 1);
    assert_string_equal(aj_run_recovery_point(run), "b");
    assert_int_equal(count_rows(s, "staged_acidic_jobs"), 1);

    /* a refused drain delivers nothing and does not stamp the row */
    backdate(s, sc.ids[0]);
    size_t delivered = 99;
    assert_aj(aj_store_drain(s, 60000, &delivered), AJ_OK);
    assert_int_equal(delivered, 0);
    assert_int_equal(rec.n, 2);

    /* the queue is back: the next drain delivers it */
    rec.reject = 0;
    assert_aj(aj_store_drain(s, 60000, &delivered), AJ_OK);
    assert_int_equal(delivered, 1);
    assert_int_equal(rec.n, 3);
    assert_int_equal(rec.ids[2], sc.ids[0]);
    assert_string_equal(rec.payload[2], "p0");
    assert_aj(aj_staged_ack(s, sc.ids[0], NULL), AJ_OK);
    assert_int_equal(count_rows(s, "staged_acidic_jobs"), 0);

    /* without a callback, drain delivers nothing and keeps the rows */
    aj_store_set_enqueue(s, NULL, NULL);
    script sc2 = {.stage_at = "b", .n_stage = 1};
    assert_aj(aj_run_step(run, script_step, &sc2), AJ_OK);
    backdate(s, sc2.ids[0]);
    delivered = 99;
    int rc = aj_store_drain(s, 60000, &delivered);
    assert_true(rc == AJ_OK || rc == AJ_EMISUSE);
    if (rc == AJ_OK) assert_int_equal(delivered, 0);
    assert_int_equal(count_rows(s, "staged_acidic_jobs"), 1);
    assert_int_equal(rec.n, 3);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* aj_store_exec: parameters, rows, errors. */
void test_store_exec(void **state) {
    (void)state;
    aj_store *s = open_store();
    q_exec(s, "CREATE TABLE t (i INTEGER, s TEXT)", NULL, NULL);
    aj_value p[2] = {{.type = AJ_INT, .integer = 42},
                     {.type = AJ_TEXT, .text = "hello world", .len = 5}};
    assert_aj(aj_store_exec(s, "INSERT INTO t (i, s) VALUES (?, ?)", p, 2, NULL), AJ_OK);
    aj_value n[2] = {{.type = AJ_NULL}, {.type = AJ_NULL}};
    assert_aj(aj_store_exec(s, "INSERT INTO t (i, s) VALUES (?, ?)", n, 2, NULL), AJ_OK);
    aj_rows *rows = NULL;
    assert_aj(aj_store_exec(s, "SELECT i, s FROM t ORDER BY COALESCE(i, 999999)", NULL, 0, &rows), AJ_OK);
    assert_int_equal(aj_rows_count(rows), 2);
    assert_int_equal(aj_rows_columns(rows), 2);
    const aj_value *c = aj_rows_cell(rows, 0, 0);
    assert_int_equal(c->type, AJ_INT);
    assert_int_equal(c->integer, 42);
    c = aj_rows_cell(rows, 0, 1);
    assert_int_equal(c->type, AJ_TEXT);
    assert_int_equal(c->len, 5);
    assert_memory_equal(c->text, "hello", 5);
    assert_int_equal(aj_rows_cell(rows, 1, 0)->type, AJ_NULL);
    assert_int_equal(aj_rows_cell(rows, 1, 1)->type, AJ_NULL);
    assert_null(aj_rows_cell(rows, 2, 0));
    assert_null(aj_rows_cell(rows, 0, 2));
    aj_rows_free(rows);
    aj_rows_free(NULL);

    /* a bad statement: AJ_EDATABASE, rows untouched */
    rows = (aj_rows *)(uintptr_t)0x1;
    aj_error_clear();
    assert_aj(aj_store_exec(s, "SELEC nonsense", NULL, 0, &rows), AJ_EDATABASE);
    assert_last_error(AJ_EDATABASE);
    assert_ptr_equal(rows, (aj_rows *)(uintptr_t)0x1);
    assert_aj(aj_store_exec(s, NULL, NULL, 0, NULL), AJ_EINVALID);
    assert_aj(aj_store_exec(s, "SELECT 1", NULL, 1, NULL), AJ_EINVALID);
    aj_value nul = {.type = AJ_TEXT, .text = "a\0b", .len = 3};
    aj_value two[2] = {{.type = AJ_INT, .integer = 7}, nul};
    assert_aj(aj_store_exec(s, "INSERT INTO t (i, s) VALUES (?, ?)", two, 2, NULL), AJ_EINVALID);
    aj_value odd[2] = {{.type = 99}, {.type = AJ_NULL}};
    assert_aj(aj_store_exec(s, "INSERT INTO t (i, s) VALUES (?, ?)", odd, 2, NULL), AJ_EINVALID);
    /* the store still works after an error, and the refused calls wrote nothing */
    assert_int_equal(q_int(s, "SELECT COUNT(*) FROM t", NULL, NULL), 2);
    aj_store_free(s);
}

/* Selective refusal: a drain hands out every due row in one call, page after page, and
 * rows the queue refuses never hide the ones after them. */
typedef struct picky {
    recorder rec;
    int refuse_below; /* refuse ids up to this one */
} picky;

static int picky_enqueue(void *ctx, const aj_staged_job *job) {
    picky *p = ctx;
    if (job->id <= p->refuse_below) return 1;
    p->rec.n++;
    return 0;
}

void test_drain_pages(void **state) {
    (void)state;
    aj_store *s = open_store();
    /* 250 rows staged by the core long ago, and 30 made by a 0.7.0 application's model */
    for (int i = 0; i < 250; i++)
        q_exec(s, "INSERT INTO staged_acidic_jobs (adapter, job_name, job_args, created_at, "
                  "updated_at, delivered_at) VALUES ('sidekiq', 'Job', '[]', "
                  "'2000-01-01 00:00:00', '2000-01-01 00:00:00', '2000-01-01 00:00:00')",
               NULL, NULL);
    for (int i = 0; i < 30; i++)
        q_exec(s, "INSERT INTO staged_acidic_jobs (adapter, job_name, job_args, created_at, "
                  "updated_at) VALUES ('sidekiq', 'Old', '[]', '2000-01-01 00:00:00', "
                  "'2000-01-01 00:00:00')", NULL, NULL);
    int64_t first = q_int(s, "SELECT MIN(id) FROM staged_acidic_jobs", NULL, NULL);
    picky p = {{0}, (int)first + 99}; /* the 100 rows at the head are refused */
    aj_store_set_enqueue(s, picky_enqueue, &p);
    size_t n = 0;
    assert_aj(aj_store_drain(s, 60000, &n), AJ_OK);
    assert_int_equal(n, 180);
    assert_int_equal(p.rec.n, 180);
    /* the refused ones stay due; the delivered ones wait the age again */
    p.refuse_below = 0;
    p.rec.n = 0;
    assert_aj(aj_store_drain(s, 60000, &n), AJ_OK);
    assert_int_equal(n, 100);
    assert_aj(aj_store_drain(s, 60000, &n), AJ_OK);
    assert_int_equal(n, 0);
    aj_store_free(s);
}

/* Rows made outside the core and not due yet are read by one drain only: it stamps them
 * with their created_at, and a later drain delivers them once that is old enough. */
void test_drain_unstamped_not_due(void **state) {
    (void)state;
    aj_store *s = open_store();
    for (int i = 0; i < 150; i++)
        q_exec(s, "INSERT INTO staged_acidic_jobs (adapter, job_name, job_args, created_at, "
                  "updated_at) VALUES ('sidekiq', 'Recent', '[]', '2999-01-01 00:00:00', "
                  "'2999-01-01 00:00:00')", NULL, NULL);
    recorder rec = {0};
    aj_store_set_enqueue(s, recorder_enqueue, &rec);
    size_t n = 9;
    assert_aj(aj_store_drain(s, 60000, &n), AJ_OK);
    assert_int_equal(n, 0);
    assert_int_equal(q_int(s, "SELECT count(*) FROM staged_acidic_jobs WHERE delivered_at IS NULL",
                           NULL, NULL), 0);
    /* stamped with their created_at, not with the drain's time */
    assert_int_equal(q_int(s, "SELECT count(*) FROM staged_acidic_jobs WHERE delivered_at "
                              "BETWEEN '2998-12-31 23:59:59' AND '2999-01-01 00:00:01'",
                           NULL, NULL), 150);
    /* once their created_at is older than the age, a drain delivers each of them once */
    q_exec(s, "UPDATE staged_acidic_jobs SET created_at = '2000-01-01 00:00:00', "
              "delivered_at = '2000-01-01 00:00:00'", NULL, NULL);
    assert_aj(aj_store_drain(s, 60000, &n), AJ_OK);
    assert_int_equal(n, 150);
    assert_aj(aj_store_drain(s, 60000, &n), AJ_OK);
    assert_int_equal(n, 0);
    aj_store_free(s);
}

/* A step that stages several jobs without asking for their ids: the inserts ride with
 * the transaction's last round trip, several calls of one statement in one libpq
 * pipeline on a connection that has not prepared it yet (it must be prepared once). */
static int stage_five(aj_run *run, const char *step, void *ctx) {
    (void)step;
    (void)ctx;
    for (int i = 0; i < 5; i++) {
        char payload[8];
        int len = snprintf(payload, sizeof payload, "d%d", i);
        if (aj_run_stage(run, "activejob", "DeferredJob", payload, (size_t)len, NULL)) return 1;
    }
    return 0;
}

void test_stage_deferred_many(void **state) {
    (void)state;
    aj_store *s = open_store();
    recorder rec = {0};
    aj_store_set_enqueue(s, recorder_enqueue, &rec);
    aj_workflow *wf = make_wf("a", "b", NULL);
    aj_run *run = acquire_ok(s, wf, "k", NULL);
    assert_aj(aj_run_execute(run, stage_five, NULL), AJ_OK);
    aj_run_free(run);
    assert_int_equal(rec.n, 10);
    for (int i = 0; i < 10; i++) {
        char want[8];
        snprintf(want, sizeof want, "d%d", i % 5);
        assert_string_equal(rec.payload[i], want);
        assert_true(rec.ids[i] > (i ? rec.ids[i - 1] : 0));
    }
    assert_int_equal(count_rows(s, "staged_acidic_jobs"), 10);
    aj_workflow_free(wf);
    aj_store_free(s);
}
