/*
 * libFuzzer target: the tables as the application made them (schema.c, decision 010).
 * 0.9 has no migration lines any more (0.8's "?column" parser is gone): the core reads the
 * columns the tables have and heals what is missing. This target builds, on an in-memory
 * SQLite database, the shapes applications have: acidic_job 0.7.0's two tables with or
 * without their timestamps, `workflow`, 0.7.0's unique index, any subset of the columns
 * later versions added (written in any letter case: SQLite's names are case-insensitive),
 * columns of the application's own (any name, nullable or NOT NULL with a default),
 * acidic_job_batches and acidic_job_schema or not, at any schema version, with a 0.7.0 run
 * and a staged row already in them. Then, on a borrowed handle:
 *   - aj_store_migrate succeeds (AJ_ESCHEMA when the version is newer than this library's,
 *     and then nothing was changed);
 *   - a run that stages a job runs to its end, the job is handed out and acknowledged;
 *   - the 0.7.0 run is still there and still finished;
 *   - recovery and a second migrate succeed.
 * No crash, no undefined behaviour (ASan+UBSan).
 */
#include "acidic_job.h"

#include <ctype.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHEMA_VERSION 3 /* core/src/store.h */

typedef struct input {
    const uint8_t *data;
    size_t size, at;
} input;

static unsigned next(input *in) { return in->at < in->size ? in->data[in->at++] : 0; }

typedef struct text {
    char buf[4096];
    size_t len;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, sizeof t->buf - t->len, fmt, ap);
    va_end(ap);
    if (n > 0 && (size_t)n < sizeof t->buf - t->len)
        t->len += (size_t)n;
}

/* A column name, in the letter case the input picks. */
static void put_name(text *t, input *in, const char *name)
{
    unsigned mask = next(in);
    put(t, "\"");
    for (size_t i = 0; name[i]; i++) {
        char c = name[i];
        put(t, "%c", (mask >> (i % 8)) & 1 && (mask & 0x80) ? toupper((unsigned char)c) : c);
    }
    put(t, "\"");
}

/* An application's own column: a name from the input (quoted, quotes doubled), nullable or
 * NOT NULL with a default. */
static void put_app_column(text *t, input *in)
{
    size_t len = 1 + next(in) % 12;
    put(t, ", \"app_");
    for (size_t i = 0; i < len; i++) {
        unsigned c = next(in) % 95 + 32; /* printable ASCII */
        put(t, c == '"' ? "\"\"" : "%c", c);
    }
    put(t, "\" %s", next(in) & 1 ? "text" : "integer NOT NULL DEFAULT 7");
}

static const char *const added_keys[] = {"attempts", "locked_by", "recover_at", "dead_at",
                                         "awaiting_batch_id", "resume_adapter",
                                         "resume_job_name", "resume_args"};
static const char *const added_keys_types[] = {"integer", "varchar", "datetime(6)",
                                               "datetime(6)", "integer", "varchar", "varchar",
                                               "text"};
static const char *const added_staged[] = {"batch_id", "delivered_at", "key_id"};
static const char *const added_staged_types[] = {"integer", "datetime(6)", "integer"};

static int exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

static long long count(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    long long n = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* Builds the application's tables; 0 when the input describes no valid schema (then it is
 * not judged). *version: the acidic_job_schema version written (-1: no such table). */
