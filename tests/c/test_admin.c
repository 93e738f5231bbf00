/* Operator operations (aj_admin_*): list, show, stats, retry, reset, unlock, discard,
 * bulk actions and prune, on runs in every state, including acidic_job 0.7.0 rows whose
 * documents are YAML of classes this process does not have. */
#include "harness.h"
#include "tests.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- fixtures -------------------------------------------------------------------- */

#define HOUR_US ((int64_t)3600 * 1000000)

static int64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void fmt_time(int64_t us, char buf[32]) {
    time_t secs = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    /* unsigned and reduced: the fields' printed widths are bounded */
    snprintf(buf, 32, "%04u-%02u-%02u %02u:%02u:%02u.%06u", (unsigned)(tm.tm_year + 1900) % 10000u,
             (unsigned)(tm.tm_mon + 1) % 100u, (unsigned)tm.tm_mday % 100u,
             (unsigned)tm.tm_hour % 100u, (unsigned)tm.tm_min % 100u, (unsigned)tm.tm_sec % 100u,
             (unsigned)(us % 1000000) % 1000000u);
}

/* Set a timestamp column of a key's row to `us`. */
static void set_time(aj_store *s, const char *column, const char *key, int64_t us) {
    char sql[160], when[32];
    fmt_time(us, when);
    snprintf(sql, sizeof sql, "UPDATE acidic_job_keys SET %s = ? WHERE idempotency_key = ?", column);
    q_exec(s, sql, when, key);
}

static aj_run_params params_for(const char *key, const char *job) {
    aj_run_params p = AJ_RUN_PARAMS_INIT;
    p.key = key;
    p.job_name = job;
    p.args = "[1]";
    p.args_len = 3;
    p.resume_adapter = "activejob";
    p.resume_job_name = "ResumeJob";
    p.resume_payload = key; /* the job that resumes a run names its key */
    p.resume_payload_len = strlen(key);
    return p;
}

/* Run `key` as far as the script takes it; aj_run_execute's code. */
static int run_key(aj_store *s, const aj_workflow *wf, const char *key, const char *job,
                   script *sc) {
    aj_run_params p = params_for(key, job);
    aj_run *run = NULL;
    int rc = aj_run_new(&run, s, wf, &p);
    if (rc == AJ_OK) rc = aj_run_execute(run, script_step, sc);
    aj_run_free(run);
    return rc;
}

/* Leave `key` locked at its recovery point, as a worker that is running it (or died). */
static void lock_key(aj_store *s, const aj_workflow *wf, const char *key, const char *job) {
    aj_run_params p = params_for(key, job);
    aj_run *run = NULL;
    assert_aj(aj_run_acquire(&run, s, wf, &p), AJ_OK);
    aj_run_free(run);
}

static void fail_key(aj_store *s, const aj_workflow *wf, const char *key, const char *job,
                     const char *at, const char *error_doc) {
    script sc = {.fail_at = at, .error_doc = error_doc};
    assert_aj(run_key(s, wf, key, job, &sc), AJ_ESTEP);
}

static int64_t key_id(aj_store *s, const char *key) {
    return q_int(s, "SELECT id FROM acidic_job_keys WHERE idempotency_key = ?", key, NULL);
}

static int key_state(aj_store *s, const char *key) {
    aj_admin_detail *d = NULL;
    assert_aj(aj_admin_show(s, key, 0, &d), AJ_OK);
    int state = d->run->state;
    aj_admin_detail_free(d);
    return state;
}

static void assert_text(char *got, const char *want) {
    if (!got) fail_msg("expected \"%s\", got NULL", want ? want : "(null)");
    assert_string_equal(got, want);
    free(got);
}

/* An enqueue callback that counts and remembers the last payload. */
typedef struct counter {
    int n;
    char last[64];
} counter;

static int count_enqueue(void *ctx, const aj_staged_job *job) {
    counter *c = ctx;
    c->n++;
    snprintf(c->last, sizeof c->last, "%.*s", (int)job->payload_len, job->payload);
    return 0;
}

typedef struct progress_log {
    int calls;
    size_t done[64], total[64];
    int stop_after; /* return 1 at this call (0: never) */
} progress_log;

static int log_progress(void *ctx, size_t done, size_t total) {
    progress_log *p = ctx;
    if (p->calls < 64) {
        p->done[p->calls] = done;
        p->total[p->calls] = total;
    }
    p->calls++;
    return p->stop_after && p->calls == p->stop_after;
}

/* The workflow of the fixtures: b awaits ChildJob jobs when the script says so. */
static aj_workflow *zoo_wf(void) {
    aj_workflow *wf = NULL;
    assert_aj(aj_workflow_new(&wf), AJ_OK);
    const char *awaits[1] = {"ChildJob"};
    assert_aj(aj_workflow_add_step(wf, "a", NULL, 0), AJ_OK);
    assert_aj(aj_workflow_add_step(wf, "b", awaits, 1), AJ_OK);
    assert_aj(aj_workflow_add_step(wf, "c", NULL, 0), AJ_OK);
    return wf;
}

static const char python_error[] =
    "{\"class\": \"builtins.ValueError\", \"message\": \"card declined:\\nno funds\", "
    "\"traceback\": [\"  File \\\"app.py\\\", line 3, in charge\", \"  raise ValueError\"]}";

/* Psych's dump of an exception whose class this process does not have (Ruby 3.1). */
static const char ruby_error[] =
    "--- !ruby/exception:Stripe::CardError\n"
    "message: Your card was declined. This message is long enough to be folded by the emitter,\n"
    "  yes it is.\n"
    "backtrace:\n"
    "- app/jobs/ride_create_job.rb:20:in `create_stripe_charge'\n"
    "- lib/acidic_job.rb:30:in `step'\n"
    "http_status: 402\n"
    "json_body:\n"
    "  error:\n"
    "    code: card_declined\n";

/* Runs in every state, of three jobs:
 *   ok-1, ok-2 (JobA) succeeded        fail-1 (JobA), fail-2 (JobB) failed
 *   run-1 (JobB) running                stranded-1, stranded-2 (JobB) stranded (2 and 3 h)
 *   await-1 (JobC) awaiting 2 jobs      dead-1 (JobA) dead      queued-1 (JobC) queued
 *   discarded-1 (JobA) finished with an error */
static void make_zoo(aj_store *s, const aj_workflow *wf) {
    script ok = {0};
    assert_aj(run_key(s, wf, "ok-1", "JobA", &ok), AJ_OK);
    assert_aj(run_key(s, wf, "ok-2", "JobA", &ok), AJ_OK);
    fail_key(s, wf, "fail-1", "JobA", "b", python_error);
    fail_key(s, wf, "fail-2", "JobB", "a", ruby_error);
    lock_key(s, wf, "run-1", "JobB");
    lock_key(s, wf, "stranded-1", "JobB");
    lock_key(s, wf, "stranded-2", "JobB");
    set_time(s, "locked_at", "stranded-1", now_us() - 2 * HOUR_US);
    set_time(s, "locked_at", "stranded-2", now_us() - 3 * HOUR_US);
    script aw = {.await_at = "b", .n_await = 2};
    assert_aj(run_key(s, wf, "await-1", "JobC", &aw), AJ_OK);
    aj_options o = AJ_OPTIONS_INIT;
    o.max_attempts = 1;
    aj_store *once = NULL;
    assert_aj(aj_store_open(&once, test_url(), &o), AJ_OK);
    fail_key(once, wf, "dead-1", "JobA", "a", NULL);
    aj_store_free(once);
    lock_key(s, wf, "queued-1", "JobC");
    q_exec(s, "UPDATE acidic_job_keys SET locked_at = NULL WHERE idempotency_key = ?",
           "queued-1", NULL);
    fail_key(s, wf, "discarded-1", "JobA", "a", NULL);
    q_exec(s, "UPDATE acidic_job_keys SET recovery_point = 'FINISHED' WHERE idempotency_key = ?",
           "discarded-1", NULL);
}

/* "k1,k2" for the keys of a page. */
static const char *page_keys(const aj_admin_page *page) {
    static char buf[2048];
    size_t used = 0;
    buf[0] = 0;
    for (size_t i = 0; i < page->count; i++)
        used += (size_t)snprintf(buf + used, sizeof buf - used, "%s%s", i ? "," : "",
                                 page->runs[i]->key);
    return buf;
}

static const char *list_keys(aj_store *s, const aj_admin_filter *f) {
    aj_admin_page *page = NULL;
    assert_aj(aj_admin_list(s, f, &page), AJ_OK);
    const char *keys = page_keys(page);
    assert_int_equal(page->next_cursor, 0);
    aj_admin_page_free(page);
    return keys;
}

/* ---- states, list ------------------------------------------------------------------ */

void test_admin_state_names(void **state) {
    (void)state;
    static const struct { int state; const char *name; } names[] = {
        {AJ_ADMIN_RUNNING, "running"},     {AJ_ADMIN_STRANDED, "stranded"},
        {AJ_ADMIN_FAILED, "failed"},       {AJ_ADMIN_DEAD, "dead"},
        {AJ_ADMIN_AWAITING, "awaiting"},   {AJ_ADMIN_QUEUED, "queued"},
        {AJ_ADMIN_SUCCEEDED, "succeeded"}, {AJ_ADMIN_DISCARDED, "discarded"}};
    unsigned all = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        assert_string_equal(aj_admin_state_name(names[i].state), names[i].name);
        unsigned parsed = 0;
        assert_aj(aj_admin_state_parse(names[i].name, &parsed), AJ_OK);
        assert_int_equal(parsed, (unsigned)names[i].state);
        all |= parsed;
    }
    assert_int_equal(all, AJ_ADMIN_ALL_STATES);
    unsigned parsed = 0;
    assert_aj(aj_admin_state_parse("Finished", &parsed), AJ_OK);
    assert_int_equal(parsed, AJ_ADMIN_FINISHED);
    assert_aj(aj_admin_state_parse("FAILED", &parsed), AJ_OK);
    assert_int_equal(parsed, AJ_ADMIN_FAILED);
    assert_aj(aj_admin_state_parse("lost", &parsed), AJ_EINVALID);
    assert_non_null(strstr(aj_error_last()->message, "stranded"));
    assert_aj(aj_admin_state_parse("fail", &parsed), AJ_EINVALID);
    assert_null(aj_admin_state_name(0));
    assert_null(aj_admin_state_name(AJ_ADMIN_FINISHED));
}

