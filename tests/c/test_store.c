/* Opening stores: URL forms, bad URLs, the schema, idempotent reopening, racing migrations. */
#include "harness.h"
#include "tests.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void assert_schema(aj_store *s) {
    assert_true(table_exists(s, "acidic_job_keys"));
    assert_true(table_exists(s, "staged_acidic_jobs"));
    assert_true(table_exists(s, "acidic_job_batches"));
    assert_true(table_exists(s, "acidic_job_schema"));
    /* the 0.7.0 columns and the core's additions are all there */
    q_exec(s,
           "SELECT id, idempotency_key, job_name, job_args, last_run_at, locked_at, "
           "recovery_point, error_object, attr_accessors, workflow, created_at, updated_at "
           "FROM acidic_job_keys",
           NULL, NULL);
    q_exec(s, "SELECT id, adapter, job_name, job_args, created_at, updated_at, batch_id "
              "FROM staged_acidic_jobs",
           NULL, NULL);
    q_exec(s,
           "SELECT id, key_id, step, remaining, continuation_adapter, continuation_job_name, "
           "continuation_args, created_at, updated_at FROM acidic_job_batches",
           NULL, NULL);
    assert_int_equal(count_rows(s, "acidic_job_schema"), 1);
    assert_true(q_int(s, "SELECT MAX(version) FROM acidic_job_schema", NULL, NULL) >= 1);
}

void test_open_url_forms(void **state) {
    (void)state;
    aj_store *s = open_store();
    assert_string_equal(aj_store_driver(s), db_name());
    assert_int_equal(aj_store_is_borrowed(s), 0);
    if (g_db == DB_SQLITE) {
        assert_non_null(aj_store_sqlite(s));
        assert_null(aj_store_pg(s));
    } else {
        assert_non_null(aj_store_pg(s));
        assert_null(aj_store_sqlite(s));
    }
    assert_schema(s);
    aj_store_free(s);

    /* the other spellings reach the same database */
    char url[2200];
    if (g_db == DB_SQLITE) {
        snprintf(url, sizeof url, "sqlite://%s", test_sqlite_path());
    } else {
        snprintf(url, sizeof url, "%s", test_pg_conninfo());
        assert_true(strlen(url) > 0);
    }
    s = NULL;
    int rc = aj_store_open(&s, url, NULL);
    if (rc != AJ_OK) fail_msg("aj_store_open(%s): %s", url, aj_error_last()->message);
    assert_string_equal(aj_store_driver(s), db_name());
    assert_int_equal(count_rows(s, "acidic_job_schema"), 1);
    aj_store_free(s);

    if (g_db == DB_SQLITE) {
        /* an in-memory database gets its own schema */
        s = NULL;
        assert_aj(aj_store_open(&s, "sqlite::memory:", NULL), AJ_OK);
        assert_string_equal(aj_store_driver(s), "sqlite");
        assert_schema(s);
        aj_workflow *wf = make_wf("a", NULL);
        aj_run *run = acquire_ok(s, wf, "mem", NULL);
        script sc = {.write_app = 0};
        assert_aj(aj_run_execute(run, script_step, &sc), AJ_OK);
        assert_aj(aj_run_status(run), AJ_RUN_SUCCEEDED);
        aj_run_free(run);
        aj_workflow_free(wf);
        aj_store_free(s);
    } else {
        /* postgresql:// as well as postgres:// */
        const char *u = test_url();
        const char *rest = strstr(u, "://");
        assert_non_null(rest);
        snprintf(url, sizeof url, "%s%s",
                 strncmp(u, "postgres://", 11) == 0 ? "postgresql" : "postgres", rest);
        s = NULL;
        rc = aj_store_open(&s, url, NULL);
        if (rc != AJ_OK) fail_msg("aj_store_open(%s): %s", url, aj_error_last()->message);
        assert_string_equal(aj_store_driver(s), "postgres");
        aj_store_free(s);
    }
}

/* A URL the core cannot use fails with a clear code, a message, and no store. */
static void expect_open_fails(const char *url, int code_a, int code_b) {
    aj_store *sentinel = (aj_store *)(uintptr_t)0x1;
    aj_store *s = sentinel;
    aj_error_clear();
    int rc = aj_store_open(&s, url, NULL);
    if (rc != code_a && rc != code_b)
        fail_msg("aj_store_open(\"%s\") = %s, expected %s or %s", url ? url : "(null)",
                 aj_code_name(rc), aj_code_name(code_a), aj_code_name(code_b));
    assert_ptr_equal(s, sentinel); /* out-parameters are written only on success */
    assert_last_error(rc);
}

