/* Recovery: runs whose worker died and failed runs whose retry is due go back to their
 * queue, once per lock timeout, under the same key; runs that keep failing die. */
#include "harness.h"
#include "tests.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static aj_store *store_with(int64_t lock_ms, int64_t retry_ms, int max_attempts) {
    aj_options o = AJ_OPTIONS_INIT;
    o.lock_timeout_ms = lock_ms;
    o.retry_base_ms = retry_ms;
    o.max_attempts = max_attempts;
    aj_store *s = NULL;
    int rc = aj_store_open(&s, test_url(), &o);
    if (rc != AJ_OK) fail_msg("open: %s", aj_error_last()->message);
    return s;
}

/* A run described as the job "ResumeJob" of adapter "sidekiq" with payload "<key>". */
static int start(aj_run **out, aj_store *s, aj_workflow *wf, const char *key, int describe) {
    aj_run_params p = AJ_RUN_PARAMS_INIT;
    p.key = key;
    p.job_name = "TestJob";
    p.args = "[1]";
    p.args_len = 3;
    if (describe) {
        p.resume_adapter = "sidekiq";
        p.resume_job_name = "ResumeJob";
        p.resume_payload = key;
        p.resume_payload_len = strlen(key);
    }
    return aj_run_new(out, s, wf, &p);
}

/* A worker that dies inside its second step: the first committed, the lock is held. */
static void die_in_b(aj_store *s, aj_workflow *wf, const char *key) {
    aj_run *run = NULL;
    assert_aj(start(&run, s, wf, key, 1), AJ_OK);
    script sc = {0};
    assert_aj(aj_run_step(run, script_step, &sc), AJ_OK);
    assert_string_equal(aj_run_recovery_point(run), "b");
    aj_run_free(run); /* the process is gone: the row stays locked */
    assert_int_equal(key_locked(s, key), 1);
}

void test_recover_stranded(void **state) {
    (void)state;
    aj_store *s = store_with(100, AJ_UNSET, AJ_UNSET);
    recorder rec = {0};
    aj_store_set_enqueue(s, recorder_enqueue, &rec);
    aj_workflow *wf = make_wf("a", "b", "c", NULL);
    die_in_b(s, wf, "stranded");

    /* within the lock timeout the holder may be alive: nothing happens */
    size_t requeued = 9, dead = 9;
    assert_aj(aj_store_recover(s, 0, &requeued, &dead), AJ_OK);
    assert_int_equal(requeued, 0);
    assert_int_equal(dead, 0);
    assert_int_equal(rec.n, 0);

    /* a worker that tries meanwhile is told when recovery would pick the run up */
    aj_run *other = NULL;
    assert_aj(start(&other, s, wf, "stranded", 1), AJ_OK);
    script none = {0};
    assert_aj(aj_run_execute(other, script_step, &none), AJ_ELOCKED);
    assert_non_null(strstr(aj_error_last()->message, "If that worker died, recovery hands the "
                                                    "run back to its queue after"));
    aj_run_free(other);

    sleep_ms(150);
    assert_aj(aj_store_recover(s, 0, &requeued, &dead), AJ_OK);
    assert_int_equal(requeued, 1);
    assert_int_equal(dead, 0);
    assert_int_equal(rec.n, 1);
    assert_string_equal(rec.adapter[0], "sidekiq");
    assert_string_equal(rec.job_name[0], "ResumeJob");
    assert_string_equal(rec.payload[0], "stranded");
    /* handed out once per lock timeout, however often recovery sweeps */
    assert_aj(aj_store_recover(s, 0, &requeued, NULL), AJ_OK);
    assert_int_equal(requeued, 0);
    assert_int_equal(rec.n, 1);

    /* the job came back: it takes the run over and resumes at b */
    aj_run *run = NULL;
    assert_aj(start(&run, s, wf, "stranded", 1), AJ_OK);
    script sc = {0};
    assert_aj(aj_run_execute(run, script_step, &sc), AJ_OK);
    assert_string_equal(script_calls(&sc), "b,c");
    assert_int_equal(aj_run_status(run), AJ_RUN_SUCCEEDED);
    assert_int_equal(aj_run_attempts(run), 2);
    aj_run_free(run);
    /* a finished run is never recovered */
    sleep_ms(150);
    assert_aj(aj_store_recover(s, 0, &requeued, NULL), AJ_OK);
    assert_int_equal(requeued, 0);
    /* the staged resume job is a staged job like any other */
    assert_aj(aj_staged_ack(s, rec.ids[0], NULL), AJ_OK);
    assert_int_equal(count_rows(s, "staged_acidic_jobs"), 0);
    aj_workflow_free(wf);
    aj_store_free(s);
}

