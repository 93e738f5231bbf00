#include "sql.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STMT(slot, text) {(slot), (text)}

/* Statements that read the same on both databases. */
static const aj_sql common[AJ_Q_COUNT] = {
    [AJ_Q_KEY_FIND] = STMT(AJ_Q_KEY_FIND,
        "SELECT k.id, k.job_args, k.locked_at, k.recovery_point, k.attr_accessors,"
        " k.error_object, (SELECT count(*) FROM acidic_job_batches b WHERE b.key_id = k.id)"
        " FROM acidic_job_keys k WHERE k.idempotency_key = ? ORDER BY k.id LIMIT 1"),
    [AJ_Q_KEY_INSERT] = STMT(AJ_Q_KEY_INSERT,
        "INSERT INTO acidic_job_keys (idempotency_key, job_name, job_args, last_run_at,"
        " locked_at, recovery_point, attr_accessors, workflow, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"),
    [AJ_Q_KEY_LOCK] = STMT(AJ_Q_KEY_LOCK,
        "UPDATE acidic_job_keys SET last_run_at = ?, locked_at = ?, updated_at = ?"
        " WHERE id = ?"),
    [AJ_Q_STEP_AMEND] = STMT(AJ_Q_STEP_AMEND,
        "UPDATE acidic_job_keys SET recovery_point = ?, locked_at = ?,"
        " attr_accessors = COALESCE(?, attr_accessors) WHERE id = ?"),
    [AJ_Q_KEY_EXISTS] = STMT(AJ_Q_KEY_EXISTS,
        "SELECT count(*) FROM acidic_job_keys WHERE id = ?"),
    [AJ_Q_KEY_FAIL] = STMT(AJ_Q_KEY_FAIL,
        "UPDATE acidic_job_keys SET locked_at = NULL, error_object = ?, updated_at = ?"
        " WHERE id = ? AND locked_at = ? RETURNING id"),
    [AJ_Q_STAGE] = STMT(AJ_Q_STAGE,
        "INSERT INTO staged_acidic_jobs (adapter, job_name, job_args, batch_id, created_at,"
        " updated_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id"),
    [AJ_Q_STAGED_DELETE] = STMT(AJ_Q_STAGED_DELETE,
        "DELETE FROM staged_acidic_jobs WHERE id = ? RETURNING batch_id"),
    [AJ_Q_BATCH_INSERT] = STMT(AJ_Q_BATCH_INSERT,
        "INSERT INTO acidic_job_batches (key_id, step, remaining, created_at, updated_at)"
        " VALUES (?, ?, 0, ?, ?) RETURNING id"),
    [AJ_Q_BATCH_ARM] = STMT(AJ_Q_BATCH_ARM,
        "UPDATE acidic_job_batches SET remaining = ?, continuation_adapter = ?,"
        " continuation_job_name = ?, continuation_args = ?, updated_at = ? WHERE id = ?"),
    [AJ_Q_BATCH_COUNTDOWN] = STMT(AJ_Q_BATCH_COUNTDOWN,
        "UPDATE acidic_job_batches SET remaining = remaining - 1, updated_at = ? WHERE id = ?"
        " RETURNING remaining, continuation_adapter, continuation_job_name, continuation_args"),
    [AJ_Q_BATCH_DELETE] = STMT(AJ_Q_BATCH_DELETE,
        "DELETE FROM acidic_job_batches WHERE id = ?"),
    [AJ_Q_DRAIN_TOUCH] = STMT(AJ_Q_DRAIN_TOUCH,
        "UPDATE staged_acidic_jobs SET updated_at = ? WHERE id = ?"),
};

/* The claim is the step's first statement: an UPDATE, so it takes the row lock (and on
 * SQLite the database write lock) at once, and it matches only while the row carries
 * this process's lock token (the exact locked_at it wrote) and the recovery point it
 * expects. RETURNING tells a match from none on every driver, the host's included. */
static const aj_sql sqlite_only[AJ_Q_COUNT] = {
    [AJ_Q_STEP_CLAIM] = STMT(AJ_Q_STEP_CLAIM,
        "UPDATE acidic_job_keys SET recovery_point = ?, locked_at = ?, error_object = NULL,"
        " updated_at = ? WHERE id = ? AND recovery_point = ? AND locked_at = ? RETURNING id"),
    [AJ_Q_DRAIN_SELECT] = STMT(AJ_Q_DRAIN_SELECT,
        "SELECT id, adapter, job_name, job_args FROM staged_acidic_jobs"
        " WHERE updated_at < ? ORDER BY id LIMIT 100"),
};

static const aj_sql postgres_only[AJ_Q_COUNT] = {
    [AJ_Q_STEP_CLAIM] = STMT(AJ_Q_STEP_CLAIM,
        "UPDATE acidic_job_keys SET recovery_point = ?, locked_at = ?, error_object = NULL,"
        " updated_at = ? WHERE id = ? AND recovery_point = ?"
        " AND locked_at = CAST(? AS timestamp) RETURNING id"),
    [AJ_Q_DRAIN_SELECT] = STMT(AJ_Q_DRAIN_SELECT,
        "SELECT id, adapter, job_name, job_args FROM staged_acidic_jobs"
        " WHERE updated_at < CAST(? AS timestamp) ORDER BY id LIMIT 100"
        " FOR UPDATE SKIP LOCKED"),
};