void test_open_malformed(void **state) {
    (void)state;
    assert_aj(aj_store_open(NULL, test_url(), NULL), AJ_EINVALID);
    expect_open_fails(NULL, AJ_EINVALID, AJ_EINVALID);
    expect_open_fails("", AJ_EINVALID, AJ_EINVALID);
    expect_open_fails("sqlite:", AJ_EINVALID, AJ_EINVALID);
    expect_open_fails("sqlite://", AJ_EINVALID, AJ_EINVALID);
    expect_open_fails("mysql://localhost/x", AJ_EINVALID, AJ_EDATABASE);
    expect_open_fails("not a url at all", AJ_EINVALID, AJ_EDATABASE);
    expect_open_fails("postgresql://%zz@127.0.0.1/x", AJ_EINVALID, AJ_EDATABASE);
    expect_open_fails("sqlite:/nonexistent-dir-aj/sub/x.db", AJ_EDATABASE, AJ_EDATABASE);

    /* options are validated too */
    aj_options o;
    assert_aj(aj_options_init(&o, AJ_OPTIONS_VERSION), AJ_OK);
    assert_int_equal(o.version, AJ_OPTIONS_VERSION);
    assert_int_equal(o.lock_timeout_ms, AJ_UNSET);
    assert_aj(aj_options_init(&o, 99), AJ_EINVALID);
    assert_aj(aj_options_init(NULL, AJ_OPTIONS_VERSION), AJ_EINVALID);
    aj_store *s = NULL;
    /* unset options take the core's defaults, decided in one place */
    aj_options_init(&o, AJ_OPTIONS_VERSION);
    assert_aj(aj_store_open(&s, test_url(), &o), AJ_OK);
    aj_options eff;
    assert_aj(aj_store_options(s, &eff), AJ_OK);
    assert_int_equal(eff.lock_timeout_ms, 90000);
    assert_int_equal(eff.busy_timeout_ms, 5000);
    assert_int_equal(eff.synchronous, AJ_SYNC_FULL);
    assert_int_equal(eff.conflict_retries, 5);
    assert_int_equal(eff.max_attempts, 25);
    assert_int_equal(eff.retry_base_ms, 15000);
    assert_int_equal(eff.match_job_name, 1);
    aj_store_free(s);
    s = NULL;
    o.synchronous = 42;
    assert_aj(aj_store_open(&s, test_url(), &o), AJ_EINVALID);
    assert_non_null(strstr(aj_error_last()->message, "synchronous"));
    assert_null(s);
    aj_options_init(&o, AJ_OPTIONS_VERSION);
    o.lock_timeout_ms = -2;
    assert_aj(aj_store_open(&s, test_url(), &o), AJ_EINVALID);
    assert_non_null(strstr(aj_error_last()->message, "lock_timeout_ms"));
    assert_null(s);
    /* an options struct without its version is refused */
    aj_options zeroed = {0};
    assert_aj(aj_store_open(&s, test_url(), &zeroed), AJ_EINVALID);
    /* huge timeouts mean "never", without overflowing */
    aj_options_init(&o, AJ_OPTIONS_VERSION);
    o.lock_timeout_ms = INT64_MAX;
    o.busy_timeout_ms = INT64_MAX;
    assert_aj(aj_store_open(&s, test_url(), &o), AJ_OK);
    assert_aj(aj_store_options(s, &eff), AJ_OK);
    assert_true(eff.lock_timeout_ms > (int64_t)50 * 365 * 24 * 3600 * 1000);
    aj_store_free(s);
}