void test_admin_list_filters(void **state) {
    (void)state;
    aj_store *s = open_store();
    aj_workflow *wf = zoo_wf();
    make_zoo(s, wf);
    aj_admin_filter f = AJ_ADMIN_FILTER_INIT;
    static const struct { unsigned states; const char *keys; } by_state[] = {
        {AJ_ADMIN_RUNNING, "run-1"},
        {AJ_ADMIN_STRANDED, "stranded-1,stranded-2"},
        {AJ_ADMIN_FAILED, "fail-1,fail-2"},
        {AJ_ADMIN_DEAD, "dead-1"},
        {AJ_ADMIN_AWAITING, "await-1"},
        {AJ_ADMIN_QUEUED, "queued-1"},
        {AJ_ADMIN_SUCCEEDED, "ok-1,ok-2"},
        {AJ_ADMIN_DISCARDED, "discarded-1"},
        {AJ_ADMIN_FINISHED, "ok-1,ok-2,discarded-1"},
        {AJ_ADMIN_FAILED | AJ_ADMIN_DEAD, "fail-1,fail-2,dead-1"},
    };
    for (size_t i = 0; i < sizeof by_state / sizeof by_state[0]; i++) {
        f.states = by_state[i].states;
        assert_string_equal(list_keys(s, &f), by_state[i].keys);
    }
    f.states = 0;
    f.job_name = "JobB";
    assert_string_equal(list_keys(s, &f), "fail-2,run-1,stranded-1,stranded-2");
    f.states = AJ_ADMIN_STRANDED;
    assert_string_equal(list_keys(s, &f), "stranded-1,stranded-2");
    f.job_name = NULL;
    f.states = 0;
    f.key_prefix = "stranded";
    assert_string_equal(list_keys(s, &f), "stranded-1,stranded-2");
    f.key_prefix = "";
    assert_int_equal(strlen(list_keys(s, &f)) > 0, 1);

    /* a prefix is bytes, not a LIKE pattern */
    script ok = {0};
    assert_aj(run_key(s, wf, "p%_1", "JobP", &ok), AJ_OK);
    assert_aj(run_key(s, wf, "pX1", "JobP", &ok), AJ_OK);
    assert_aj(run_key(s, wf, "P%_2", "JobP", &ok), AJ_OK);
    f.key_prefix = "p%_";
    assert_string_equal(list_keys(s, &f), "p%_1");
    f.key_prefix = "p";
    assert_string_equal(list_keys(s, &f), "p%_1,pX1");

    /* age: updated before / since */
    f.key_prefix = NULL;
    int64_t now = now_us();
    set_time(s, "updated_at", "ok-1", now - 48 * HOUR_US);
    set_time(s, "updated_at", "ok-2", now - 2 * HOUR_US);
    f.states = AJ_ADMIN_SUCCEEDED;
    f.updated_before_us = now - HOUR_US;
    assert_string_equal(list_keys(s, &f), "ok-1,ok-2");
    f.updated_before_us = now - 24 * HOUR_US;
    assert_string_equal(list_keys(s, &f), "ok-1");
    f.updated_before_us = 0;
    f.updated_since_us = now - 24 * HOUR_US;
    assert_string_equal(list_keys(s, &f), "ok-2,p%_1,pX1,P%_2");
    f.updated_before_us = now - HOUR_US;
    assert_string_equal(list_keys(s, &f), "ok-2");

    /* each row: what an operator reads first */
    aj_admin_filter one = AJ_ADMIN_FILTER_INIT;
    one.key_prefix = "fail-2";
    aj_admin_page *page = NULL;
    assert_aj(aj_admin_list(s, &one, &page), AJ_OK);
    assert_int_equal(page->version, AJ_ADMIN_PAGE_VERSION);
    assert_int_equal(page->count, 1);
    const aj_admin_run *r = page->runs[0];
    assert_int_equal(r->version, AJ_ADMIN_RUN_VERSION);
    assert_int_equal(r->id, key_id(s, "fail-2"));
    assert_string_equal(r->key, "fail-2");
    assert_string_equal(r->job_name, "JobB");
    assert_int_equal(r->state, AJ_ADMIN_FAILED);
    assert_string_equal(r->recovery_point, "a");
    assert_int_equal(r->attempts, 1);
    assert_int_equal(r->locked_at_us, 0);
    assert_null(r->locked_by);
    assert_string_equal(r->error_class, "Stripe::CardError");
    assert_string_equal(r->error_message, "Your card was declined. This message is long enough "
                                          "to be folded by the emitter, yes it is.");
    assert_true(r->updated_at_us > now - HOUR_US && r->updated_at_us < now + HOUR_US);
    assert_true(r->created_at_us > now - HOUR_US && r->created_at_us <= r->updated_at_us);
    assert_true(r->recover_at_us > r->updated_at_us); /* the retry's time */
    assert_int_equal(r->dead_at_us, 0);
    aj_admin_page_free(page);
    one.key_prefix = "fail-1";
    assert_aj(aj_admin_list(s, &one, &page), AJ_OK);
    assert_string_equal(page->runs[0]->error_class, "builtins.ValueError");
    assert_string_equal(page->runs[0]->error_message, "card declined: no funds"); /* one line */
    assert_string_equal(page->runs[0]->recovery_point, "b");
    aj_admin_page_free(page);
    one.key_prefix = "run-1";
    assert_aj(aj_admin_list(s, &one, &page), AJ_OK);
    assert_true(page->runs[0]->locked_at_us > now - HOUR_US);
    assert_non_null(page->runs[0]->locked_by);
    assert_non_null(strchr(page->runs[0]->locked_by, ':')); /* host:pid */
    assert_null(page->runs[0]->error_class);
    assert_null(page->runs[0]->error_message);
    aj_admin_page_free(page);
    one.key_prefix = "dead-1";
    assert_aj(aj_admin_list(s, &one, &page), AJ_OK);
    assert_true(page->runs[0]->dead_at_us > 0);
    assert_int_equal(page->runs[0]->recover_at_us, 0);
    aj_admin_page_free(page);
    one.key_prefix = "await-1";
    assert_aj(aj_admin_list(s, &one, &page), AJ_OK);
    assert_true(page->runs[0]->awaiting_batch_id > 0);
    aj_admin_page_free(page);

    /* bad filters say why */
    aj_admin_filter bad = AJ_ADMIN_FILTER_INIT;
    bad.version = 0;
    assert_aj(aj_admin_list(s, &bad, &page), AJ_EINVALID);
    bad = (aj_admin_filter)AJ_ADMIN_FILTER_INIT;
    bad.states = 1u << 12;
    assert_aj(aj_admin_list(s, &bad, &page), AJ_EINVALID);
    bad.states = 0;
    bad.limit = 1001;
    assert_aj(aj_admin_list(s, &bad, &page), AJ_EINVALID);
    bad.limit = 0;
    bad.job_name = "";
    assert_aj(aj_admin_list(s, &bad, &page), AJ_EINVALID);
    assert_aj(aj_admin_list(s, NULL, NULL), AJ_EINVALID);
    assert_aj(aj_admin_list(NULL, NULL, &page), AJ_EINVALID);
    aj_workflow_free(wf);
    aj_store_free(s);
}

