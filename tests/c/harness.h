/* Shared helpers of the C test suite: a fresh database per test, on SQLite or PostgreSQL,
 * and small helpers that read the tables through the public API. */
#ifndef AJ_TEST_HARNESS_H
#define AJ_TEST_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "acidic_job.h"

typedef enum { DB_SQLITE = 1, DB_POSTGRES = 2 } db_kind;

extern db_kind g_db;

/* "sqlite" or "postgres". */
const char *db_name(void);

/* Group setup/teardown (one temp dir / one admin connection) and per-test setup/teardown
 * (a fresh database: a new SQLite file or a new PostgreSQL schema). */
int harness_group_setup(void **state);
int harness_group_teardown(void **state);
int fresh_db_setup(void **state);
int fresh_db_teardown(void **state);

/* The URL of this test's fresh database. */
const char *test_url(void);
/* SQLite: the file path of this test's database. PostgreSQL: its schema name. */
const char *test_sqlite_path(void);
const char *test_pg_schema(void);
/* PostgreSQL: the same database as libpq conninfo ("host='..' port='..' ..."). */
const char *test_pg_conninfo(void);
/* Further fresh databases in this test (i < 8; SQLite: other files; PostgreSQL: other
 * schemas), dropped at teardown. */
const char *test_url_extra(int i);

/* Open a store on test_url() (asserts success). lock_timeout_ms <= 0: the default. */
aj_store *open_store(void);
aj_store *open_store_lock(int64_t lock_timeout_ms);

/* Build a workflow of the given step names (NULL-terminated), no awaits. */
aj_workflow *make_wf(const char *first, ...);

/* Acquire key/args (args may be NULL) with job_name "TestJob"; asserts AJ_OK. */
aj_run *acquire_ok(aj_store *s, const aj_workflow *wf, const char *key, const char *args);
/* Same, returning the code; *out is written only on success. */
int acquire(aj_run **out, aj_store *s, const aj_workflow *wf, const char *key,
            const char *args);

/* Run SQL through aj_store_exec (asserts success) with up to two text parameters (NULL:
 * none). q_int returns the first cell of the first row as an integer, -1 when there is no
 * row; q_text returns a malloc'd copy of it or NULL (no row or SQL NULL). */
void q_exec(aj_store *s, const char *sql, const char *p1, const char *p2);
int64_t q_int(aj_store *s, const char *sql, const char *p1, const char *p2);
char *q_text(aj_store *s, const char *sql, const char *p1, const char *p2);

/* Execute SQL on this test's database over a connection of its own (sqlite3 / libpq),
 * without the core; asserts success. */
void raw_exec(const char *sql);

/* Convenience readers of acidic_job_keys for one idempotency key. */
char *key_recovery_point(aj_store *s, const char *key);
int key_locked(aj_store *s, const char *key); /* 1 locked, 0 unlocked, -1 no row */
char *key_error(aj_store *s, const char *key);
char *key_attributes(aj_store *s, const char *key);
int64_t count_rows(aj_store *s, const char *table);
int table_exists(aj_store *s, const char *table);

/* The app table the step callbacks write to: app_log(step TEXT). */
void create_app_table(aj_store *s);
int64_t app_rows(aj_store *s, const char *step); /* step NULL: all rows */

/* A scripted step callback. Each field names the step where the action happens. */
typedef struct script {
    aj_store *store;          /* where app writes go (defaults to the run's store) */
    int write_app;            /* insert (step) into app_log in every step */
    const char *fail_at;      /* return 1 in this step ... */
    const char *error_doc;    /* ... after aj_run_set_error(error_doc) when not NULL */
    const char *finish_at;    /* aj_run_finish() */
    const char *goto_at;      /* aj_run_goto(goto_to) */
    const char *goto_to;
    const char *attrs_at;     /* aj_run_set_attributes(attrs_doc) */
    const char *attrs_doc;
    const char *stage_at;     /* aj_run_stage(n_stage jobs: "StagedJob", payload "p<i>") */
    int n_stage;
    const char *await_at;     /* aj_run_await(n_await jobs: "ChildJob", payload "c<i>")
                                 and aj_run_set_continuation("ContinueJob", "cont") */
    int n_await;
    int no_continuation;      /* with await_at: skip aj_run_set_continuation */
    /* results */
    int ncalls;
    char called[32][32];
    int api_rc;               /* first non-zero return of an API call made in a step */
    int64_t ids[64];          /* ids returned by aj_run_stage / aj_run_await */
    int nids;
} script;

int script_step(aj_run *run, const char *step, void *ctx);
/* "a,b,c": the steps called so far. */
const char *script_calls(const script *sc);

/* An enqueue callback that records what it is handed. */
typedef struct recorder {
    int reject;               /* return 1 (leave the row for a drain) */
    aj_store *check;          /* when set: verify the row is committed (visible here) */
    int n;
    int64_t ids[64];
    char adapter[64][32];
    char job_name[64][64];
    char payload[64][64];
    size_t payload_len[64];
    int visible[64];          /* with check: 1 when the row was visible from `check` */
} recorder;

int recorder_enqueue(void *ctx, const aj_staged_job *job);

/* Fork helpers. A child must never return into cmocka: it calls _exit. */
typedef struct barrier { int fds[2]; } barrier;
void barrier_init(barrier *b);
void barrier_wait(barrier *b);    /* in a child: block until released */
void barrier_release(barrier *b); /* in the parent: release every child */

/* Wait for pid and return its exit status (or 128+signal). */
int wait_child(int pid);

/* Sleep for ms milliseconds. */
void sleep_ms(int ms);

/* 1 when an owned store of this database claims a run's row before the step callback
 * (PostgreSQL), 0 when it claims it last (SQLite): a step that lost its run then runs
 * its callback before noticing, and rolls everything back. */
int owned_claims_first(void);

/* Assert that an acidic_job call returns `code`; on failure show the error message. */
#define assert_aj(expr, code)                                                              \
    do {                                                                                   \
        int aj_rc_ = (expr);                                                               \
        if (aj_rc_ != (code))                                                              \
            fail_msg("%s = %s (%s), expected %s", #expr, aj_code_name(aj_rc_),             \
                     aj_error_last()->message, aj_code_name(code));                        \
    } while (0)

/* Assert that the last error has the code and a non-empty message. */
void assert_last_error(int code);

/* The two-step fan_out (awaits ChildJob) / fan_in workflow (test_await.c). */
aj_workflow *await_wf(void);

#endif