void test_recover_failed_retry(void **state) {
    (void)state;
    aj_store *s = store_with(AJ_UNSET, 100, AJ_UNSET);
    recorder rec = {0};
    aj_store_set_enqueue(s, recorder_enqueue, &rec);
    aj_workflow *wf = make_wf("a", "b", NULL);
    aj_run *run = NULL;
    assert_aj(start(&run, s, wf, "flaky", 1), AJ_OK);
    script sc = {.fail_at = "b"};
    assert_aj(aj_run_execute(run, script_step, &sc), AJ_ESTEP);
    assert_int_equal(aj_run_attempts(run), 1);
    aj_run_free(run);
    assert_int_equal(key_locked(s, "flaky"), 0);
    size_t requeued = 9;
    assert_aj(aj_store_recover(s, 0, &requeued, NULL), AJ_OK);
    assert_int_equal(requeued, 0); /* the retry waits retry_base_ms */
    sleep_ms(150);
    assert_aj(aj_store_recover(s, 0, &requeued, NULL), AJ_OK);
    assert_int_equal(requeued, 1);
    assert_string_equal(rec.payload[0], "flaky");
    /* a second failure waits twice as long */
    assert_aj(start(&run, s, wf, "flaky", 1), AJ_OK);
    sc.ncalls = 0;
    assert_aj(aj_run_execute(run, script_step, &sc), AJ_ESTEP);
    assert_string_equal(script_calls(&sc), "b");
    assert_int_equal(aj_run_attempts(run), 2);
    aj_run_free(run);
    assert_int_equal(q_int(s, "SELECT attempts FROM acidic_job_keys WHERE idempotency_key = ?",
                           "flaky", NULL), 2);
    sleep_ms(120);
    assert_aj(aj_store_recover(s, 0, &requeued, NULL), AJ_OK);
    assert_int_equal(requeued, 0);
    sleep_ms(150);
    assert_aj(aj_store_recover(s, 0, &requeued, NULL), AJ_OK);
    assert_int_equal(requeued, 1);
    aj_workflow_free(wf);
    aj_store_free(s);
}