void test_admin_list_paging(void **state) {
    (void)state;
    aj_store *s = open_store();
    aj_workflow *wf = make_wf("a", NULL);
    script ok = {0};
    char key[32];
    for (int i = 0; i < 25; i++) {
        snprintf(key, sizeof key, "k%02d", i);
        assert_aj(run_key(s, wf, key, "PagedJob", &ok), AJ_OK);
    }
    for (int descending = 0; descending < 2; descending++) {
        aj_admin_filter f = AJ_ADMIN_FILTER_INIT;
        f.limit = 10;
        f.descending = descending;
        int seen[40] = {0};
        size_t sizes[8], pages = 0;
        int64_t last = descending ? INT64_MAX : 0;
        for (;;) {
            aj_admin_page *page = NULL;
            assert_aj(aj_admin_list(s, &f, &page), AJ_OK);
            sizes[pages++] = page->count;
            for (size_t i = 0; i < page->count; i++) {
                int n = atoi(page->runs[i]->key + 1);
                assert_int_equal(seen[n], 0); /* never twice */
                seen[n] = 1;
                int64_t id = page->runs[i]->id;
                assert_true(descending ? id < last : id > last); /* in id order */
                last = id;
            }
            int64_t next = page->next_cursor;
            if (next) assert_int_equal(next, page->runs[page->count - 1]->id);
            aj_admin_page_free(page);
            if (pages == 1 && !descending) {
                /* runs added meanwhile come at the end, once */
                assert_aj(run_key(s, wf, "k25", "PagedJob", &ok), AJ_OK);
            }
            if (!next) break;
            f.after_id = next;
            assert_true(pages < 8);
        }
        assert_int_equal(pages, 3);
        assert_int_equal(sizes[0], 10);
        assert_int_equal(sizes[1], 10);
        assert_int_equal(sizes[2], 6);
        for (int i = 0; i < 26; i++) assert_int_equal(seen[i], 1);
    }
    /* an exact multiple of the page size ends without an empty page */
    aj_admin_filter f = AJ_ADMIN_FILTER_INIT;
    f.limit = 13;
    aj_admin_page *page = NULL;
    assert_aj(aj_admin_list(s, &f, &page), AJ_OK);
    assert_int_equal(page->count, 13);
    f.after_id = page->next_cursor;
    aj_admin_page_free(page);
    assert_aj(aj_admin_list(s, &f, &page), AJ_OK);
    assert_int_equal(page->count, 13);
    assert_int_equal(page->next_cursor, 0);
    aj_admin_page_free(page);
    /* the default page size */
    for (int i = 26; i < 60; i++) {
        snprintf(key, sizeof key, "k%02d", i);
        assert_aj(run_key(s, wf, key, "PagedJob", &ok), AJ_OK);
    }
    assert_aj(aj_admin_list(s, NULL, &page), AJ_OK);
    assert_int_equal(page->count, 50);
    assert_true(page->next_cursor > 0);
    aj_admin_page_free(page);
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* ---- show ---------------------------------------------------------------------------- */

void test_admin_show_json(void **state) {
    (void)state;
    aj_store *s = open_store();
    aj_workflow *wf = zoo_wf();
    script sc = {.stage_at = "a", .n_stage = 2, .attrs_at = "a",
                 .attrs_doc = "{\"ride_id\":7,\"note\":\"x\"}", .fail_at = "b",
                 .error_doc = python_error};
    assert_aj(run_key(s, wf, "ride-7", "RideJob", &sc), AJ_ESTEP);
    aj_admin_detail *d = NULL;
    assert_aj(aj_admin_show(s, "ride-7", 0, &d), AJ_OK);
    assert_int_equal(d->version, AJ_ADMIN_DETAIL_VERSION);
    assert_string_equal(d->run->key, "ride-7");
    assert_int_equal(d->run->state, AJ_ADMIN_FAILED);
    assert_string_equal(d->run->recovery_point, "b");
    /* the steps, against the recovery point */
    assert_int_equal(d->n_steps, 3);
    assert_string_equal(d->steps[0]->name, "a");
    assert_int_equal(d->steps[0]->state, AJ_ADMIN_STEP_DONE);
    assert_string_equal(d->steps[1]->name, "b");
    assert_int_equal(d->steps[1]->state, AJ_ADMIN_STEP_CURRENT);
    assert_int_equal(d->steps[1]->n_awaits, 1);
    assert_string_equal(d->steps[1]->awaits[0], "ChildJob");
    assert_string_equal(d->steps[2]->name, "c");
    assert_int_equal(d->steps[2]->state, AJ_ADMIN_STEP_PENDING);
    assert_int_equal(d->steps[2]->n_awaits, 0);
    /* documents, raw */
    assert_int_equal(d->job_args_len, 3);
    assert_memory_equal(d->job_args, "[1]", 3);
    assert_string_equal(d->attributes, "{\"ride_id\":7,\"note\":\"x\"}");
    assert_int_equal(d->attributes_len, strlen(d->attributes));
    assert_non_null(d->workflow);
    assert_non_null(strstr(d->workflow, "\"then\""));
    assert_string_equal(d->error_document, python_error);
    /* the error, read out */
    assert_non_null(d->error);
    assert_string_equal(d->error->format, "json");
    assert_string_equal(d->error->class_name, "builtins.ValueError");
    assert_string_equal(d->error->message, "card declined:\nno funds");
    assert_string_equal(d->error->summary, "builtins.ValueError: card declined: no funds");
    assert_int_equal(d->error->backtrace_count, 2);
    assert_string_equal(d->error->backtrace[0], "  File \"app.py\", line 3, in charge");
    assert_string_equal(d->error->backtrace[1], "  raise ValueError");
    /* staged jobs: the first step's, committed with it */
    assert_int_equal(d->n_staged, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(d->staged[i]->version, AJ_ADMIN_STAGED_VERSION);
        assert_int_equal(d->staged[i]->id, sc.ids[i]);
        assert_string_equal(d->staged[i]->adapter, "activejob");
        assert_string_equal(d->staged[i]->job_name, "StagedJob");
        assert_int_equal(d->staged[i]->run_id, d->run->id);
        assert_int_equal(d->staged[i]->batch_id, 0);
        assert_true(d->staged[i]->created_at_us > 0);
    }
    assert_string_equal(d->staged[0]->payload, "p0");
    assert_int_equal(d->staged[1]->payload_len, 2);
    assert_null(d->batch);
    assert_string_equal(d->resume_adapter, "activejob");
    assert_string_equal(d->resume_job_name, "ResumeJob");
    assert_memory_equal(d->resume_payload, "ride-7", 6);
    int64_t id = d->run->id;
    aj_admin_detail_free(d);

    /* by id; a key that is not the row's is not found */
    assert_aj(aj_admin_show(s, NULL, id, &d), AJ_OK);
    assert_string_equal(d->run->key, "ride-7");
    aj_admin_detail_free(d);
    assert_aj(aj_admin_show(s, "ride-7", id, &d), AJ_OK);
    aj_admin_detail_free(d);
    d = (aj_admin_detail *)(uintptr_t)0x1;
    assert_aj(aj_admin_show(s, "ride-8", id, &d), AJ_ENOTFOUND);
    assert_aj(aj_admin_show(s, "ride-8", 0, &d), AJ_ENOTFOUND);
    assert_aj(aj_admin_show(s, NULL, id + 100, &d), AJ_ENOTFOUND);
    assert_ptr_equal(d, (aj_admin_detail *)(uintptr_t)0x1);
    assert_aj(aj_admin_show(s, NULL, 0, &d), AJ_EINVALID);
    assert_aj(aj_admin_show(s, "ride-7", -1, &d), AJ_EINVALID);

    /* a finished run: every step done, no error */
    script ok = {0};
    assert_aj(run_key(s, wf, "ride-8", "RideJob", &ok), AJ_OK);
    assert_aj(aj_admin_show(s, "ride-8", 0, &d), AJ_OK);
    assert_int_equal(d->run->state, AJ_ADMIN_SUCCEEDED);
    for (size_t i = 0; i < d->n_steps; i++) assert_int_equal(d->steps[i]->state, AJ_ADMIN_STEP_DONE);
    assert_null(d->error);
    assert_null(d->error_document);
    aj_admin_detail_free(d);

    /* one key naming two runs (0.7.0 keyed runs by key, job and arguments) is ambiguous */
    q_exec(s, "UPDATE acidic_job_keys SET idempotency_key = 'ride-7', job_name = 'OtherJob' "
              "WHERE idempotency_key = ?", "ride-8", NULL);
    assert_aj(aj_admin_show(s, "ride-7", 0, &d), AJ_EINVALID);
    assert_non_null(strstr(aj_error_last()->message, "more than one run"));
    assert_aj(aj_admin_retry(s, "ride-7", 0, 0), AJ_EINVALID);
    assert_aj(aj_admin_show(s, "ride-7", id, &d), AJ_OK); /* the id says which */
    assert_int_equal(d->run->state, AJ_ADMIN_FAILED);
    aj_admin_detail_free(d);
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* An acidic_job 0.7.0 row as its Ruby layer wrote it: YAML everywhere, classes this
 * process (or a console without the application) does not have. */
static const char ruby_workflow[] =
    "---\n"
    "create_ride_and_audit_record:\n"
    "  does: create_ride_and_audit_record\n"
    "  awaits: []\n"
    "  then: create_stripe_charge\n"
    "create_stripe_charge:\n"
    "  does: create_stripe_charge\n"
    "  awaits:\n"
    "  - !ruby/class 'ReceiptJob'\n"
    "  then: send_receipt\n"
    "send_receipt:\n"
    "  does: send_receipt\n"
    "  awaits: []\n"
    "  then: FINISHED\n";

static const char ruby_attributes[] =
    "--- !ruby/hash:ActiveSupport::HashWithIndifferentAccess\n"
    "ride: !ruby/object:Ride\n"
    "  concise_attributes:\n"
    "  - !ruby/object:ActiveModel::Attribute::FromDatabase\n"
    "    name: id\n"
    "    value_before_type_cast: 7\n"
    "  new_record: false\n"
    "params:\n"
    "  origin: Alexanderplatz\n";

static void insert_070_row(aj_store *s, const char *key, const char *rp, const char *error,
                           const char *workflow) {
    char now[32];
    fmt_time(now_us(), now);
    aj_value v[8] = {
        {.type = AJ_TEXT, .text = key, .len = strlen(key)},
        {.type = AJ_TEXT, .text = "RideCreateJob", .len = 13},
        {.type = AJ_TEXT, .text = "---\n- 42\n", .len = 9},
        {.type = AJ_TEXT, .text = rp, .len = strlen(rp)},
        error ? (aj_value){.type = AJ_TEXT, .text = error, .len = strlen(error)}
              : (aj_value){.type = AJ_NULL},
        {.type = AJ_TEXT, .text = ruby_attributes, .len = strlen(ruby_attributes)},
        workflow ? (aj_value){.type = AJ_TEXT, .text = workflow, .len = strlen(workflow)}
                 : (aj_value){.type = AJ_NULL},
        {.type = AJ_TEXT, .text = now, .len = strlen(now)}};
    assert_aj(aj_store_exec(s,
                            "INSERT INTO acidic_job_keys (idempotency_key, job_name, job_args,"
                            " recovery_point, error_object, attr_accessors, workflow,"
                            " last_run_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?,"
                            " ?, ?, ?)",
                            (aj_value[10]){v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[7], v[7]},
                            10, NULL),
              AJ_OK);
}

void test_admin_show_070_yaml(void **state) {
    (void)state;
    aj_store *s = open_store();
    insert_070_row(s, "ride-070", "create_stripe_charge", ruby_error, ruby_workflow);
    aj_admin_detail *d = NULL;
    assert_aj(aj_admin_show(s, "ride-070", 0, &d), AJ_OK);
    assert_string_equal(d->run->job_name, "RideCreateJob");
    assert_int_equal(d->run->state, AJ_ADMIN_FAILED);
    assert_int_equal(d->run->attempts, 0); /* not tracked before 0.9 */
    assert_string_equal(d->run->error_class, "Stripe::CardError");
    assert_int_equal(d->n_steps, 3);
    assert_string_equal(d->steps[0]->name, "create_ride_and_audit_record");
    assert_int_equal(d->steps[0]->state, AJ_ADMIN_STEP_DONE);
    assert_string_equal(d->steps[1]->name, "create_stripe_charge");
    assert_int_equal(d->steps[1]->state, AJ_ADMIN_STEP_CURRENT);
    assert_int_equal(d->steps[1]->n_awaits, 1);
    assert_string_equal(d->steps[1]->awaits[0], "ReceiptJob");
    assert_string_equal(d->steps[2]->name, "send_receipt");
    assert_int_equal(d->steps[2]->state, AJ_ADMIN_STEP_PENDING);
    assert_string_equal(d->attributes, ruby_attributes); /* raw: never instantiated */
    assert_string_equal(d->job_args, "---\n- 42\n");
    assert_string_equal(d->error->format, "yaml");
    assert_string_equal(d->error->class_name, "Stripe::CardError");
    assert_string_equal(d->error->message, "Your card was declined. This message is long enough "
                                           "to be folded by the emitter, yes it is.");
    assert_int_equal(d->error->backtrace_count, 2);
    assert_string_equal(d->error->backtrace[0],
                        "app/jobs/ride_create_job.rb:20:in `create_stripe_charge'");
    assert_string_equal(d->error->backtrace[1], "lib/acidic_job.rb:30:in `step'");
    assert_null(d->resume_adapter);
    assert_int_equal(d->n_staged, 0);
    aj_admin_detail_free(d);

    /* retrying it: the core cannot enqueue a row without a resume description */
    assert_aj(aj_admin_retry(s, "ride-070", 0, 0), AJ_ESTATE);
    assert_non_null(strstr(aj_error_last()->message, "resume description"));
    assert_text(key_error(s, "ride-070"), ruby_error); /* nothing changed */
    assert_aj(aj_admin_retry(s, "ride-070", 0, AJ_ADMIN_NO_ENQUEUE), AJ_OK);
    assert_null(key_error(s, "ride-070"));
    assert_int_equal(count_rows(s, "staged_acidic_jobs"), 0);
    assert_int_equal(key_state(s, "ride-070"), AJ_ADMIN_QUEUED);

    /* symbol keys (0.7.0 with `step :name`), and rows without a readable workflow */
    insert_070_row(s, "sym", "b", "--- !ruby/exception:RuntimeError\nmessage: x\nbacktrace:\n",
                   "---\n:a:\n  :does: :a\n  :then: :b\n:b:\n  :does: :b\n  :then: FINISHED\n");
    assert_aj(aj_admin_show(s, "sym", 0, &d), AJ_OK);
    assert_int_equal(d->n_steps, 2);
    assert_string_equal(d->steps[0]->name, "a");
    assert_string_equal(d->steps[1]->name, "b");
    assert_int_equal(d->steps[1]->state, AJ_ADMIN_STEP_CURRENT);
    assert_string_equal(d->error->summary, "RuntimeError: x");
    assert_int_equal(d->error->backtrace_count, 0);
    aj_admin_detail_free(d);
    insert_070_row(s, "no-wf", "a", "something broke\nbadly", NULL);
    assert_aj(aj_admin_show(s, "no-wf", 0, &d), AJ_OK);
    assert_int_equal(d->n_steps, 0);
    assert_null(d->workflow);
    assert_string_equal(d->error->format, "text");
    assert_null(d->error->class_name);
    assert_string_equal(d->error->message, "something broke\nbadly");
    assert_string_equal(d->error->summary, "something broke badly");
    aj_admin_detail_free(d);
    /* a reset needs a workflow to check the step against */
    assert_aj(aj_admin_reset(s, "no-wf", 0, "a", AJ_ADMIN_NO_ENQUEUE), AJ_EUNKNOWN_RECOVERY_POINT);
    assert_non_null(strstr(aj_error_last()->message, "no workflow"));
    aj_store_free(s);
}

void test_admin_show_awaiting(void **state) {
    (void)state;
    aj_store *s = open_store();
    aj_workflow *wf = zoo_wf();
    script aw = {.await_at = "b", .n_await = 3};
    assert_aj(run_key(s, wf, "parent", "ParentJob", &aw), AJ_OK);
    int completed = 0;
    assert_aj(aj_staged_ack(s, aw.ids[0], &completed), AJ_OK);
    aj_admin_detail *d = NULL;
    assert_aj(aj_admin_show(s, "parent", 0, &d), AJ_OK);
    assert_int_equal(d->run->state, AJ_ADMIN_AWAITING);
    assert_string_equal(d->run->recovery_point, "c");
    assert_non_null(d->batch);
    assert_int_equal(d->batch->version, AJ_ADMIN_BATCH_VERSION);
    assert_int_equal(d->batch->id, d->run->awaiting_batch_id);
    assert_int_equal(d->batch->run_id, d->run->id);
    assert_string_equal(d->batch->step, "b");
    assert_int_equal(d->batch->remaining, 2);
    assert_string_equal(d->batch->continuation_adapter, "sidekiq");
    assert_string_equal(d->batch->continuation_job_name, "ContinueJob");
    assert_true(d->batch->created_at_us > 0 && d->batch->updated_at_us >= d->batch->created_at_us);
    /* the two awaited jobs not acknowledged yet */
    assert_int_equal(d->n_staged, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(d->staged[i]->id, aw.ids[i + 1]);
        assert_string_equal(d->staged[i]->job_name, "ChildJob");
        assert_int_equal(d->staged[i]->batch_id, d->batch->id);
    }
    aj_admin_detail_free(d);
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* ---- actions -------------------------------------------------------------------------- */

void test_admin_retry(void **state) {
    (void)state;
    aj_store *s = open_store();
    counter enq = {0};
    aj_store_set_enqueue(s, count_enqueue, &enq);
    create_app_table(s);
    aj_workflow *wf = zoo_wf();
    script sc = {.write_app = 1, .fail_at = "b", .error_doc = python_error};
    assert_aj(run_key(s, wf, "r1", "RetryJob", &sc), AJ_ESTEP);
    assert_aj(run_key(s, wf, "r1", "RetryJob", &sc), AJ_ESTEP);
    assert_int_equal(q_int(s, "SELECT attempts FROM acidic_job_keys WHERE idempotency_key = ?",
                           "r1", NULL), 2);
    assert_aj(aj_admin_retry(s, "r1", 0, 0), AJ_OK);
    /* cleared, unlocked, attempts reset, and its job enqueued after the commit */
    assert_null(key_error(s, "r1"));
    assert_int_equal(key_locked(s, "r1"), 0);
    assert_text(key_recovery_point(s, "r1"), "b");
    assert_int_equal(q_int(s, "SELECT attempts FROM acidic_job_keys WHERE idempotency_key = ?",
                           "r1", NULL), 0);
    assert_int_equal(enq.n, 1);
    assert_string_equal(enq.last, "r1");
    aj_admin_detail *d = NULL;
    assert_aj(aj_admin_show(s, "r1", 0, &d), AJ_OK);
    assert_int_equal(d->run->state, AJ_ADMIN_QUEUED);
    assert_true(d->run->recover_at_us > now_us()); /* recovery looks again if the job is lost */
    assert_int_equal(d->n_staged, 1); /* the resume job, until it performs */
    assert_string_equal(d->staged[0]->job_name, "ResumeJob");
    assert_int_equal(d->staged[0]->run_id, d->run->id);
    int64_t resume_id = d->staged[0]->id;
    aj_admin_detail_free(d);
    /* the job performs: the run resumes at b and finishes, a ran once */
    script ok = {.write_app = 1};
    assert_aj(run_key(s, wf, "r1", "RetryJob", &ok), AJ_OK);
    assert_aj(aj_staged_ack(s, resume_id, NULL), AJ_OK);
    assert_string_equal(script_calls(&ok), "b,c");
    assert_int_equal(app_rows(s, "a"), 1);
    assert_int_equal(app_rows(s, "c"), 1);
    assert_int_equal(key_state(s, "r1"), AJ_ADMIN_SUCCEEDED);

    /* nothing to retry in a finished run */
    assert_aj(aj_admin_retry(s, "r1", 0, 0), AJ_ESTATE);
    assert_non_null(strstr(aj_error_last()->message, "succeeded"));
    assert_int_equal(enq.n, 1);

    /* a dead run is retried back to life */
    aj_options o = AJ_OPTIONS_INIT;
    o.max_attempts = 1;
    aj_store *once = NULL;
    assert_aj(aj_store_open(&once, test_url(), &o), AJ_OK);
    script fail = {.fail_at = "a"};
    assert_aj(run_key(once, wf, "r2", "RetryJob", &fail), AJ_ESTEP);
    assert_int_equal(key_state(s, "r2"), AJ_ADMIN_DEAD);
    aj_run_params p = params_for("r2", "RetryJob");
    aj_run *run = NULL;
    assert_aj(aj_run_acquire(&run, once, wf, &p), AJ_OK);
    assert_int_equal(aj_run_status(run), AJ_RUN_DEAD); /* not run again ... */
    aj_run_free(run);
    assert_aj(aj_admin_retry(s, NULL, key_id(s, "r2"), 0), AJ_OK); /* ... until retried */
    assert_int_equal(enq.n, 2);
    assert_int_equal(q_int(s, "SELECT COUNT(*) FROM acidic_job_keys WHERE idempotency_key = ? "
                              "AND dead_at IS NULL AND error_object IS NULL", "r2", NULL), 1);
    ok = (script){0};
    assert_aj(run_key(once, wf, "r2", "RetryJob", &ok), AJ_OK);
    assert_string_equal(script_calls(&ok), "a,b,c");
    aj_store_free(once);

    /* a stranded run (its worker died) is retried: unlocked and enqueued */
    lock_key(s, wf, "r3", "RetryJob");
    set_time(s, "locked_at", "r3", now_us() - 2 * HOUR_US);
    assert_aj(aj_admin_retry(s, "r3", 0, 0), AJ_OK);
    assert_int_equal(key_locked(s, "r3"), 0);
    assert_int_equal(enq.n, 3);

    /* an awaiting run resumes by its batch, not by a retry */
    script aw = {.await_at = "b", .n_await = 1};
    assert_aj(run_key(s, wf, "r4", "RetryJob", &aw), AJ_OK);
    int before = enq.n;
    assert_aj(aj_admin_retry(s, "r4", 0, 0), AJ_ESTATE);
    assert_non_null(strstr(aj_error_last()->message, "awaited"));
    assert_int_equal(enq.n, before);

    /* without a callback the resume job waits in the outbox for a drain */
    aj_store_set_enqueue(s, NULL, NULL);
    fail_key(s, wf, "r5", "RetryJob", "a", NULL);
    int64_t staged = count_rows(s, "staged_acidic_jobs");
    assert_aj(aj_admin_retry(s, "r5", 0, 0), AJ_OK);
    assert_int_equal(count_rows(s, "staged_acidic_jobs"), staged + 1);
    aj_store_set_enqueue(s, count_enqueue, &enq);
    size_t delivered = 0;
    assert_aj(aj_store_drain(s, 0, &delivered), AJ_OK);
    assert_true(delivered >= 1);
    assert_string_equal(enq.last, "r5");

    /* misuse */
    assert_aj(aj_admin_retry(s, "nope", 0, 0), AJ_ENOTFOUND);
    assert_aj(aj_admin_retry(s, "r5", 0, 1u << 7), AJ_EINVALID);
    assert_aj(aj_admin_retry(NULL, "r5", 0, 0), AJ_EINVALID);
    assert_aj(aj_admin_retry(s, "", 0, 0), AJ_EINVALID);
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* Called as a step: an operator call inside a step is refused. */
static int admin_inside_step(aj_run *run, const char *step, void *ctx) {
    (void)step;
    int *rc = ctx;
    aj_admin_page *page = NULL;
    *rc = aj_admin_list(aj_run_store(run), NULL, &page);
    if (*rc == AJ_OK) aj_admin_page_free(page);
    return 0;
}

void test_admin_reset_reruns_steps(void **state) {
    (void)state;
    aj_store *s = open_store();
    recorder rec = {0};
    aj_store_set_enqueue(s, recorder_enqueue, &rec);
    create_app_table(s);
    aj_workflow *wf = zoo_wf();
    script sc = {.write_app = 1};
    assert_aj(run_key(s, wf, "ride", "RideJob", &sc), AJ_OK);
    assert_int_equal(app_rows(s, NULL), 3);

    /* after a bug fix in b: re-run b, and what follows it */
    assert_aj(aj_admin_reset(s, "ride", 0, "b", 0), AJ_OK);
    assert_text(key_recovery_point(s, "ride"), "b");
    assert_int_equal(key_state(s, "ride"), AJ_ADMIN_QUEUED);
    assert_int_equal(rec.n, 1);
    assert_string_equal(rec.job_name[0], "ResumeJob");
    assert_string_equal(rec.payload[0], "ride");
    aj_admin_detail *d = NULL;
    assert_aj(aj_admin_show(s, "ride", 0, &d), AJ_OK);
    assert_int_equal(d->steps[0]->state, AJ_ADMIN_STEP_DONE);
    assert_int_equal(d->steps[1]->state, AJ_ADMIN_STEP_CURRENT);
    assert_int_equal(d->steps[2]->state, AJ_ADMIN_STEP_PENDING);
    assert_int_equal(d->run->attempts, 0);
    aj_admin_detail_free(d);
    /* the enqueued job performs: b and c run again, their writes exist once more */
    script again = {.write_app = 1};
    assert_aj(run_key(s, wf, "ride", "RideJob", &again), AJ_OK);
    assert_string_equal(script_calls(&again), "b,c");
    assert_int_equal(app_rows(s, "a"), 1);
    assert_int_equal(app_rows(s, "b"), 2);
    assert_int_equal(app_rows(s, "c"), 2);
    assert_int_equal(key_state(s, "ride"), AJ_ADMIN_SUCCEEDED);

    /* forward: a run failing in a, moved past it to c */
    script fail = {.write_app = 1, .fail_at = "a"};
    assert_aj(run_key(s, wf, "fwd", "RideJob", &fail), AJ_ESTEP);
    assert_aj(aj_admin_reset(s, "fwd", 0, "c", 0), AJ_OK);
    assert_null(key_error(s, "fwd"));
    script fwd = {.write_app = 1};
    assert_aj(run_key(s, wf, "fwd", "RideJob", &fwd), AJ_OK);
    assert_string_equal(script_calls(&fwd), "c");
    assert_int_equal(app_rows(s, "c"), 3);

    /* an unknown step is refused, saying which steps there are; nothing changes */
    int n = rec.n;
    assert_aj(aj_admin_reset(s, "ride", 0, "charge", 0), AJ_EUNKNOWN_RECOVERY_POINT);
    assert_non_null(strstr(aj_error_last()->message, "a, b, c"));
    assert_text(key_recovery_point(s, "ride"), "FINISHED");
    assert_int_equal(rec.n, n);
    assert_aj(aj_admin_reset(s, "ride", 0, NULL, 0), AJ_EINVALID);
    assert_aj(aj_admin_reset(s, "ride", 0, "FINISHED", 0), AJ_EUNKNOWN_RECOVERY_POINT);

    /* an awaiting run stops awaiting: its batch's jobs no longer resume it */
    script aw = {.await_at = "b", .n_await = 2};
    assert_aj(run_key(s, wf, "aw", "RideJob", &aw), AJ_OK);
    n = rec.n; /* the awaited jobs went out */
    assert_aj(aj_admin_reset(s, "aw", 0, "b", AJ_ADMIN_NO_ENQUEUE), AJ_OK);
    assert_int_equal(rec.n, n);
    assert_int_equal(key_state(s, "aw"), AJ_ADMIN_QUEUED);
    int completed = 1;
    assert_aj(aj_staged_ack(s, aw.ids[0], &completed), AJ_OK);
    assert_aj(aj_staged_ack(s, aw.ids[1], &completed), AJ_OK);
    assert_int_equal(completed, 0); /* no continuation staged */
    assert_int_equal(rec.n, n);
    script rerun = {0};
    assert_aj(run_key(s, wf, "aw", "RideJob", &rerun), AJ_OK);
    assert_string_equal(script_calls(&rerun), "b,c");

    /* operator calls inside a step are refused */
    aj_run_params p = params_for("inside", "RideJob");
    aj_run *run = NULL;
    int inner = AJ_OK;
    assert_aj(aj_run_new(&run, s, wf, &p), AJ_OK);
    assert_aj(aj_run_step(run, admin_inside_step, &inner), AJ_OK);
    assert_int_equal(inner, AJ_EMISUSE);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* The row of a key as text, to see that a refused action changed nothing. */
static char *row_text(aj_store *s, const char *key) {
    return q_text(s,
                  "SELECT recovery_point || '|' || COALESCE(CAST(locked_at AS TEXT), '-') || '|' ||"
                  " COALESCE(locked_by, '-') || '|' || COALESCE(error_object, '-') || '|' ||"
                  " COALESCE(CAST(attempts AS TEXT), '-') FROM acidic_job_keys"
                  " WHERE idempotency_key = ?",
                  key, NULL);
}

typedef struct force_unlock {
    aj_store *admin;
    int calls;
    int rc;
} force_unlock;

/* A step that, while it runs, has an operator force the run's lock away. */
static int step_while_unlocked(aj_run *run, const char *step, void *ctx) {
    force_unlock *f = ctx;
    if (f->calls++ == 0) f->rc = aj_admin_unlock(f->admin, aj_run_key(run), 0, AJ_ADMIN_FORCE);
    aj_value v = {.type = AJ_TEXT, .text = step, .len = strlen(step)};
    return aj_store_exec(aj_run_store(run), "INSERT INTO app_log (step) VALUES (?)", &v, 1, NULL);
}

void test_admin_refuses_live_lock(void **state) {
    (void)state;
    aj_store *worker = open_store();
    aj_store *admin = open_store();
    create_app_table(worker);
    aj_workflow *wf = zoo_wf();
    aj_run_params p = params_for("live", "LiveJob");
    aj_run *run = NULL;
    assert_aj(aj_run_acquire(&run, worker, wf, &p), AJ_OK); /* a worker holds it */
    char *before = row_text(admin, "live");
    assert_aj(aj_admin_retry(admin, "live", 0, 0), AJ_ELOCKED);
    assert_non_null(strstr(aj_error_last()->message, "lock timeout"));
    assert_non_null(strstr(aj_error_last()->message, "force"));
    assert_aj(aj_admin_reset(admin, "live", 0, "c", 0), AJ_ELOCKED);
    assert_aj(aj_admin_unlock(admin, "live", 0, 0), AJ_ELOCKED);
    assert_aj(aj_admin_discard(admin, "live", 0, 0), AJ_ELOCKED);
    assert_text(row_text(admin, "live"), before);
    free(before);
    assert_int_equal(key_state(admin, "live"), AJ_ADMIN_RUNNING);
    /* the worker goes on undisturbed */
    script one = {.write_app = 1};
    assert_aj(aj_run_step(run, script_step, &one), AJ_OK);
    assert_int_equal(app_rows(worker, "a"), 1);

    /* forced: the operator knows the worker is dead; if it was not, its next step
     * fails its claim and writes nothing */
    assert_aj(aj_admin_unlock(admin, "live", 0, AJ_ADMIN_FORCE), AJ_OK);
    assert_int_equal(key_locked(admin, "live"), 0);
    assert_aj(aj_run_step(run, script_step, &one), AJ_ELOCKED);
    assert_int_equal(app_rows(worker, "b"), 0);
    assert_text(key_recovery_point(admin, "live"), "b");
    aj_run_free(run);

    /* a step in progress: on PostgreSQL its transaction holds the row, so the operator is
     * refused at once even with force; on SQLite the operator's change wins and the step
     * fails its claim, rolling back its writes */
    p = params_for("busy", "LiveJob");
    assert_aj(aj_run_acquire(&run, worker, wf, &p), AJ_OK);
    force_unlock f = {admin, 0, AJ_OK};
    int rc = aj_run_step(run, step_while_unlocked, &f);
    if (g_db == DB_POSTGRES) {
        assert_int_equal(f.rc, AJ_ELOCKED);
        assert_aj(rc, AJ_OK);
        assert_int_equal(app_rows(worker, "a"), 2);
        assert_int_equal(key_locked(admin, "busy"), 1);
    } else {
        assert_int_equal(f.rc, AJ_OK);
        assert_aj(rc, AJ_ELOCKED);
        assert_int_equal(app_rows(worker, "a"), 1); /* the step's write rolled back */
        assert_int_equal(key_locked(admin, "busy"), 0);
    }
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(admin);
    aj_store_free(worker);
}

void test_admin_unlock(void **state) {
    (void)state;
    aj_store *s = open_store();
    counter enq = {0};
    aj_store_set_enqueue(s, count_enqueue, &enq);
    aj_workflow *wf = zoo_wf();
    lock_key(s, wf, "dead-worker", "UnlockJob");
    set_time(s, "locked_at", "dead-worker", now_us() - 2 * HOUR_US);
    assert_int_equal(key_state(s, "dead-worker"), AJ_ADMIN_STRANDED);
    assert_aj(aj_admin_unlock(s, "dead-worker", 0, 0), AJ_OK);
    assert_int_equal(key_locked(s, "dead-worker"), 0);
    assert_null(q_text(s, "SELECT locked_by FROM acidic_job_keys WHERE idempotency_key = ?",
                       "dead-worker", NULL));
    assert_int_equal(key_state(s, "dead-worker"), AJ_ADMIN_QUEUED);
    assert_int_equal(enq.n, 0); /* unlocking enqueues nothing ... */
    /* ... the next recovery sweep hands it back */
    size_t requeued = 0;
    assert_aj(aj_store_recover(s, 0, &requeued, NULL), AJ_OK);
    assert_int_equal(requeued, 1);
    assert_int_equal(enq.n, 1);
    /* unlocking what is not locked */
    assert_aj(aj_admin_unlock(s, "dead-worker", 0, 0), AJ_ESTATE);
    assert_non_null(strstr(aj_error_last()->message, "not locked"));
    fail_key(s, wf, "failed", "UnlockJob", "a", NULL);
    assert_aj(aj_admin_unlock(s, "failed", 0, AJ_ADMIN_FORCE), AJ_ESTATE);
    aj_workflow_free(wf);
    aj_store_free(s);
}

void test_admin_discard(void **state) {
    (void)state;
    aj_store *s = open_store();
    aj_workflow *wf = zoo_wf();
    fail_key(s, wf, "bad", "DiscardJob", "b", python_error);
    assert_aj(aj_admin_discard(s, "bad", 0, 0), AJ_OK);
    assert_text(key_recovery_point(s, "bad"), "FINISHED");
    assert_text(key_error(s, "bad"), python_error); /* the error is kept */
    assert_int_equal(key_state(s, "bad"), AJ_ADMIN_DISCARDED);
    assert_int_equal(q_int(s, "SELECT COUNT(*) FROM acidic_job_keys WHERE idempotency_key = ? "
                              "AND recover_at IS NULL", "bad", NULL), 1);
    /* it never runs again */
    aj_run_params p = params_for("bad", "DiscardJob");
    aj_run *run = NULL;
    assert_aj(aj_run_acquire(&run, s, wf, &p), AJ_OK);
    assert_int_equal(aj_run_status(run), AJ_RUN_FINISHED_FAILED);
    script none = {0};
    assert_aj(aj_run_execute(run, script_step, &none), AJ_OK);
    assert_int_equal(none.ncalls, 0);
    aj_run_free(run);
    /* a run without an error gets one that says what happened */
    lock_key(s, wf, "stale", "DiscardJob");
    set_time(s, "locked_at", "stale", now_us() - 2 * HOUR_US);
    assert_aj(aj_admin_discard(s, "stale", 0, 0), AJ_OK);
    assert_int_equal(key_locked(s, "stale"), 0);
    aj_admin_detail *d = NULL;
    assert_aj(aj_admin_show(s, "stale", 0, &d), AJ_OK);
    assert_int_equal(d->run->state, AJ_ADMIN_DISCARDED);
    assert_string_equal(d->error->class_name, "acidic_job.Discarded");
    assert_string_equal(d->error->message, "discarded by an operator");
    aj_admin_detail_free(d);
    /* an awaiting run: its batch no longer resumes it */
    script aw = {.await_at = "b", .n_await = 1};
    assert_aj(run_key(s, wf, "aw", "DiscardJob", &aw), AJ_OK);
    assert_aj(aj_admin_discard(s, "aw", 0, 0), AJ_OK);
    int completed = 1;
    assert_aj(aj_staged_ack(s, aw.ids[0], &completed), AJ_OK);
    assert_int_equal(completed, 0);
    /* a finished run is refused */
    assert_aj(aj_admin_discard(s, "bad", 0, 0), AJ_ESTATE);
    assert_non_null(strstr(aj_error_last()->message, "discarded"));
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* ---- bulk ------------------------------------------------------------------------------- */

void test_admin_bulk_retry_1000(void **state) {
    (void)state;
    aj_store *s = open_store();
    aj_workflow *wf = zoo_wf();
    char key[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "bulk-%04d", i);
        fail_key(s, wf, key, "BulkJob", i % 2 ? "a" : "b", python_error);
    }
    fail_key(s, wf, "other-1", "OtherJob", "a", NULL);
    script ok = {0};
    assert_aj(run_key(s, wf, "done-1", "BulkJob", &ok), AJ_OK);
    counter enq = {0};
    aj_store_set_enqueue(s, count_enqueue, &enq);

    aj_admin_filter f = AJ_ADMIN_FILTER_INIT;
    f.job_name = "BulkJob";
    f.states = AJ_ADMIN_FAILED;
    progress_log pl = {0};
    size_t changed = 0, skipped = 0;
    assert_aj(aj_admin_bulk(s, AJ_ADMIN_RETRY, NULL, &f, 0, log_progress, &pl, &changed, &skipped),
              AJ_OK);
    assert_int_equal(changed, 1000);
    assert_int_equal(skipped, 0);
    assert_int_equal(enq.n, 1000); /* every resume job enqueued once */
    assert_int_equal(pl.calls, 10); /* in transactions of 100 */
    for (int i = 0; i < 10; i++) {
        assert_int_equal(pl.done[i], (size_t)(i + 1) * 100);
        assert_int_equal(pl.total[i], 1000);
    }
    assert_int_equal(q_int(s, "SELECT COUNT(*) FROM acidic_job_keys WHERE job_name = 'BulkJob'"
                              " AND error_object IS NULL AND attempts = 0 AND locked_at IS NULL",
                           NULL, NULL), 1000);
    assert_int_equal(key_state(s, "other-1"), AJ_ADMIN_FAILED); /* another job: untouched */
    /* the enqueued jobs perform: every run finishes, resuming where it failed */
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "bulk-%04d", i);
        script resume = {0};
        assert_aj(run_key(s, wf, key, "BulkJob", &resume), AJ_OK);
        assert_string_equal(script_calls(&resume), i % 2 ? "a,b,c" : "b,c");
    }
    aj_admin_stats *st = NULL;
    assert_aj(aj_admin_stats_read(s, &st), AJ_OK);
    size_t succeeded = 0;
    for (size_t i = 0; i < st->n_jobs; i++)
        if (!strcmp(st->jobs[i]->job_name, "BulkJob") && st->jobs[i]->state == AJ_ADMIN_SUCCEEDED)
            succeeded = st->jobs[i]->count;
    assert_int_equal(succeeded, 1001);
    aj_admin_stats_free(st);

    /* nothing left to retry: no transaction changes anything */
    pl = (progress_log){0};
    assert_aj(aj_admin_bulk(s, AJ_ADMIN_RETRY, NULL, &f, 0, log_progress, &pl, &changed, &skipped),
              AJ_OK);
    assert_int_equal(changed, 0);
    assert_int_equal(pl.calls, 1);
    assert_int_equal(pl.total[0], 0);
    aj_workflow_free(wf);
    aj_store_free(s);
}

void test_admin_bulk_forms(void **state) {
    (void)state;
    aj_store *s = open_store();
    aj_workflow *wf = zoo_wf();
    make_zoo(s, wf);
    counter enq = {0};
    aj_store_set_enqueue(s, count_enqueue, &enq);
    aj_admin_filter f = AJ_ADMIN_FILTER_INIT;
    size_t changed = 9, skipped = 9;
    /* states an action never applies to are refused before anything happens */
    f.states = AJ_ADMIN_SUCCEEDED;
    assert_aj(aj_admin_bulk(s, AJ_ADMIN_RETRY, NULL, &f, 0, NULL, NULL, &changed, &skipped),
              AJ_EINVALID);
    assert_non_null(strstr(aj_error_last()->message, "succeeded"));
    f.states = AJ_ADMIN_RUNNING;
    assert_aj(aj_admin_bulk(s, AJ_ADMIN_UNLOCK, NULL, &f, 0, NULL, NULL, &changed, &skipped),
              AJ_EINVALID);
    assert_non_null(strstr(aj_error_last()->message, "force"));
    f.states = AJ_ADMIN_FINISHED;
    assert_aj(aj_admin_bulk(s, AJ_ADMIN_DISCARD, NULL, &f, 0, NULL, NULL, NULL, NULL),
              AJ_EINVALID);
    f.states = 0;
    assert_aj(aj_admin_bulk(s, 99, NULL, &f, 0, NULL, NULL, NULL, NULL), AJ_EINVALID);
    assert_aj(aj_admin_bulk(s, AJ_ADMIN_RESET, NULL, &f, 0, NULL, NULL, NULL, NULL), AJ_EINVALID);
    assert_aj(aj_admin_bulk(s, AJ_ADMIN_RETRY, "a", &f, 0, NULL, NULL, NULL, NULL), AJ_EINVALID);
    assert_aj(aj_admin_bulk(s, AJ_ADMIN_RETRY, NULL, NULL, 0, NULL, NULL, NULL, NULL),
              AJ_EINVALID);
    assert_int_equal(changed, 9);
    assert_int_equal(enq.n, 0);

    /* unlock's default: stranded runs */
    assert_aj(aj_admin_bulk(s, AJ_ADMIN_UNLOCK, NULL, &f, 0, NULL, NULL, &changed, &skipped),
              AJ_OK);
    assert_int_equal(changed, 2);
    assert_int_equal(key_locked(s, "stranded-1"), 0);
    assert_int_equal(key_locked(s, "run-1"), 1);

    /* reset every failed or dead run of JobA to c, without enqueueing */
    f.job_name = "JobA";
    assert_aj(aj_admin_bulk(s, AJ_ADMIN_RESET, "c", &f, AJ_ADMIN_NO_ENQUEUE, NULL, NULL, &changed,
                            &skipped), AJ_OK);
    assert_int_equal(changed, 2); /* fail-1, dead-1 */
    assert_text(key_recovery_point(s, "fail-1"), "c");
    assert_text(key_recovery_point(s, "dead-1"), "c");
    assert_int_equal(enq.n, 0);
    /* a step some runs' workflows lack: those are skipped, not errors */
    q_exec(s, "UPDATE acidic_job_keys SET workflow = ? WHERE idempotency_key = ?",
           "{\"x\": {\"then\": \"FINISHED\"}}", "fail-2");
    f.job_name = NULL;
    f.states = AJ_ADMIN_FAILED;
    lock_key(s, wf, "fail-3", "JobC");
    q_exec(s, "UPDATE acidic_job_keys SET locked_at = NULL, error_object = 'boom' WHERE "
              "idempotency_key = ?", "fail-3", NULL);
    assert_aj(aj_admin_bulk(s, AJ_ADMIN_RESET, "b", &f, 0, NULL, NULL, &changed, &skipped), AJ_OK);
    assert_int_equal(changed, 1); /* fail-3 */
    assert_int_equal(skipped, 1); /* fail-2: no step b in its workflow */
    assert_int_equal(enq.n, 1);
    assert_text(key_recovery_point(s, "fail-3"), "b");
    assert_text(key_recovery_point(s, "fail-2"), "a");

    /* discard everything failed or dead, stopping after the first transaction */
    f = (aj_admin_filter)AJ_ADMIN_FILTER_INIT;
    f.limit = 1;
    f.states = AJ_ADMIN_FAILED | AJ_ADMIN_DEAD | AJ_ADMIN_QUEUED;
    progress_log pl = {.stop_after = 1};
    assert_aj(aj_admin_bulk(s, AJ_ADMIN_DISCARD, NULL, &f, 0, log_progress, &pl, &changed,
                            &skipped), AJ_OK);
    assert_int_equal(changed, 1);
    assert_int_equal(pl.calls, 1);
    assert_true(pl.total[0] >= 4);
    pl = (progress_log){0};
    assert_aj(aj_admin_bulk(s, AJ_ADMIN_DISCARD, NULL, &f, 0, log_progress, &pl, &changed,
                            &skipped), AJ_OK);
    assert_int_equal(changed, pl.total[0]);
    aj_admin_page *page = NULL;
    aj_admin_filter left = AJ_ADMIN_FILTER_INIT;
    left.states = AJ_ADMIN_FAILED | AJ_ADMIN_DEAD | AJ_ADMIN_QUEUED;
    assert_aj(aj_admin_list(s, &left, &page), AJ_OK);
    assert_int_equal(page->count, 0);
    aj_admin_page_free(page);
    /* running runs are acted on only with force */
    f.states = AJ_ADMIN_RUNNING;
    assert_aj(aj_admin_bulk(s, AJ_ADMIN_DISCARD, NULL, &f, AJ_ADMIN_FORCE, NULL, NULL, &changed,
                            &skipped), AJ_OK);
    assert_int_equal(changed, 1);
    assert_int_equal(key_state(s, "run-1"), AJ_ADMIN_DISCARDED);
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* ---- prune, stats ------------------------------------------------------------------------- */

void test_admin_prune(void **state) {
    (void)state;
    aj_store *s = open_store();
    aj_workflow *wf = make_wf("only", NULL);
    char key[32];
    script stage = {.stage_at = "only", .n_stage = 1};
    for (int i = 0; i < 250; i++) {
        snprintf(key, sizeof key, "old-%03d", i);
        stage.ncalls = stage.nids = 0;
        assert_aj(run_key(s, wf, key, "OldJob", &stage), AJ_OK);
    }
    script ok = {0};
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof key, "recent-%d", i);
        assert_aj(run_key(s, wf, key, "OldJob", &ok), AJ_OK);
    }
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof key, "failed-%d", i);
        fail_key(s, wf, key, "OldJob", "only", NULL);
    }
    char old[32];
    fmt_time(now_us() - 10 * 24 * HOUR_US, old);
    q_exec(s, "UPDATE acidic_job_keys SET updated_at = ? WHERE idempotency_key NOT LIKE 'recent-%'",
           old, NULL);
    int64_t staged = count_rows(s, "staged_acidic_jobs");
    assert_int_equal(staged, 250);

    aj_admin_filter f = AJ_ADMIN_FILTER_INIT;
    size_t deleted = 99;
    assert_aj(aj_admin_prune(s, &f, NULL, NULL, &deleted), AJ_EINVALID); /* no age */
    assert_non_null(strstr(aj_error_last()->message, "updated_before_us"));
    f.updated_before_us = now_us() - 7 * 24 * HOUR_US;
    f.states = AJ_ADMIN_FAILED;
    assert_aj(aj_admin_prune(s, &f, NULL, NULL, &deleted), AJ_EINVALID);
    assert_int_equal(deleted, 99);
    f.states = 0;
    f.limit = 100;
    progress_log pl = {0};
    assert_aj(aj_admin_prune(s, &f, log_progress, &pl, &deleted), AJ_OK);
    assert_int_equal(deleted, 250);
    assert_int_equal(pl.calls, 3);
    assert_int_equal(pl.done[0], 100);
    assert_int_equal(pl.done[1], 200);
    assert_int_equal(pl.done[2], 250);
    for (int i = 0; i < 3; i++) assert_int_equal(pl.total[i], 250);
    assert_int_equal(count_rows(s, "acidic_job_keys"), 15); /* recent and failed runs stay */
    assert_int_equal(q_int(s, "SELECT COUNT(*) FROM acidic_job_keys WHERE idempotency_key LIKE "
                              "'failed-%'", NULL, NULL), 5);
    assert_int_equal(count_rows(s, "staged_acidic_jobs"), staged); /* deliveries are kept */
    /* again: nothing to prune */
    pl = (progress_log){0};
    assert_aj(aj_admin_prune(s, &f, log_progress, &pl, &deleted), AJ_OK);
    assert_int_equal(deleted, 0);
    assert_int_equal(pl.calls, 1);
    /* discarded runs only, of one job */
    assert_aj(aj_admin_discard(s, "failed-0", 0, 0), AJ_OK);
    set_time(s, "updated_at", "failed-0", now_us() - 10 * 24 * HOUR_US);
    f.states = AJ_ADMIN_DISCARDED;
    f.job_name = "OldJob";
    assert_aj(aj_admin_prune(s, &f, NULL, NULL, &deleted), AJ_OK);
    assert_int_equal(deleted, 1);
    assert_int_equal(key_id(s, "failed-0"), -1);
    aj_workflow_free(wf);
    aj_store_free(s);
}

