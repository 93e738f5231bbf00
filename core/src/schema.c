#include "schema.h"
#include "error.h"
#include "rows.h"
#include "tx.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An arbitrary constant that names acidic_job's schema lock (one-bigint key space). */
#define AJ_SCHEMA_LOCK_ID "7346221804711"

/* What detection found. */
typedef struct found {
    int keys, staged, batches, schema_table;
    unsigned bits;        /* AJ_SHAPE_* */
    int missing;          /* columns of aj_added_columns missing from existing tables */
    unsigned char has[32]; /* per aj_added_columns entry */
    int version;
} found;

static int adhoc(aj_store *s, const char *sql, const aj_value *params, size_t n, aj_rows *rows)
{
    aj_sql q = {-1, sql, 0, 0, 0};
    aj_call call = {&q, params, n, rows};
    return s->drv->exec(s->conn, &call, 1, 0);
}

_Static_assert(AJ_Q_ADMIN_FIRST <= AJ_SQL_SLOTS, "a worker statement without a cache slot");

/* (Re-)expand the core's statements for the detected shape. */
static int expand(aj_store *s, unsigned bits)
{
    int lean = (s->drv->features & AJ_DRV_LEAN) != 0;
    for (int i = 0; i < AJ_Q_COUNT; i++) {
        char *text = NULL;
        int rc = aj_sql_expand(aj_sql_template((aj_stmt)i), s->drv->dialect,
                               bits | (lean ? AJ_SQL_LEAN : 0), &text);
        if (rc)
            return rc;
        free(s->sql_text[i]);
        s->sql_text[i] = text;
        s->sql[i] = (aj_sql){i < AJ_Q_ADMIN_FIRST ? i : -1, text, 1,
                             lean ? aj_sql_result((aj_stmt)i) : AJ_RESULT_RETURNED,
                             aj_sql_generic_plan((aj_stmt)i)};
    }
    s->shape.bits = bits;
    return AJ_OK;
}

static int detect(aj_store *s, found *f)
{
    memset(f, 0, sizeof *f);
    char *text = NULL;
    int rc = aj_sql_expand(aj_sql_template(AJ_Q_SHAPE), s->drv->dialect, 0, &text);
    if (rc)
        return rc;
    aj_rows rows = {0};
    rc = adhoc(s, text, NULL, 0, &rows);
    free(text);
    if (rc) {
        aj_rows_clear(&rows);
        return rc;
    }
    for (size_t r = 0; r < rows.nrows; r++) {
        const char *table = aj_rows_text(&rows, r, 0, NULL);
        const char *column = aj_rows_text(&rows, r, 1, NULL);
        if (!table || !column)
            continue;
        char t = table[0];
        if (t == 'k')
            f->keys = 1;
        else if (t == 's')
            f->staged = 1;
        else if (t == 'b')
            f->batches = 1;
        else if (t == 'v')
            f->schema_table = 1;
        if (t == 'k' && !strcmp(column, "created_at"))
            f->bits |= AJ_SHAPE_KC;
        if (t == 'k' && !strcmp(column, "updated_at"))
            f->bits |= AJ_SHAPE_KU;
        if (t == 's' && !strcmp(column, "created_at"))
            f->bits |= AJ_SHAPE_SC;
        if (t == 's' && !strcmp(column, "updated_at"))
            f->bits |= AJ_SHAPE_SU;
        for (size_t i = 0; i < aj_added_columns_count; i++)
            if (aj_added_columns[i].table == t && !strcmp(column, aj_added_columns[i].name))
                f->has[i] = 1;
    }
    aj_rows_clear(&rows);
    for (size_t i = 0; i < aj_added_columns_count; i++) {
        int exists = aj_added_columns[i].table == 'k' ? f->keys : f->staged;
        if (exists && !f->has[i])
            f->missing++;
    }
    if (f->schema_table) {
        aj_sql q = {-1, aj_sql_template(AJ_Q_SCHEMA_VERSION), 0, 0, 0};
        aj_call call = {&q, NULL, 0, &rows};
        if ((rc = s->drv->exec(s->conn, &call, 1, 0))) {
            aj_rows_clear(&rows);
            return rc;
        }
        f->version = (int)aj_rows_int(&rows, 0, 0);
        aj_rows_clear(&rows);
    }
    if (f->version > AJ_SCHEMA_VERSION)
        return aj_error_set(AJ_ESCHEMA, "the acidic_job tables were last healed by a newer "
                            "acidic_job (schema version %d; this library knows %d): upgrade "
                            "acidic_job in this application", f->version, AJ_SCHEMA_VERSION);
    return AJ_OK;
}

static int complete(const found *f)
{
    return f->keys && f->staged && f->batches && f->schema_table && !f->missing &&
           f->version >= AJ_SCHEMA_VERSION;
}

int aj_schema_ensure(aj_store *s)
{
    if (s->shape.known)
        return AJ_OK;
    found f;
    int rc = detect(s, &f);
    if (rc)
        return rc;
    if (!complete(&f))
        return aj_error_set(AJ_ESTALE, "the acidic_job tables need healing");
    if ((rc = expand(s, f.bits)))
        return rc;
    s->shape.version = f.version;
    s->shape.known = 1;
    return AJ_OK;
}