static int build(sqlite3 *db, input *in, int *version)
{
    unsigned shape = next(in) | next(in) << 8;
    text keys = {.len = 0};
    put(&keys, "CREATE TABLE acidic_job_keys (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,"
               " idempotency_key varchar NOT NULL, job_name varchar NOT NULL, job_args text,"
               " last_run_at datetime(6)%s, locked_at datetime(6),"
               " recovery_point varchar NOT NULL, error_object text, attr_accessors text",
        shape & 1 ? "" : " DEFAULT CURRENT_TIMESTAMP NOT NULL");
    int key_timestamps = (shape & 2) != 0, staged_timestamps = (shape & 4) != 0;
    if (shape & 8) {
        put(&keys, ", ");
        put_name(&keys, in, "workflow");
        put(&keys, " text");
    }
    if (key_timestamps)
        put(&keys, ", created_at datetime(6) NOT NULL, updated_at datetime(6) NOT NULL");
    unsigned which = next(in);
    for (size_t i = 0; i < sizeof added_keys / sizeof added_keys[0]; i++)
        if (which & (1u << i)) {
            put(&keys, ", ");
            put_name(&keys, in, added_keys[i]);
            put(&keys, " %s", added_keys_types[i]);
        }
    if (shape & 16)
        put_app_column(&keys, in);
    put(&keys, ")");
    if (exec(db, keys.buf))
        return 0; /* e.g. an application column named like one of ours */
    if (shape & 32)
        exec(db, "CREATE UNIQUE INDEX idx_acidic_job_keys_on_idempotency_key_n_job_name_n_job_args"
                 " ON acidic_job_keys (idempotency_key, job_name, job_args)");
    text staged = {.len = 0};
    put(&staged, "CREATE TABLE staged_acidic_jobs (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,"
                 " adapter varchar NOT NULL, job_name varchar NOT NULL, job_args text");
    if (staged_timestamps)
        put(&staged, ", created_at datetime(6) NOT NULL, updated_at datetime(6) NOT NULL");
    which = next(in);
    for (size_t i = 0; i < sizeof added_staged / sizeof added_staged[0]; i++)
        if (which & (1u << i)) {
            put(&staged, ", ");
            put_name(&staged, in, added_staged[i]);
            put(&staged, " %s", added_staged_types[i]);
        }
    if (shape & 64)
        put_app_column(&staged, in);
    put(&staged, ")");
    if (exec(db, staged.buf))
        return 0;
    if (shape & 128)
        exec(db, "CREATE TABLE acidic_job_batches (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,"
                 " key_id integer NOT NULL, step varchar NOT NULL, remaining integer NOT NULL,"
                 " continuation_adapter varchar, continuation_job_name varchar,"
                 " continuation_args text, created_at datetime(6) NOT NULL,"
                 " updated_at datetime(6) NOT NULL)");
    *version = -1;
    if (shape & 256) {
        static const int versions[] = {0, 1, 2, SCHEMA_VERSION, SCHEMA_VERSION + 1};
        *version = versions[next(in) % 5];
        char sql[128];
        exec(db, "CREATE TABLE acidic_job_schema (version integer NOT NULL)");
        snprintf(sql, sizeof sql, "INSERT INTO acidic_job_schema (version) VALUES (%d)", *version);
        exec(db, sql);
    }
    /* a finished 0.7.0 run and a staged row, as 0.7.0 wrote them */
    char sql[600];
    snprintf(sql, sizeof sql,
             "INSERT INTO acidic_job_keys (idempotency_key, job_name, job_args, last_run_at,"
             " recovery_point, attr_accessors%s) VALUES ('old', 'OldJob', '[1]',"
             " '2020-01-01 00:00:00', 'FINISHED', '{}'%s)",
             key_timestamps ? ", created_at, updated_at" : "",
             key_timestamps ? ", '2020-01-01 00:00:00', '2020-01-01 00:00:00'" : "");
    if (exec(db, sql))
        return 0;
    snprintf(sql, sizeof sql,
             "INSERT INTO staged_acidic_jobs (adapter, job_name, job_args%s) VALUES"
             " ('other', 'OldStaged', '{}'%s)",
             staged_timestamps ? ", created_at, updated_at" : "",
             staged_timestamps ? ", '2020-01-01 00:00:00', '2020-01-01 00:00:00'" : "");
    return exec(db, sql) == 0;
}

typedef struct seen {
    int n;
    int64_t id;
} seen;

static int take(void *ctx, const aj_staged_job *job)
{
    seen *s = ctx;
    if (strcmp(job->job_name, "NewStaged") != 0)
        return 1; /* the old row is another process's */
    s->n++;
    s->id = job->id;
    return 0;
}