void test_admin_stats(void **state) {
    (void)state;
    aj_store *s = open_store();
    aj_workflow *wf = zoo_wf();
    aj_admin_stats *st = NULL;
    assert_aj(aj_admin_stats_read(s, &st), AJ_OK); /* an empty database */
    assert_int_equal(st->version, AJ_ADMIN_STATS_VERSION);
    assert_int_equal(st->total, 0);
    assert_int_equal(st->n_states, 0);
    assert_int_equal(st->n_jobs, 0);
    assert_null(st->oldest_stranded);
    assert_null(st->oldest_staged);
    assert_null(st->oldest_batch);
    aj_admin_stats_free(st);

    make_zoo(s, wf);
    assert_aj(aj_admin_stats_read(s, &st), AJ_OK);
    assert_int_equal(st->total, 11);
    static const struct { int state; size_t count; } want[] = {
        {AJ_ADMIN_RUNNING, 1}, {AJ_ADMIN_STRANDED, 2}, {AJ_ADMIN_FAILED, 2},
        {AJ_ADMIN_DEAD, 1},    {AJ_ADMIN_AWAITING, 1}, {AJ_ADMIN_QUEUED, 1},
        {AJ_ADMIN_SUCCEEDED, 2}, {AJ_ADMIN_DISCARDED, 1}};
    assert_int_equal(st->n_states, 8);
    for (size_t i = 0; i < 8; i++) {
        assert_null(st->states[i]->job_name);
        assert_int_equal(st->states[i]->state, want[i].state);
        assert_int_equal(st->states[i]->count, want[i].count);
    }
    /* by job: JobA ok x2, fail-1, dead-1, discarded-1; JobB fail-2, run-1, stranded x2;
     * JobC await-1, queued-1 */
    static const struct { const char *job; int state; size_t count; } jobs[] = {
        {"JobA", AJ_ADMIN_FAILED, 1},   {"JobA", AJ_ADMIN_DEAD, 1},
        {"JobA", AJ_ADMIN_SUCCEEDED, 2}, {"JobA", AJ_ADMIN_DISCARDED, 1},
        {"JobB", AJ_ADMIN_RUNNING, 1},  {"JobB", AJ_ADMIN_STRANDED, 2},
        {"JobB", AJ_ADMIN_FAILED, 1},   {"JobC", AJ_ADMIN_AWAITING, 1},
        {"JobC", AJ_ADMIN_QUEUED, 1}};
    assert_int_equal(st->n_jobs, sizeof jobs / sizeof jobs[0]);
    for (size_t i = 0; i < st->n_jobs; i++) {
        assert_string_equal(st->jobs[i]->job_name, jobs[i].job);
        assert_int_equal(st->jobs[i]->state, jobs[i].state);
        assert_int_equal(st->jobs[i]->count, jobs[i].count);
    }
    assert_non_null(st->oldest_stranded);
    assert_string_equal(st->oldest_stranded->key, "stranded-2");
    assert_int_equal(st->oldest_stranded->state, AJ_ADMIN_STRANDED);
    assert_true(st->oldest_stranded->locked_at_us < now_us() - 2 * HOUR_US);
    /* the outbox: the two awaited jobs (nothing else was staged, no callback is set) */
    assert_int_equal(st->staged_backlog, (size_t)count_rows(s, "staged_acidic_jobs"));
    assert_int_equal(st->staged_backlog, 2);
    assert_non_null(st->oldest_staged);
    assert_int_equal(st->oldest_staged->id,
                     q_int(s, "SELECT MIN(id) FROM staged_acidic_jobs", NULL, NULL));
    assert_string_equal(st->oldest_staged->job_name, "ChildJob");
    assert_int_equal(st->oldest_staged->run_id, key_id(s, "await-1"));
    assert_int_equal(st->open_batches, 1);
    assert_non_null(st->oldest_batch);
    assert_int_equal(st->oldest_batch->run_id, key_id(s, "await-1"));
    assert_int_equal(st->oldest_batch->remaining, 2);
    aj_admin_stats_free(st);
    assert_aj(aj_admin_stats_read(s, NULL), AJ_EINVALID);
    aj_workflow_free(wf);
    aj_store_free(s);
}

