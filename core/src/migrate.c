/* Schema creation and upgrades. Versioned in acidic_job_schema, idempotent, and safe
 * when processes race: SQLite serialises them with BEGIN IMMEDIATE (the caller's),
 * PostgreSQL with a transaction-scoped advisory lock taken first. */
#include "error.h"
#include "rows.h"
#include "store.h"

#include <stdio.h>
#include <string.h>

/* An arbitrary constant that names acidic_job's migration lock. */
#define AJ_MIGRATION_LOCK_ID "7346221804711"

static int run(aj_store *store, const char *sql, const aj_value *params, size_t n,
               aj_rows *rows)
{
    aj_sql adhoc = {-1, sql};
    return store->drv->exec(store->conn, &adhoc, params, n, rows, NULL, 0);
}

/* "?column TABLE COLUMN TYPE": add the column unless it exists (SQLite has no
 * ADD COLUMN IF NOT EXISTS). */
static int add_column_if_missing(aj_store *store, const char *spec)
{
    char table[64], column[64], type[64];
    if (sscanf(spec, "?column %63s %63s %63s", table, column, type) != 3)
        return aj_error_set(AJ_ERROR, "malformed migration line: %s", spec);
    aj_rows rows = {0};
    aj_value params[2] = {aj_cstr(table), aj_cstr(column)};
    int rc = run(store, "SELECT count(*) FROM pragma_table_info(?) WHERE name = ?", params, 2,
                 &rows);
    int64_t present = rc ? 0 : aj_rows_int(&rows, 0, 0);
    aj_rows_clear(&rows);
    if (rc || present)
        return rc;
    char sql[256];
    snprintf(sql, sizeof sql, "ALTER TABLE %s ADD COLUMN %s %s", table, column, type);
    return run(store, sql, NULL, 0, NULL);
}

int aj_migrate_in_tx(aj_store *store)
{
    int rc;
    int pg = store->drv->dialect == AJ_DIALECT_POSTGRES;
    /* SET LOCAL: no "already exists, skipping" notices through a borrowed connection's
     * notice printer, and nothing left changed after the transaction. */
    if (pg && ((rc = run(store, "SET LOCAL client_min_messages = warning", NULL, 0, NULL)) ||
               (rc = run(store, "SELECT pg_advisory_xact_lock(" AJ_MIGRATION_LOCK_ID ")",
                         NULL, 0, NULL))))
        return rc;
    if ((rc = run(store, "CREATE TABLE IF NOT EXISTS acidic_job_schema (version integer NOT NULL)",
                  NULL, 0, NULL)))
        return rc;
    aj_rows rows = {0};
    if ((rc = run(store, "SELECT COALESCE(max(version), 0) FROM acidic_job_schema", NULL, 0,
                  &rows)))
        return rc;
    int64_t current = aj_rows_int(&rows, 0, 0);
    aj_rows_clear(&rows);

    int64_t latest = current;
    for (size_t i = 0; i < aj_migrations_count; i++) {
        const aj_migration *m = &aj_migrations[i];
        if (m->version <= current)
            continue;
        for (const char *const *sql = pg ? m->postgres : m->sqlite; *sql; sql++) {
            rc = strncmp(*sql, "?column ", 8) == 0 ? add_column_if_missing(store, *sql)
                                                   : run(store, *sql, NULL, 0, NULL);
            if (rc)
                return rc;
        }
        latest = m->version;
    }
    if (latest == current)
        return AJ_OK;
    aj_value v = aj_int(latest);
    if ((rc = run(store, "DELETE FROM acidic_job_schema", NULL, 0, NULL)) ||
        (rc = run(store, "INSERT INTO acidic_job_schema (version) VALUES (?)", &v, 1, NULL)))
        return rc;
    return AJ_OK;
}