void test_recover_dead(void **state) {
    (void)state;
    aj_store *s = store_with(100, 10, 2);
    recorder rec = {0};
    aj_store_set_enqueue(s, recorder_enqueue, &rec);
    aj_workflow *wf = make_wf("a", "b", NULL);
    /* a run that fails every time dies at max_attempts */
    script sc = {.fail_at = "a", .error_doc = "{\"class\":\"Boom\"}"};
    for (int i = 1; i <= 2; i++) {
        aj_run *run = NULL;
        assert_aj(start(&run, s, wf, "doomed", 1), AJ_OK);
        assert_aj(aj_run_execute(run, script_step, &sc), AJ_ESTEP);
        assert_int_equal(aj_run_status(run), i == 2 ? AJ_RUN_DEAD : AJ_RUN_FAILED);
        if (i == 2) assert_non_null(strstr(aj_error_last()->message, "dead"));
        aj_run_free(run);
    }
    assert_int_equal(q_int(s, "SELECT COUNT(*) FROM acidic_job_keys WHERE idempotency_key = ? AND "
                              "dead_at IS NOT NULL AND attempts = 2", "doomed", NULL), 1);
    char *err = key_error(s, "doomed");
    assert_string_equal(err, "{\"class\":\"Boom\"}"); /* the last error stays visible */
    free(err);
    /* a dead run is not acquired, and not recovered */
    aj_run *run = NULL;
    assert_aj(start(&run, s, wf, "doomed", 1), AJ_OK);
    script none = {0};
    assert_aj(aj_run_execute(run, script_step, &none), AJ_OK);
    assert_int_equal(aj_run_status(run), AJ_RUN_DEAD);
    assert_int_equal(none.ncalls, 0);
    aj_run_free(run);
    sleep_ms(50);
    size_t requeued = 9, dead = 9;
    assert_aj(aj_store_recover(s, 0, &requeued, &dead), AJ_OK);
    assert_int_equal(requeued + dead, 0);

    /* a run whose worker keeps dying is marked dead by recovery */
    aj_workflow_free(wf);
    wf = make_wf("a", "b", "c", NULL);
    die_in_b(s, wf, "killed"); /* attempt 1 */
    sleep_ms(150);
    assert_aj(aj_store_recover(s, 0, &requeued, &dead), AJ_OK);
    assert_int_equal(requeued, 1);
    assert_aj(start(&run, s, wf, "killed", 1), AJ_OK); /* attempt 2: b, then dies in c */
    script one = {0};
    assert_aj(aj_run_step(run, script_step, &one), AJ_OK);
    aj_run_free(run);
    sleep_ms(150);
    assert_aj(aj_store_recover(s, 0, &requeued, &dead), AJ_OK);
    assert_int_equal(requeued, 0);
    assert_int_equal(dead, 1);
    assert_int_equal(key_locked(s, "killed"), 0);
    err = key_error(s, "killed");
    assert_non_null(err);
    assert_non_null(strstr(err, "max_attempts"));
    free(err);
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* Runs recovery cannot enqueue (no resume description, or finished) are left alone and
 * stop being looked at. */
void test_recover_skips(void **state) {
    (void)state;
    aj_store *s = store_with(50, AJ_UNSET, AJ_UNSET);
    recorder rec = {0};
    aj_store_set_enqueue(s, recorder_enqueue, &rec);
    aj_workflow *wf = make_wf("a", "b", NULL);
    aj_run *run = NULL;
    assert_aj(start(&run, s, wf, "anonymous", 0), AJ_OK);
    script sc = {0};
    assert_aj(aj_run_step(run, script_step, &sc), AJ_OK);
    aj_run_free(run);
    /* a new run without a resume description is not scheduled: recovery could only clear it */
    assert_int_equal(key_locked(s, "anonymous"), 1);
    assert_int_equal(q_int(s, "SELECT COUNT(*) FROM acidic_job_keys WHERE recover_at IS NULL",
                           NULL, NULL), 1);
    sleep_ms(100);
    size_t requeued = 9;
    assert_aj(aj_store_recover(s, 0, &requeued, NULL), AJ_OK);
    assert_int_equal(requeued, 0);
    assert_int_equal(rec.n, 0);
    assert_int_equal(q_int(s, "SELECT COUNT(*) FROM acidic_job_keys WHERE recover_at IS NULL",
                           NULL, NULL), 1);
    assert_aj(aj_store_recover(NULL, 0, NULL, NULL), AJ_EINVALID);
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* Many processes sweep at once: each stranded run is handed out once. */
void test_recover_concurrent(void **state) {
    (void)state;
    enum { RUNS = 20, P = 4 };
    aj_store *s = store_with(100, AJ_UNSET, AJ_UNSET);
    aj_workflow *wf = make_wf("a", "b", NULL);
    for (int i = 0; i < RUNS; i++) {
        char key[16];
        snprintf(key, sizeof key, "r%d", i);
        die_in_b(s, wf, key);
    }
    sleep_ms(150);
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
            aj_options o = AJ_OPTIONS_INIT;
            o.lock_timeout_ms = 100;
            o.conflict_retries = 50;
            aj_store *cs = NULL;
            if (aj_store_open(&cs, test_url(), &o) != AJ_OK) _exit(10);
            recorder crec = {0};
            aj_store_set_enqueue(cs, recorder_enqueue, &crec);
            barrier_wait(&b);
            size_t requeued = 0;
            int rc = aj_store_recover(cs, 0, &requeued, NULL);
            if (rc != AJ_OK) {
                fprintf(stderr, "child recover: %s\n", aj_error_last()->message);
                _exit(12);
            }
            char c = (char)crec.n;
            if (write(fds[1], &c, 1) != 1 || (size_t)crec.n != requeued) _exit(13);
            aj_store_free(cs);
            _exit(0);
        }
    }
    close(fds[1]);
    barrier_release(&b);
    int total = 0;
    for (int p = 0; p < P; p++) {
        assert_int_equal(wait_child(pids[p]), 0);
        char c;
        assert_int_equal(read(fds[0], &c, 1), 1);
        total += c;
    }
    close(fds[0]);
    assert_int_equal(total, RUNS);
    assert_int_equal(count_rows(s, "staged_acidic_jobs"), RUNS);
    aj_workflow_free(wf);
    aj_store_free(s);
}