const aj_sql *aj_sql_for(int dialect, aj_stmt stmt)
{
    const aj_sql *special = dialect == AJ_DIALECT_POSTGRES ? postgres_only : sqlite_only;
    if (special[stmt].text)
        return &special[stmt];
    return &common[stmt];
}

/* --- schema --------------------------------------------------------------- */

/* Version 1: the tables of acidic_job 0.7.0, as its migrations create them. */
static const char *const v1_sqlite[] = {
    "CREATE TABLE IF NOT EXISTS acidic_job_keys ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,"
    " idempotency_key varchar NOT NULL, job_name varchar NOT NULL, job_args text,"
    " last_run_at datetime(6) DEFAULT CURRENT_TIMESTAMP NOT NULL, locked_at datetime(6),"
    " recovery_point varchar NOT NULL, error_object text, attr_accessors text,"
    " workflow text, created_at datetime(6) NOT NULL, updated_at datetime(6) NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS idx_acidic_job_keys_on_idempotency_key_n_job_name_n_job_args"
    " ON acidic_job_keys (idempotency_key, job_name, job_args)",
    "CREATE TABLE IF NOT EXISTS staged_acidic_jobs ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, adapter varchar NOT NULL,"
    " job_name varchar NOT NULL, job_args text, created_at datetime(6) NOT NULL,"
    " updated_at datetime(6) NOT NULL)",
    NULL};

static const char *const v1_postgres[] = {
    "CREATE TABLE IF NOT EXISTS acidic_job_keys ("
    " id bigserial PRIMARY KEY,"
    " idempotency_key character varying NOT NULL, job_name character varying NOT NULL,"
    " job_args text, last_run_at timestamp(6) without time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,"
    " locked_at timestamp(6) without time zone, recovery_point character varying NOT NULL,"
    " error_object text, attr_accessors text, workflow text,"
    " created_at timestamp(6) without time zone NOT NULL,"
    " updated_at timestamp(6) without time zone NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS idx_acidic_job_keys_on_idempotency_key_n_job_name_n_job_args"
    " ON acidic_job_keys (idempotency_key, job_name, job_args)",
    "CREATE TABLE IF NOT EXISTS staged_acidic_jobs ("
    " id bigserial PRIMARY KEY, adapter character varying NOT NULL,"
    " job_name character varying NOT NULL, job_args text,"
    " created_at timestamp(6) without time zone NOT NULL,"
    " updated_at timestamp(6) without time zone NOT NULL)",
    NULL};

/* Version 2: the core's additions. "?column" lines are column additions that
 * migrate.c applies only when the column is missing (tables made by Rails migrations
 * may have it already). */
static const char *const v2_sqlite[] = {
    "?column acidic_job_keys workflow text",
    "?column staged_acidic_jobs batch_id integer",
    "CREATE TABLE IF NOT EXISTS acidic_job_batches ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, key_id integer NOT NULL,"
    " step varchar NOT NULL, remaining integer NOT NULL, continuation_adapter varchar,"
    " continuation_job_name varchar, continuation_args text,"
    " created_at datetime(6) NOT NULL, updated_at datetime(6) NOT NULL)",
    "CREATE INDEX IF NOT EXISTS index_acidic_job_batches_on_key_id ON acidic_job_batches (key_id)",
    "CREATE INDEX IF NOT EXISTS index_staged_acidic_jobs_on_updated_at ON staged_acidic_jobs (updated_at)",
    NULL};

static const char *const v2_postgres[] = {
    "ALTER TABLE acidic_job_keys ADD COLUMN IF NOT EXISTS workflow text",
    "ALTER TABLE staged_acidic_jobs ADD COLUMN IF NOT EXISTS batch_id bigint",
    "CREATE TABLE IF NOT EXISTS acidic_job_batches ("
    " id bigserial PRIMARY KEY, key_id bigint NOT NULL, step character varying NOT NULL,"
    " remaining integer NOT NULL, continuation_adapter character varying,"
    " continuation_job_name character varying, continuation_args text,"
    " created_at timestamp(6) without time zone NOT NULL,"
    " updated_at timestamp(6) without time zone NOT NULL)",
    "CREATE INDEX IF NOT EXISTS index_acidic_job_batches_on_key_id ON acidic_job_batches (key_id)",
    "CREATE INDEX IF NOT EXISTS index_staged_acidic_jobs_on_updated_at ON staged_acidic_jobs (updated_at)",
    NULL};

const aj_migration aj_migrations[] = {
    {1, v1_sqlite, v1_postgres},
    {2, v2_sqlite, v2_postgres},
};
const size_t aj_migrations_count = sizeof aj_migrations / sizeof aj_migrations[0];

char *aj_sql_dollar_params(const char *sql)
{
    size_t n = 0;
    for (const char *p = sql; *p; p++)
        if (*p == '?')
            n++;
    size_t cap = strlen(sql) + n * 10 + 1;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    size_t o = 0;
    int param = 0;
    char quote = 0;
    for (const char *p = sql; *p; p++) {
        if (quote) {
            if (*p == quote)
                quote = 0;
            out[o++] = *p;
        } else if (*p == '\'' || *p == '"') {
            quote = *p;
            out[o++] = *p;
        } else if (*p == '?') {
            o += (size_t)snprintf(out + o, cap - o, "$%d", ++param);
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
    return out;
}