void test_open_redacts_password(void **state) {
    (void)state;
    const char *urls[] = {
        "postgresql://u:secret@127.0.0.1:1/x",
        "postgres://u:secret@127.0.0.1:1/x?connect_timeout=2",
        "host=127.0.0.1 port=1 user=u password=secret dbname=x",
        "host=127.0.0.1 port=1 user=u password='secret' dbname=x",
        "host=127.0.0.1 port=1 user=u password = secret dbname=x", /* spaces are legal */
        "host=127.0.0.1 port=1 user=u password= 'secret' dbname=x",
        "postgresql://127.0.0.1:1/x?user=u&password=secret",
        "postgresql://u:se%63ret@127.0.0.1:1/x",
    };
    int leaks = 0;
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        aj_store *s = NULL;
        aj_error_clear();
        int rc = aj_store_open(&s, urls[i], NULL);
        assert_int_equal(rc, AJ_EDATABASE);
        assert_null(s);
        const aj_error *e = aj_error_last();
        assert_int_equal(e->code, AJ_EDATABASE);
        assert_true(strlen(e->message) > 0);
        if (strstr(e->message, "secret") || strstr(e->message, "se%63ret")) {
            print_error("the password leaked into the message: %s\n", e->message);
            leaks++;
        }
    }
    assert_int_equal(leaks, 0);

    /* Passwords in forms libpq cannot parse, or misspells, or echoes back: whatever the
     * code, no message carries them. */
    struct { const char *url, *secret; } odd[] = {
        {"postgresql://u:pw/with/slash@127.0.0.1:1/x", "with/slash"},
        {"postgresql://u:pw/with/slash@127.0.0.1:1/x", "pw"},
        {"host=127.0.0.1 port=1 user=u passwd=Hunter2x dbname=x", "Hunter2x"},
        {"host=127.0.0.1 port=1 user=u PASSWORD=Hunter3x dbname=x", "Hunter3x"},
        {"host=/x\vpassword=Hunter2://x:Secret9@y", "Hunter2"},
        {"host=/x\vpassword=Hunter2://x:Secret9@y", "Secret9"},
        {"postgres://@:99999/x?password=Topsecret", "Topsecret"},
        /* found by tests/reliability's redaction fuzzer */
        {"mysql://user:pa?ss9word@h/db", "ss9word"},
        {"mysql://user:pa#ss9word@h/db", "ss9word"},
        {"host=127.0.0.1 port=1 password=abc&secret7 dbname=x", "secret7"},
        {"host=127.0.0.1 port=1 password = 'it''s-secret9' dbname=x", "s-secret9"},
        {"host=127.0.0.1 port=1 password='x'password=SECRET9", "SECRET9"},
        {"postgresql://paardsuer:hpaaost=` prd@", "hpaaost"},
        {"postgresql://paardsuer:hpaaost=` prd@", "prd"},
        /* a password that starts with the redaction mark is still a password */
        {"mysql://user:***Secret9x@h/db", "Secret9x"},
        {"sqlite3://u:***@***Pw8x@h/db", "Pw8x"},
        /* a password-like key before a URI's password: the spans were replaced out of
         * order, so the second landed beside the password */
        {"passwd='abcdefgh' postgresql://x:Secret9x@127.0.0.1:1/db", "Secret9"},
        {"postgresql://passwd='abcdefgh'x:Secret9x@127.0.0.1:1/x", "Secret9"},
    };
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        aj_store *s = NULL;
        aj_error_clear();
        int rc = aj_store_open(&s, odd[i].url, NULL);
        assert_int_not_equal(rc, AJ_OK);
        assert_null(s);
        const char *msg = aj_error_last()->message;
        if (strstr(msg, odd[i].secret))
            fail_msg("\"%s\" leaked into: %s", odd[i].secret, msg);
    }
    /* an impossible port is the caller's error, not the database's */
    aj_store *s = NULL;
    assert_aj(aj_store_open(&s, "postgres://@:99999/x", NULL), AJ_EINVALID);
    assert_aj(aj_store_open(&s, "postgres://@:-1/x", NULL), AJ_EINVALID);
    assert_aj(aj_store_open(&s, "host=127.0.0.1 port=1 sslmode=nonsense", NULL), AJ_EINVALID);
    assert_null(s);
}

void test_reopen_idempotent(void **state) {
    (void)state;
    aj_store *s = open_store();
    aj_workflow *wf = make_wf("a", "b", NULL);
    aj_run *run = acquire_ok(s, wf, "k1", "[1]");
    script sc = {0};
    assert_aj(aj_run_execute(run, script_step, &sc), AJ_OK);
    aj_run_free(run);
    aj_store_free(s);

    for (int i = 0; i < 3; i++) {
        s = open_store();
        assert_int_equal(count_rows(s, "acidic_job_schema"), 1);
        assert_int_equal(count_rows(s, "acidic_job_keys"), 1);
        /* migrate again explicitly: still nothing changes */
        assert_aj(aj_store_migrate(s), AJ_OK);
        assert_int_equal(count_rows(s, "acidic_job_schema"), 1);
        run = acquire_ok(s, wf, "k1", "[1]");
        assert_aj(aj_run_status(run), AJ_RUN_SUCCEEDED);
        aj_run_free(run);
        aj_store_free(s);
    }
    aj_workflow_free(wf);
}

/* Several processes open (and so migrate) a fresh database at the same moment; a few
 * rounds, each on a new database, because the race does not lose every time. */
void test_concurrent_migrate(void **state) {
    (void)state;
    enum { N = 4, ROUNDS = 6 };
    int failures = 0;
    for (int round = 0; round < ROUNDS; round++) {
        const char *url = round == 0 ? test_url() : test_url_extra(round - 1);
        barrier b;
        barrier_init(&b);
        int pids[N];
        for (int i = 0; i < N; i++) {
            pids[i] = fork();
            assert_true(pids[i] >= 0);
            if (pids[i] == 0) {
                barrier_wait(&b);
                aj_store *s = NULL;
                int rc = aj_store_open(&s, url, NULL);
                if (rc != AJ_OK) {
                    fprintf(stderr, "round %d, child %d: aj_store_open: %s: %s\n", round, i,
                            aj_code_name(rc), aj_error_last()->message);
                    _exit(1);
                }
                aj_store_free(s);
                _exit(0);
            }
        }
        barrier_release(&b);
        for (int i = 0; i < N; i++) failures += wait_child(pids[i]) != 0;
    }
    assert_int_equal(failures, 0);
    aj_store *s = open_store();
    assert_schema(s);
    aj_store_free(s);
}