void test_admin_staged_list(void **state) {
    (void)state;
    aj_store *s = open_store();
    aj_workflow *wf = zoo_wf();
    aj_admin_staged_page *page = NULL;
    assert_aj(aj_admin_staged_list(s, 0, 0, &page), AJ_OK); /* an empty outbox */
    assert_int_equal(page->version, AJ_ADMIN_STAGED_PAGE_VERSION);
    assert_int_equal(page->count, 0);
    assert_int_equal(page->next_cursor, 0);
    aj_admin_staged_page_free(page);

    /* the two awaited jobs of await-1, then fail-1's resume job (no callback: it waits) */
    make_zoo(s, wf);
    assert_aj(aj_admin_retry(s, "fail-1", 0, 0), AJ_OK);
    assert_int_equal(count_rows(s, "staged_acidic_jobs"), 3);
    assert_aj(aj_admin_staged_list(s, 0, 2, &page), AJ_OK);
    assert_int_equal(page->count, 2);
    assert_int_equal(page->staged[0]->id,
                     q_int(s, "SELECT MIN(id) FROM staged_acidic_jobs", NULL, NULL));
    assert_true(page->staged[0]->id < page->staged[1]->id);
    for (size_t i = 0; i < 2; i++) {
        assert_string_equal(page->staged[i]->job_name, "ChildJob");
        assert_int_equal(page->staged[i]->run_id, key_id(s, "await-1"));
        assert_true(page->staged[i]->batch_id > 0);
    }
    assert_int_equal(page->next_cursor, page->staged[1]->id);
    int64_t cursor = page->next_cursor;
    aj_admin_staged_page_free(page);
    assert_aj(aj_admin_staged_list(s, cursor, 2, &page), AJ_OK);
    assert_int_equal(page->count, 1);
    assert_string_equal(page->staged[0]->adapter, "activejob");
    assert_string_equal(page->staged[0]->job_name, "ResumeJob");
    assert_int_equal(page->staged[0]->payload_len, strlen("fail-1"));
    assert_memory_equal(page->staged[0]->payload, "fail-1", strlen("fail-1"));
    assert_int_equal(page->staged[0]->run_id, key_id(s, "fail-1"));
    assert_int_equal(page->staged[0]->batch_id, 0);
    assert_int_equal(page->next_cursor, 0);
    aj_admin_staged_page_free(page);
    /* a page that ends exactly at the last row has no next page */
    assert_aj(aj_admin_staged_list(s, 0, 3, &page), AJ_OK);
    assert_int_equal(page->count, 3);
    assert_int_equal(page->next_cursor, 0);
    aj_admin_staged_page_free(page);

    assert_aj(aj_admin_staged_list(s, -1, 0, &page), AJ_EINVALID);
    assert_aj(aj_admin_staged_list(s, 0, 1001, &page), AJ_EINVALID);
    assert_aj(aj_admin_staged_list(s, 0, 0, NULL), AJ_EINVALID);
    aj_admin_staged_page_free(NULL);
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* ---- error documents ------------------------------------------------------------------------ */

static aj_admin_error *parse(const char *doc) {
    aj_admin_error *e = NULL;
    assert_aj(aj_admin_error_parse(&e, doc, strlen(doc)), AJ_OK);
    assert_int_equal(e->version, AJ_ADMIN_ERROR_VERSION);
    return e;
}

void test_admin_error_documents(void **state) {
    (void)state;
    aj_admin_error *e = parse(ruby_error);
    assert_string_equal(e->format, "yaml");
    assert_string_equal(e->class_name, "Stripe::CardError");
    assert_int_equal(e->backtrace_count, 2);
    aj_admin_error_free(e);

    /* Psych's other forms (Ruby 3.1's output): block scalars, quotes, binary, no message */
    e = parse("--- !ruby/exception:RuntimeError\nmessage: |2-\n     leading\n  x\nbacktrace:\n");
    assert_string_equal(e->message, "   leading\nx");
    assert_string_equal(e->summary, "RuntimeError: leading x");
    assert_int_equal(e->backtrace_count, 0);
    aj_admin_error_free(e);
    e = parse("--- !ruby/exception:ArgumentError\nmessage: 'it''s: a \"quoted\" #thing'\n"
              "backtrace:\n- \"-e:1:in `<main>'\"\n");
    assert_string_equal(e->message, "it's: a \"quoted\" #thing");
    assert_string_equal(e->backtrace[0], "-e:1:in `<main>'");
    aj_admin_error_free(e);
    e = parse("--- !ruby/exception:RuntimeError\nmessage: \"\\xFCnicode \\t tab \\e esc "
              "\\U0001F600 \\L\"\nbacktrace:\n");
    assert_string_equal(e->message, "\xC3\xBCnicode \t tab \xEF\xBF\xBD esc \xF0\x9F\x98\x80 "
                                    "\xE2\x80\xA8"); /* ESC is not shown */
    aj_admin_error_free(e);
    e = parse("--- !ruby/exception:RuntimeError\nmessage: !binary |-\n  YmluIP/+\nbacktrace:\n");
    assert_string_equal(e->message, "bin \xEF\xBF\xBD\xEF\xBF\xBD"); /* bytes that are not UTF-8 */
    aj_admin_error_free(e);
    e = parse("--- !ruby/exception:RuntimeError\nmessage: ''\nbacktrace:\n");
    assert_string_equal(e->message, "");
    assert_string_equal(e->summary, "RuntimeError");
    aj_admin_error_free(e);
    e = parse("--- !ruby/exception:Net::ReadTimeout\nbacktrace:\n");
    assert_string_equal(e->class_name, "Net::ReadTimeout");
    assert_null(e->message);
    aj_admin_error_free(e);

    /* the backtrace keeps its first 10 lines */
    char big[4096] = "--- !ruby/exception:E\nmessage: m\nbacktrace:\n";
    for (int i = 0; i < 40; i++)
        snprintf(big + strlen(big), sizeof big - strlen(big), "- line %d\n", i);
    e = parse(big);
    assert_int_equal(e->backtrace_count, 10);
    assert_string_equal(e->backtrace[9], "line 9");
    aj_admin_error_free(e);

    /* a truncated document (list reads the first 16 KB) still says what it can */
    e = parse("--- !ruby/exception:Stripe::CardError\nmessage: \"Your card was decl");
    assert_string_equal(e->class_name, "Stripe::CardError");
    assert_string_equal(e->message, "Your card was decl");
    aj_admin_error_free(e);
    e = parse("{\"class\": \"builtins.KeyError\", \"message\": \"'ride_id'\", \"traceback\": [\"  Fi");
    assert_string_equal(e->format, "json");
    assert_string_equal(e->class_name, "builtins.KeyError");
    assert_string_equal(e->message, "'ride_id'");
    aj_admin_error_free(e);

    /* the core's own documents, and a Python traceback as one string */
    e = parse("{\"class\":\"AJ_EUNKNOWN_RECOVERY_POINT\",\"message\":\"the run of key \\\"k\\\" is "
              "at recovery point \\\"x\\\"\"}");
    assert_string_equal(e->summary, "AJ_EUNKNOWN_RECOVERY_POINT: the run of key \"k\" is at "
                                    "recovery point \"x\"");
    aj_admin_error_free(e);
    e = parse("{\"message\": \"m\", \"traceback\": \"Traceback (most recent call last):\\n  File "
              "\\\"a.py\\\", line 1\\n    x()\\n\"}");
    assert_null(e->class_name);
    assert_int_equal(e->backtrace_count, 3);
    assert_string_equal(e->backtrace[1], "File \"a.py\", line 1");
    aj_admin_error_free(e);

    /* anything else is shown as it is */
    e = parse("boom: it broke");
    assert_string_equal(e->format, "text");
    assert_string_equal(e->message, "boom: it broke");
    assert_null(e->class_name);
    aj_admin_error_free(e);
    e = parse("---\n- just\n- a list\n");
    assert_string_equal(e->format, "text");
    assert_string_equal(e->summary, "--- - just - a list");
    aj_admin_error_free(e);
    e = parse("");
    assert_string_equal(e->message, "");
    assert_string_equal(e->summary, "");
    aj_admin_error_free(e);
    /* bytes that are not UTF-8, control characters and NUL bytes are never handed out */
    aj_admin_error *raw = NULL;
    assert_aj(aj_admin_error_parse(&raw, "a\0b\xff\x1b[2Jc", 9), AJ_OK);
    assert_string_equal(raw->message, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD\xEF\xBF\xBD[2Jc");
    aj_admin_error_free(raw);
    /* one line, at most 300 bytes and an ellipsis, cut between characters */
    char long_doc[1200];
    memcpy(long_doc, "{\"class\":\"E\",\"message\":\"", 24);
    size_t at = 24;
    for (int i = 0; i < 250; i++) {
        memcpy(long_doc + at, "\xC3\xA9\\n", 4); /* é and a line break */
        at += 4;
    }
    memcpy(long_doc + at, "\"}", 3);
    e = parse(long_doc);
    assert_null(strchr(e->summary, '\n'));
    assert_true(strlen(e->summary) <= 303);
    assert_string_equal(e->summary + strlen(e->summary) - 3, "\xE2\x80\xA6");
    assert_int_equal((unsigned char)e->summary[strlen(e->summary) - 4], 0xA9); /* whole é */
    aj_admin_error_free(e);

    assert_aj(aj_admin_error_parse(NULL, "x", 1), AJ_EINVALID);
    assert_aj(aj_admin_error_parse(&e, NULL, 3), AJ_EINVALID);
    assert_aj(aj_admin_error_parse(&e, NULL, 0), AJ_OK);
    assert_string_equal(e->format, "text");
    aj_admin_error_free(e);
    aj_admin_error_free(NULL);
}

/* Tables an application made without timestamps: "updated" is last_run_at, and no
 * statement names a column the tables lack. */
void test_admin_tables_without_timestamps(void **state) {
    (void)state;
    if (g_db == DB_SQLITE) {
        raw_exec("CREATE TABLE acidic_job_keys (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,"
                 " idempotency_key varchar NOT NULL, job_name varchar NOT NULL, job_args text,"
                 " last_run_at datetime(6) DEFAULT CURRENT_TIMESTAMP NOT NULL,"
                 " locked_at datetime(6), recovery_point varchar NOT NULL, error_object text,"
                 " attr_accessors text, workflow text)");
        raw_exec("CREATE TABLE staged_acidic_jobs (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,"
                 " adapter varchar NOT NULL, job_name varchar NOT NULL, job_args text)");
    } else {
        raw_exec("CREATE TABLE acidic_job_keys (id bigserial PRIMARY KEY,"
                 " idempotency_key varchar NOT NULL, job_name varchar NOT NULL, job_args text,"
                 " last_run_at timestamp(6) DEFAULT CURRENT_TIMESTAMP NOT NULL,"
                 " locked_at timestamp(6), recovery_point varchar NOT NULL, error_object text,"
                 " attr_accessors text, workflow text)");
        raw_exec("CREATE TABLE staged_acidic_jobs (id bigserial PRIMARY KEY,"
                 " adapter varchar NOT NULL, job_name varchar NOT NULL, job_args text)");
    }
    aj_store *s = open_store();
    counter enq = {0};
    aj_store_set_enqueue(s, count_enqueue, &enq);
    aj_workflow *wf = zoo_wf();
    fail_key(s, wf, "bare", "BareJob", "b", ruby_error);
    script st = {.stage_at = "a", .n_stage = 1};
    assert_aj(run_key(s, wf, "staged", "BareJob", &st), AJ_OK);
    int64_t now = now_us();
    aj_admin_filter f = AJ_ADMIN_FILTER_INIT;
    f.updated_since_us = now - HOUR_US;
    aj_admin_page *page = NULL;
    assert_aj(aj_admin_list(s, &f, &page), AJ_OK);
    assert_int_equal(page->count, 2);
    const aj_admin_run *r = page->runs[0];
    assert_int_equal(r->created_at_us, 0);
    assert_int_equal(r->updated_at_us, r->last_run_at_us);
    assert_true(r->last_run_at_us > now - HOUR_US);
    assert_string_equal(r->error_class, "Stripe::CardError");
    aj_admin_page_free(page);
    aj_admin_detail *d = NULL;
    assert_aj(aj_admin_show(s, "staged", 0, &d), AJ_OK);
    assert_int_equal(d->n_staged, 1);
    assert_int_equal(d->staged[0]->created_at_us, 0);
    aj_admin_detail_free(d);
    assert_aj(aj_admin_retry(s, "bare", 0, 0), AJ_OK);
    assert_int_equal(enq.n, 2);
    assert_aj(aj_admin_discard(s, "bare", 0, 0), AJ_OK);
    aj_admin_stats *stats = NULL;
    assert_aj(aj_admin_stats_read(s, &stats), AJ_OK);
    assert_int_equal(stats->total, 2);
    assert_int_equal(stats->oldest_staged->created_at_us, 0);
    aj_admin_stats_free(stats);
    set_time(s, "last_run_at", "bare", now - 48 * HOUR_US);
    f = (aj_admin_filter)AJ_ADMIN_FILTER_INIT;
    f.updated_before_us = now - 24 * HOUR_US;
    size_t deleted = 0;
    assert_aj(aj_admin_prune(s, &f, NULL, NULL, &deleted), AJ_OK);
    assert_int_equal(deleted, 1);
    assert_int_equal(count_rows(s, "acidic_job_keys"), 1);
    aj_workflow_free(wf);
    aj_store_free(s);
}