static int step(aj_run *run, const char *name, void *ctx)
{
    (void)ctx;
    if (strcmp(name, "a") == 0)
        return aj_run_stage(run, "harness", "NewStaged", "{}", 2, NULL) != AJ_OK;
    return 0;
}

#define FAIL(...)                                                                          \
    do {                                                                                   \
        fprintf(stderr, __VA_ARGS__);                                                      \
        fprintf(stderr, "\n  (%s: %s)\n", aj_code_name(aj_error_last()->code),             \
                aj_error_last()->message);                                                 \
        abort();                                                                           \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    input in = {data, size, 0};
    sqlite3 *db = NULL;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK)
        abort();
    int version = -1;
    if (!build(db, &in, &version)) {
        sqlite3_close(db);
        return 0;
    }
    aj_store *s = NULL;
    if (aj_store_borrow_sqlite(&s, db, NULL, NULL, NULL) != AJ_OK)
        FAIL("aj_store_borrow_sqlite failed");
    int rc = aj_store_migrate(s);
    if (version > SCHEMA_VERSION) {
        if (rc != AJ_ESCHEMA)
            FAIL("tables of schema version %d were accepted: %s", version, aj_code_name(rc));
        if (count(db, "SELECT count(*) FROM acidic_job_schema") != 1)
            FAIL("a refused migration changed acidic_job_schema");
        aj_store_free(s);
        sqlite3_close(db);
        return 0;
    }
    if (rc != AJ_OK)
        FAIL("aj_store_migrate on the application's tables: %s", aj_code_name(rc));
    seen got = {0, 0};
    aj_store_set_enqueue(s, take, &got);
    aj_workflow *wf = NULL;
    aj_workflow_new(&wf);
    aj_workflow_add_step(wf, "a", NULL, 0);
    aj_workflow_add_step(wf, "b", NULL, 0);
    aj_run_params p = AJ_RUN_PARAMS_INIT;
    p.key = "new";
    p.job_name = "NewJob";
    p.args = "[2]";
    p.args_len = 3;
    p.resume_adapter = "harness";
    p.resume_job_name = "resume";
    p.resume_payload = "new";
    p.resume_payload_len = 3;
    aj_run *run = NULL;
    if ((rc = aj_run_new(&run, s, wf, &p)) != AJ_OK || (rc = aj_run_execute(run, step, NULL)))
        FAIL("a run on the healed tables: %s", aj_code_name(rc));
    if (aj_run_status(run) != AJ_RUN_SUCCEEDED)
        FAIL("the run ended with status %d", aj_run_status(run));
    aj_run_free(run);
    if (got.n != 1)
        FAIL("the staged job was handed out %d times", got.n);
    if ((rc = aj_staged_ack(s, got.id, NULL)) != AJ_OK)
        FAIL("acknowledging the staged job: %s", aj_code_name(rc));
    if (count(db, "SELECT count(*) FROM acidic_job_keys WHERE idempotency_key = 'old'"
                  " AND recovery_point = 'FINISHED'") != 1)
        FAIL("the 0.7.0 run did not survive the healing");
    if (count(db, "SELECT count(*) FROM staged_acidic_jobs") != 1)
        FAIL("the 0.7.0 staged row did not survive, or the new one was not deleted");
    size_t requeued = 0, dead = 0;
    if ((rc = aj_store_recover(s, 0, &requeued, &dead)) != AJ_OK)
        FAIL("recovery on the healed tables: %s", aj_code_name(rc));
    if (requeued || dead)
        FAIL("recovery handed out %zu finished runs (%zu dead)", requeued, dead);
    if ((rc = aj_store_migrate(s)) != AJ_OK)
        FAIL("a second migrate: %s", aj_code_name(rc));
    aj_workflow_free(wf);
    aj_store_free(s);
    sqlite3_close(db);
    return 0;
}