void aj_schema_forget(aj_store *s) { s->shape.known = 0; }

static int run_list(aj_store *s, const char *const *list)
{
    for (; *list; list++) {
        int rc = adhoc(s, *list, NULL, 0, NULL);
        if (rc)
            return rc;
    }
    return AJ_OK;
}

/* Upgrades of rows written before a column existed. */
static int backfill(aj_store *s, const found *before)
{
    int rc = AJ_OK;
    for (size_t i = 0; i < aj_added_columns_count && !rc; i++) {
        const aj_column *col = &aj_added_columns[i];
        if (col->table != 'k' || !before->keys || before->has[i])
            continue;
        /* Runs awaiting a batch (acidic_job 0.8 kept that only in acidic_job_batches). */
        if (!strcmp(col->name, "awaiting_batch_id") && before->batches)
            rc = adhoc(s, "UPDATE acidic_job_keys SET awaiting_batch_id = (SELECT max(b.id) FROM"
                          " acidic_job_batches b WHERE b.key_id = acidic_job_keys.id) WHERE"
                          " EXISTS (SELECT 1 FROM acidic_job_batches b WHERE b.key_id ="
                          " acidic_job_keys.id)", NULL, 0, NULL);
        /* Locked runs become candidates for recovery. */
        if (!strcmp(col->name, "recover_at"))
            rc = adhoc(s, "UPDATE acidic_job_keys SET recover_at = locked_at WHERE locked_at IS"
                          " NOT NULL AND recovery_point <> 'FINISHED'", NULL, 0, NULL);
    }
    return rc;
}

static int heal_body(aj_store *s, void *arg)
{
    (void)arg;
    int pg = s->drv->dialect == AJ_DIALECT_POSTGRES;
    const aj_ddl *ddl = aj_sql_ddl(s->drv->dialect);
    int rc;
    /* SET LOCAL: no "already exists, skipping" notices through a borrowed connection's
     * notice printer, and nothing left changed after the transaction. */
    if (pg && ((rc = adhoc(s, "SET LOCAL client_min_messages = warning", NULL, 0, NULL)) ||
               (rc = adhoc(s, "SELECT pg_advisory_xact_lock(" AJ_SCHEMA_LOCK_ID ")", NULL, 0,
                           NULL))))
        return rc;
    found f;
    if ((rc = detect(s, &f))) /* again: another process may have healed meanwhile */
        return rc;
    if (!complete(&f)) {
        if ((!f.schema_table && (rc = run_list(s, ddl->create_schema))) ||
            (!f.keys && (rc = run_list(s, ddl->create_keys))) ||
            (!f.staged && (rc = run_list(s, ddl->create_staged))) ||
            (!f.batches && (rc = run_list(s, ddl->create_batches))))
            return rc;
        for (size_t i = 0; i < aj_added_columns_count; i++) {
            const aj_column *col = &aj_added_columns[i];
            int exists = col->table == 'k' ? f.keys : f.staged;
            if (!exists || f.has[i])
                continue;
            char sql[200];
            snprintf(sql, sizeof sql, "ALTER TABLE %s ADD COLUMN %s%s %s",
                     col->table == 'k' ? "acidic_job_keys" : "staged_acidic_jobs",
                     pg ? "IF NOT EXISTS " : "", col->name, pg ? col->pg_type : col->sqlite_type);
            if ((rc = adhoc(s, sql, NULL, 0, NULL)))
                return rc;
        }
        if ((rc = backfill(s, &f)) || (rc = run_list(s, ddl->indexes)))
            return rc;
        if (f.version < AJ_SCHEMA_VERSION) {
            aj_value v = aj_int(AJ_SCHEMA_VERSION);
            if ((rc = adhoc(s, "DELETE FROM acidic_job_schema", NULL, 0, NULL)) ||
                (rc = adhoc(s, "INSERT INTO acidic_job_schema (version) VALUES (?)", &v, 1,
                            NULL)))
                return rc;
        }
        if ((rc = detect(s, &f)))
            return rc;
        if (!complete(&f))
            return aj_error_set(AJ_ESCHEMA, "the acidic_job tables could not be completed");
    }
    if ((rc = expand(s, f.bits)))
        return rc;
    s->shape.version = f.version;
    s->shape.known = 1;
    return AJ_OK;
}

static void heal_settle(aj_store *s, void *arg, int committed)
{
    (void)arg;
    if (!committed)
        s->shape.known = 0; /* what the body learnt was rolled back */
}

int aj_schema_heal(aj_store *s)
{
    return aj_tx(s, AJ_TXF_NO_SCHEMA | AJ_TXF_WRITE | AJ_TXF_RETRY, heal_body, heal_settle, NULL);
}

void aj_schema_free(aj_store *s)
{
    for (int i = 0; i < AJ_Q_COUNT; i++) {
        free(s->sql_text[i]);
        s->sql_text[i] = NULL;
    }
}