/* The frames of a SQLite WAL file (after the last reset), as their page numbers. */
static int wal_frames(const char *db_path, unsigned *pages, int max) {
    char path[600];
    snprintf(path, sizeof path, "%s-wal", db_path);
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    unsigned char hdr[32], fh[24];
    int n = 0;
    if (fread(hdr, 1, 32, f) == 32) {
        unsigned page = (unsigned)hdr[8] << 24 | (unsigned)hdr[9] << 16 | hdr[10] << 8 | hdr[11];
        while (n < max && fread(fh, 1, 24, f) == 24 && memcmp(fh + 8, hdr + 16, 8) == 0) {
            pages[n++] = (unsigned)fh[0] << 24 | (unsigned)fh[1] << 16 | fh[2] << 8 | fh[3];
            if (fseek(f, (long)page, SEEK_CUR) != 0) break;
        }
    }
    fclose(f);
    return n;
}

/* A plain step (neither the first nor the last) leaves recover_at alone, and writes no
 * entry of an index: on SQLite no page of recover_at's index is in the WAL it wrote (SQLite
 * rewrites the index entries of every column an UPDATE names, whatever the value); on
 * PostgreSQL its update of the run's row is heap-only (HOT). */
void test_recover_plain_step_writes_no_index(void **state) {
    (void)state;
    aj_store *s = open_store();
    aj_workflow *wf = make_wf("a", "b", "c", "d", NULL);
    aj_run *run = NULL;
    assert_aj(start(&run, s, wf, "plain-step", 1), AJ_OK);
    script sc = {0};
    assert_aj(aj_run_step(run, script_step, &sc), AJ_OK);
    char *due = q_text(s, "SELECT recover_at FROM acidic_job_keys WHERE idempotency_key = ?",
                       "plain-step", NULL);
    assert_non_null(due); /* the acquisition scheduled a look */
    if (aj_store_sqlite(s)) {
        q_exec(s, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL);
        unsigned pages[64];
        assert_int_equal(wal_frames(test_sqlite_path(), pages, 64), 0);
        assert_aj(aj_run_step(run, script_step, &sc), AJ_OK);
        int n = wal_frames(test_sqlite_path(), pages, 64), keys = 0;
        assert_true(n > 0);
        for (int i = 0; i < n; i++) {
            char no[16];
            snprintf(no, sizeof no, "%u", pages[i]);
            char *name = q_text(s, "SELECT name FROM dbstat WHERE pageno = CAST(? AS integer)",
                                no, NULL);
            if (name && strcmp(name, "index_acidic_job_keys_on_recover_at") == 0)
                fail_msg("a plain step wrote page %u of recover_at's index", pages[i]);
            keys += name && strcmp(name, "acidic_job_keys") == 0;
            free(name);
        }
        assert_int_equal(keys, 1); /* the run's row itself was written */
    } else {
        const char *hot = "SELECT pg_stat_get_tuples_hot_updated('acidic_job_keys'::regclass)"
                          " + pg_stat_get_xact_tuples_hot_updated('acidic_job_keys'::regclass)";
        const char *upd = "SELECT pg_stat_get_tuples_updated('acidic_job_keys'::regclass)"
                          " + pg_stat_get_xact_tuples_updated('acidic_job_keys'::regclass)";
        q_exec(s, "SELECT pg_stat_force_next_flush()", NULL, NULL);
        int64_t hot0 = q_int(s, hot, NULL, NULL), upd0 = q_int(s, upd, NULL, NULL);
        assert_aj(aj_run_step(run, script_step, &sc), AJ_OK);
        int64_t hot1 = hot0, upd1 = upd0;
        for (int i = 0; i < 100 && upd1 == upd0; i++) { /* statistics arrive after commit */
            q_exec(s, "SELECT pg_stat_force_next_flush()", NULL, NULL);
            hot1 = q_int(s, hot, NULL, NULL);
            upd1 = q_int(s, upd, NULL, NULL);
            if (upd1 == upd0) sleep_ms(20);
        }
        assert_int_equal(upd1 - upd0, 1);
        assert_int_equal(hot1 - hot0, 1);
    }
    char *after = q_text(s, "SELECT recover_at FROM acidic_job_keys WHERE idempotency_key = ?",
                         "plain-step", NULL);
    assert_non_null(after);
    assert_string_equal(after, due); /* left as it was */
    assert_string_equal(aj_run_recovery_point(run), "c");
    free(due);
    free(after);
    aj_run_free(run);
    aj_workflow_free(wf);
    aj_store_free(s);
}
