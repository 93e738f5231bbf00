#include "sql.h"
#include "error.h"
#include "util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The columns acquisition reads (run.c reads them by these positions). */
#define RUN_COLUMNS                                                                      \
    "id, job_name, job_args, locked_at, recovery_point, attr_accessors, error_object,"   \
    " attempts, dead_at, awaiting_batch_id, locked_by"

#define KEY_INSERT_COLUMNS                                                               \
    "idempotency_key, job_name, job_args, last_run_at, locked_at, recovery_point,"       \
    " attr_accessors, workflow, error_object, attempts, locked_by, recover_at, dead_at," \
    " resume_adapter, resume_job_name, resume_args{KC:, created_at}{KU:, updated_at}"

/* The operator's state of a run: the aj_admin_state bits of acidic_job.h (RUNNING 1,
 * STRANDED 2, FAILED 4, DEAD 8, AWAITING 16, QUEUED 32, SUCCEEDED 64, DISCARDED 128).
 * One parameter: the lock cutoff (a lock taken after it is live). */
#define ADMIN_STATE                                                                      \
    "(CASE WHEN recovery_point = 'FINISHED' THEN"                                        \
    " (CASE WHEN error_object IS NULL OR error_object = '' THEN 64 ELSE 128 END)"        \
    " WHEN dead_at IS NOT NULL THEN 8"                                                   \
    " WHEN locked_at IS NOT NULL THEN (CASE WHEN locked_at > @ts(?) THEN 1 ELSE 2 END)"  \
    " WHEN awaiting_batch_id IS NOT NULL THEN 16"                                        \
    " WHEN error_object IS NOT NULL AND error_object <> '' THEN 4 ELSE 32 END)"

/* A run's last change: updated_at, on tables without it last_run_at. */
#define ADMIN_UPDATED "{KU:COALESCE(updated_at, last_run_at)}{!KU:last_run_at}"

/* What an operator sees of a run (admin.c reads them by these positions); one
 * parameter, the lock cutoff. The error document is cut to 16 KB: a list needs its
 * class and message, which come first. */
#define ADMIN_COLUMNS                                                                    \
    "id, idempotency_key, job_name, " ADMIN_STATE ", recovery_point, attempts,"         \
    " @us(locked_at), locked_by, substr(error_object, 1, 16384),"                        \
    " {KU:@us(COALESCE(updated_at, last_run_at))}{!KU:@us(last_run_at)},"                \
    " {KC:@us(created_at)}{!KC:NULL}, @us(last_run_at), @us(recover_at), @us(dead_at),"  \
    " awaiting_batch_id"

/* ADMIN_COLUMNS, then the documents, how to enqueue the run, and locked_at as stored
 * (the compare-and-set token). */
#define ADMIN_FULL_COLUMNS                                                               \
    ADMIN_COLUMNS ", job_args, attr_accessors, workflow, error_object, resume_adapter,"  \
    " resume_job_name, resume_args, locked_at"

/* aj_admin_filter; parameters, in order: job name (2), key prefix (3), updated before
 * (2), updated since (2), states, the lock cutoff, states. */
#define ADMIN_FILTER                                                                     \
    " (@text(?) IS NULL OR job_name = ?)"                                                \
    " AND (@text(?) IS NULL OR substr(idempotency_key, 1, length(@text(?))) = ?)"       \
    " AND (@ts(?) IS NULL OR " ADMIN_UPDATED " < @ts(?))"                                \
    " AND (@ts(?) IS NULL OR " ADMIN_UPDATED " >= @ts(?))"                               \
    " AND (@int(?) = 0 OR (" ADMIN_STATE " & @int(?)) <> 0)"

#define STAGED_COLUMNS                                                                   \
    "id, adapter, job_name, job_args, key_id, batch_id, {SC:@us(created_at)}{!SC:NULL},"  \
    " @us(delivered_at)"

/* What a batch still awaits is its staged rows (an acknowledgement deletes its row;
 * the batch's remaining column holds how many it awaited at first). */
#define BATCH_COLUMNS                                                                    \
    "id, key_id, step, (SELECT count(*) FROM staged_acidic_jobs WHERE batch_id ="        \
    " acidic_job_batches.id), continuation_adapter, continuation_job_name,"              \
    " @us(created_at), @us(updated_at)"

/* The compare-and-set of an operator's change: the row still holds the recovery point
 * and the lock (as stored) it was read with, as a worker's claim checks. */
#define ADMIN_CAS " WHERE id = ? AND recovery_point = ? AND locked_at @is @ts(?) RETURNING id"

static const char *const templates[AJ_Q_COUNT] = {
    [AJ_Q_ADVISORY] =
        /* Two-int key space (separate from the one-bigint space of the migration lock). */
        "SELECT pg_advisory_xact_lock(1634364011, hashtext(?))",

    /* The oldest row of the key (0.7.0's tables allow one per key and arguments). SQLite
     * sorts an ORDER BY through a temporary b-tree, five times the cost of min(id). On
     * PostgreSQL `id + 0` keeps the planner off the primary key: "ORDER BY id LIMIT 1"
     * let it walk the whole table in id order looking for a key that is not there (a new
     * run), whenever its statistics were missing or stale (4 ms at 10,000 rows, growing
     * with the table); the key's index finds the few rows and sorting them is free. */
    [AJ_Q_FIND_KEY] =
        "SELECT " RUN_COLUMNS " FROM acidic_job_keys WHERE"
        "{sqlite: id = (SELECT min(id) FROM acidic_job_keys WHERE idempotency_key = ?)}"
        "{pg: idempotency_key = ? ORDER BY id + 0 LIMIT 1 FOR UPDATE}",

    [AJ_Q_FIND_ID] =
        "SELECT " RUN_COLUMNS " FROM acidic_job_keys WHERE id = ?{pg: FOR UPDATE}",

    /* A new run costs this one statement on PostgreSQL: the insert happens only when no
     * row was found (the advisory lock before it serializes the acquirers of the key). */
    [AJ_Q_FIND_OR_CREATE] =
        "WITH found AS (SELECT " RUN_COLUMNS " FROM acidic_job_keys"
        " WHERE idempotency_key = ? ORDER BY id + 0 LIMIT 1 FOR UPDATE),"
        " created AS (INSERT INTO acidic_job_keys (" KEY_INSERT_COLUMNS ")"
        " SELECT ?, ?, ?, @ts(?), @ts(?), ?, ?, ?, NULL, 1, ?, @ts(?), NULL, ?, ?, ?"
        "{KC:, @now}{KU:, @now} WHERE NOT EXISTS (SELECT 1 FROM found) RETURNING id)"
        " SELECT 0, " RUN_COLUMNS " FROM found UNION ALL"
        " SELECT 1, id, NULL, NULL, NULL, NULL, NULL, NULL, 1, NULL, NULL, NULL FROM created",

    /* Only while the key has no run: on SQLite a new run's row is written at the end of its
     * first step, under the write lock, so this is where a racing creator is noticed (no
     * row comes back). The last parameter is the key, once more. In-process SQLite asks
     * AJ_Q_KEY_TAKEN first instead (run.c, insert_run_row): an INSERT that reads its own
     * table makes SQLite copy the selected row through a temporary table. */
    [AJ_Q_CREATE] =
        "INSERT INTO acidic_job_keys (" KEY_INSERT_COLUMNS ") SELECT ?, ?, ?, @ts(?), @ts(?),"
        " ?, ?, ?, ?, @int(?), ?, @ts(?), @ts(?), ?, ?, ?{KC:, @now}{KU:, @now}"
        "{R: WHERE NOT EXISTS (SELECT 1 FROM acidic_job_keys WHERE idempotency_key = ?)"
        " RETURNING id}",

    [AJ_Q_KEY_TAKEN] = "SELECT count(*) FROM acidic_job_keys WHERE idempotency_key = ?",

    /* Every change of a run's row by a step goes through this statement: it matches only
     * while the row carries the lock token this process holds (or, for an acquisition,
     * the one it read) and the recovery point it expects. A committed step clears the
     * recorded error. recover_at changes only when asked (@int = 1), so a plain step
     * touches no indexed column (a HOT update on PostgreSQL). */
    [AJ_Q_CLAIM] =
        "UPDATE acidic_job_keys SET recovery_point = ?, locked_at = @ts(?), locked_by = ?,"
        " attr_accessors = COALESCE(?, attr_accessors), error_object = NULL,"
        " attempts = COALESCE(attempts, 0) + @int(?), last_run_at = COALESCE(@ts(?), last_run_at),"
        " recover_at = CASE WHEN @int(?) = 1 THEN @ts(?) ELSE recover_at END,"
        " awaiting_batch_id = @int(?),"
        " resume_adapter = COALESCE(?, resume_adapter), resume_job_name = COALESCE(?, resume_job_name),"
        " resume_args = COALESCE(?, resume_args){KU:, updated_at = @now}"
        " WHERE id = ? AND recovery_point = ? AND locked_at @is @ts(?){R: RETURNING id}",

    /* AJ_Q_CLAIM less what a plain step leaves as it is (attempts, last_run_at, recover_at,
     * the resume description): it names no indexed column. SQLite rewrites the entries of
     * every index over a column its SET names, whatever the value: naming recover_at cost
     * each step a page of its index. */
    [AJ_Q_CLAIM_STEP] =
        "UPDATE acidic_job_keys SET recovery_point = ?, locked_at = @ts(?), locked_by = ?,"
        " attr_accessors = COALESCE(?, attr_accessors), error_object = NULL,"
        " awaiting_batch_id = @int(?){KU:, updated_at = @now}"
        " WHERE id = ? AND recovery_point = ? AND locked_at @is @ts(?){R: RETURNING id}",

    [AJ_Q_FAIL] =
        "UPDATE acidic_job_keys SET locked_at = NULL, locked_by = NULL, error_object = ?,"
        " attempts = COALESCE(attempts, 0) + @int(?), recover_at = @ts(?), dead_at = @ts(?)"
        "{KU:, updated_at = @now} WHERE id = ? AND locked_at @is @ts(?){R: RETURNING id}",

    [AJ_Q_KEY_EXISTS] = "SELECT count(*) FROM acidic_job_keys WHERE id = ?",

    /* The row lock a step holds from its first statement on an owned PostgreSQL store,
     * checking the same compare-and-set as the claim: a lock writes no new row version, so
     * the step's one claim, at its end, is the only version it writes (decision 019). */
    [AJ_Q_LOCK_ROW] =
        "SELECT id FROM acidic_job_keys WHERE id = ? AND recovery_point = ?"
        " AND locked_at @is @ts(?){pg: FOR NO KEY UPDATE}",

    [AJ_Q_WRITE_LOCK] = "UPDATE acidic_job_keys SET id = id WHERE 0 = 1",

    /* key_id names the run that staged the job, for operators (aj_admin_show) only:
     * nothing the core decides reads it (decision 013). */
    [AJ_Q_STAGE] =
        "INSERT INTO staged_acidic_jobs (adapter, job_name, job_args, batch_id, delivered_at,"
        " key_id{SC:, created_at}{SU:, updated_at}) VALUES (?, ?, ?, @int(?), @ts(?), @int(?)"
        "{SC:, @now}{SU:, @now}){R: RETURNING id}",

    [AJ_Q_STAGED_DELETE] = "DELETE FROM staged_acidic_jobs WHERE id = ? RETURNING batch_id",

    [AJ_Q_BATCH_INSERT] =
        "INSERT INTO acidic_job_batches (key_id, step, remaining, created_at, updated_at)"
        " VALUES (?, ?, 0, @ts(?), @ts(?)){R: RETURNING id}",

    [AJ_Q_BATCH_ARM] =
        "UPDATE acidic_job_batches SET remaining = ?, continuation_adapter = ?,"
        " continuation_job_name = ?, continuation_args = ?, updated_at = @ts(?) WHERE id = ?",

    /* An acknowledgement deletes its staged row and nothing else, so the children of a
     * batch never queue behind one counter row. After it commits, this statement ends the
     * batch when no child is left: run by every acknowledgement, it matches for one of
     * them only (whoever sees the batch empty first; the others find the run no longer
     * awaiting it). Read-only, it costs no WAL when it matches nothing. */
    [AJ_Q_BATCH_COMPLETE] =
        "UPDATE acidic_job_keys SET awaiting_batch_id = NULL,"
        " recover_at = NULL{KU:, updated_at = @now}"
        " WHERE awaiting_batch_id = ? AND id = (SELECT key_id FROM acidic_job_batches WHERE id = ?)"
        " AND NOT EXISTS (SELECT 1 FROM staged_acidic_jobs WHERE batch_id = ?) RETURNING id",

    [AJ_Q_BATCH_TAKE] =
        "DELETE FROM acidic_job_batches WHERE id = ? RETURNING continuation_adapter,"
        " continuation_job_name, continuation_args",

    /* Keyset pages in the order of the (delivered_at, id) index: a drain with nothing due
     * reads nothing, however long the backlog, and rows the enqueue callback refuses
     * never hide later rows. SKIP LOCKED lets drains in many processes share the work.
     * Rows never stamped are found in the same index (delivered_at IS NULL, ordered by
     * delivered_at, id): ordered by id alone, PostgreSQL walked the primary key through
     * every stamped row to find none. */
    [AJ_Q_DRAIN_PAGE] =
        "SELECT id, adapter, job_name, job_args, delivered_at, NULL FROM staged_acidic_jobs"
        " WHERE delivered_at < @ts(?) AND (delivered_at > @ts(?) OR (delivered_at = @ts(?)"
        " AND id > ?)) ORDER BY delivered_at, id LIMIT 100{pg: FOR UPDATE SKIP LOCKED}",

    [AJ_Q_DRAIN_UNSTAMPED] =
        "SELECT id, adapter, job_name, job_args, NULL, {SC:created_at}{!SC:NULL}"
        " FROM staged_acidic_jobs WHERE delivered_at IS NULL AND id > ?"
        " ORDER BY delivered_at, id LIMIT 100{pg: FOR UPDATE SKIP LOCKED}",

    [AJ_Q_DRAIN_STAMP] =
        "UPDATE staged_acidic_jobs SET delivered_at = @ts(?){SU:, updated_at = @now} WHERE id = ?",

    [AJ_Q_RECOVER_PAGE] =
        "SELECT id, idempotency_key, job_name, locked_at, recovery_point, attempts, dead_at,"
        " awaiting_batch_id, resume_adapter, resume_job_name, resume_args,"
        " CASE WHEN error_object IS NULL THEN 0 ELSE 1 END"
        " FROM acidic_job_keys WHERE recover_at <= @ts(?) ORDER BY recover_at, id"
        " LIMIT @int(?){pg: FOR UPDATE SKIP LOCKED}",

    [AJ_Q_RECOVER_SET] = "UPDATE acidic_job_keys SET recover_at = @ts(?) WHERE id = ?",

    [AJ_Q_RECOVER_DEAD] =
        "UPDATE acidic_job_keys SET dead_at = @ts(?), locked_at = NULL, locked_by = NULL,"
        " recover_at = NULL, error_object = COALESCE(error_object, ?){KU:, updated_at = @now}"
        " WHERE id = ?",

    [AJ_Q_SHAPE] =
        /* SQLite's column names are case-insensitive: CREATED_AT is created_at */
        "{sqlite:SELECT 'k', lower(name) FROM pragma_table_info('acidic_job_keys')"
        " UNION ALL SELECT 's', lower(name) FROM pragma_table_info('staged_acidic_jobs')"
        " UNION ALL SELECT 'b', lower(name) FROM pragma_table_info('acidic_job_batches')"
        " UNION ALL SELECT 'v', lower(name) FROM pragma_table_info('acidic_job_schema')}"
        "{pg:SELECT CASE c.relname WHEN 'acidic_job_keys' THEN 'k' WHEN 'staged_acidic_jobs'"
        " THEN 's' WHEN 'acidic_job_batches' THEN 'b' ELSE 'v' END, a.attname::text"
        " FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid"
        " WHERE a.attrelid IN (to_regclass('acidic_job_keys'), to_regclass('staged_acidic_jobs'),"
        " to_regclass('acidic_job_batches'), to_regclass('acidic_job_schema'))"
        " AND a.attnum > 0 AND NOT a.attisdropped}",

    [AJ_Q_SCHEMA_VERSION] = "SELECT COALESCE(max(version), 0) FROM acidic_job_schema",

    /* Keyset pages: parameters are the lock cutoff, the cursor, the filter, the limit. */
    [AJ_Q_ADMIN_LIST] =
        "SELECT " ADMIN_COLUMNS " FROM acidic_job_keys WHERE id > @int(?) AND" ADMIN_FILTER
        " ORDER BY id LIMIT @int(?)",

    [AJ_Q_ADMIN_LIST_DESC] =
        "SELECT " ADMIN_COLUMNS " FROM acidic_job_keys WHERE id < @int(?) AND" ADMIN_FILTER
        " ORDER BY id DESC LIMIT @int(?)",

    [AJ_Q_ADMIN_COUNT] = "SELECT count(*) FROM acidic_job_keys WHERE" ADMIN_FILTER,

    /* Rows a live transaction holds (a step in progress) are passed over. */
    [AJ_Q_ADMIN_PICK] =
        "SELECT " ADMIN_FULL_COLUMNS " FROM acidic_job_keys WHERE id > @int(?) AND"
        ADMIN_FILTER " ORDER BY id LIMIT @int(?){pg: FOR UPDATE SKIP LOCKED}",

    [AJ_Q_ADMIN_FIND_KEY] =
        "SELECT id, job_name FROM acidic_job_keys WHERE idempotency_key = ? ORDER BY id LIMIT 2",

    [AJ_Q_ADMIN_GET] = "SELECT " ADMIN_FULL_COLUMNS " FROM acidic_job_keys WHERE id = ?",

    /* NOWAIT: a step in progress holds its run's row lock; the operator is told at once. */
    [AJ_Q_ADMIN_LOCK] =
        "SELECT " ADMIN_FULL_COLUMNS " FROM acidic_job_keys WHERE id = ?{pg: FOR UPDATE NOWAIT}",

    /* What the run staged (key_id), and its batch's awaited jobs (staged before key_id
     * existed, they have none). */
    [AJ_Q_ADMIN_STAGED] =
        "SELECT " STAGED_COLUMNS " FROM staged_acidic_jobs WHERE key_id = ? OR batch_id = ?"
        " ORDER BY id LIMIT 1000",

    [AJ_Q_ADMIN_BATCH] = "SELECT " BATCH_COLUMNS " FROM acidic_job_batches WHERE id = ?",

    /* A retry or reset: a fresh start at a step, unlocked, recovery looking again after
     * a lock timeout (as after recovery hands a run out). */
    [AJ_Q_ADMIN_REQUEUE] =
        "UPDATE acidic_job_keys SET recovery_point = ?, error_object = NULL, dead_at = NULL,"
        " attempts = 0, locked_at = NULL, locked_by = NULL, awaiting_batch_id = NULL,"
        " recover_at = @ts(?){KU:, updated_at = @now}" ADMIN_CAS,

    /* Due for recovery at once: the next sweep hands the run back to its queue. */
    [AJ_Q_ADMIN_UNLOCK] =
        "UPDATE acidic_job_keys SET locked_at = NULL, locked_by = NULL, recover_at = @ts(?)"
        "{KU:, updated_at = @now}" ADMIN_CAS,

    [AJ_Q_ADMIN_DISCARD] =
        "UPDATE acidic_job_keys SET recovery_point = 'FINISHED', locked_at = NULL,"
        " locked_by = NULL, awaiting_batch_id = NULL, recover_at = NULL,"
        " error_object = CASE WHEN error_object IS NULL OR error_object = '' THEN @text(?)"
        " ELSE error_object END{KU:, updated_at = @now}" ADMIN_CAS,

    /* Finished runs only, whatever the filter says. */
    [AJ_Q_ADMIN_PRUNE] =
        "DELETE FROM acidic_job_keys WHERE id IN (SELECT id FROM acidic_job_keys WHERE"
        " id > @int(?) AND recovery_point = 'FINISHED' AND" ADMIN_FILTER
        " ORDER BY id LIMIT @int(?){pg: FOR UPDATE SKIP LOCKED}) RETURNING id",

    [AJ_Q_ADMIN_STATES] =
        "SELECT job_name, state, count(*) FROM (SELECT job_name, " ADMIN_STATE " AS state"
        " FROM acidic_job_keys) k GROUP BY job_name, state ORDER BY job_name, state",

    [AJ_Q_ADMIN_STRANDED] =
        "SELECT " ADMIN_COLUMNS " FROM acidic_job_keys WHERE locked_at IS NOT NULL AND"
        " locked_at <= @ts(?) AND recovery_point <> 'FINISHED' AND dead_at IS NULL"
        " ORDER BY locked_at, id LIMIT 1",

    [AJ_Q_ADMIN_BACKLOG] =
        "SELECT (SELECT count(*) FROM staged_acidic_jobs), (SELECT count(*) FROM acidic_job_batches)",

    [AJ_Q_ADMIN_OLDEST_STAGED] =
        "SELECT " STAGED_COLUMNS " FROM staged_acidic_jobs ORDER BY id LIMIT 1",

    [AJ_Q_ADMIN_OLDEST_BATCH] =
        "SELECT " BATCH_COLUMNS " FROM acidic_job_batches ORDER BY id LIMIT 1",

    /* Keyset pages of the backlog: the cursor, the limit. */
    [AJ_Q_ADMIN_STAGED_PAGE] =
        "SELECT " STAGED_COLUMNS " FROM staged_acidic_jobs WHERE id > @int(?)"
        " ORDER BY id LIMIT @int(?)",
};

const char *aj_sql_template(aj_stmt stmt)
{
    return stmt >= 0 && stmt < AJ_Q_COUNT ? templates[stmt] : NULL;
}

int aj_sql_result(aj_stmt stmt)
{
    switch (stmt) {
    case AJ_Q_CREATE:
    case AJ_Q_STAGE:
    case AJ_Q_BATCH_INSERT: return AJ_RESULT_ROWID;
    case AJ_Q_CLAIM:
    case AJ_Q_CLAIM_STEP:
    case AJ_Q_FAIL: return AJ_RESULT_CHANGED;
    default: return AJ_RESULT_RETURNED;
    }
}

/* The sweeps' page queries: a range on an indexed timestamp (the cutoff, the time now)
 * walked in that index's order with a LIMIT, the same plan whatever the value. A custom
 * plan of such a range costs PostgreSQL's planner a probe of the index's end for every
 * execution once the table is large (the value falls outside its statistics' histogram),
 * more than the statement itself; and its plan cache keeps making custom plans, because
 * the generic plan's estimate for an unknown range is higher. */
int aj_sql_generic_plan(aj_stmt stmt)
{
    switch (stmt) {
    case AJ_Q_DRAIN_PAGE:
    case AJ_Q_DRAIN_UNSTAMPED:
    case AJ_Q_RECOVER_PAGE: return 1;
    default: return 0;
    }
}

/* --- template expansion ------------------------------------------------------ */

/* Is the condition of a {COND:...} block true? */
static int condition(const char *name, size_t n, int dialect, unsigned shape, int *ok)
{
    int negate = n > 0 && name[0] == '!';
    if (negate) {
        name++;
        n--;
    }
    static const struct { const char *name; unsigned bit; } flags[] = {
        {"KC", AJ_SHAPE_KC}, {"KU", AJ_SHAPE_KU}, {"SC", AJ_SHAPE_SC}, {"SU", AJ_SHAPE_SU}};
    int value = -1;
    if (n == 2 && strncmp(name, "pg", 2) == 0)
        value = dialect == AJ_DIALECT_POSTGRES;
    else if (n == 6 && strncmp(name, "sqlite", 6) == 0)
        value = dialect == AJ_DIALECT_SQLITE;
    else if (n == 1 && name[0] == 'R')
        value = !(shape & AJ_SQL_LEAN);
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        if (strlen(flags[i].name) == n && strncmp(name, flags[i].name, n) == 0)
            value = (shape & flags[i].bit) != 0;
    *ok = value >= 0;
    return negate ? !value : value;
}

/* Expand the macros of `s` (no braces left) into b. */
static void expand_macros(aj_buf *b, const char *s, size_t n, int pg, int lean)
{
    for (size_t i = 0; i < n;) {
        if (s[i] == '@') {
            if (n - i >= 4 && strncmp(s + i, "@now", 4) == 0) {
                aj_buf_puts(b, pg     ? "(now() AT TIME ZONE 'UTC')"
                               : lean ? "acidic_job_now()"
                                      : "strftime('%Y-%m-%d %H:%M:%f000', 'now')");
                i += 4;
                continue;
            }
            if (n - i >= 6 && strncmp(s + i, "@ts(?)", 6) == 0) {
                aj_buf_puts(b, pg ? "CAST(? AS timestamp)" : "?");
                i += 6;
                continue;
            }
            if (n - i >= 7 && strncmp(s + i, "@int(?)", 7) == 0) {
                aj_buf_puts(b, pg ? "CAST(? AS bigint)" : "?");
                i += 7;
                continue;
            }
            if (n - i >= 8 && strncmp(s + i, "@text(?)", 8) == 0) {
                aj_buf_puts(b, pg ? "CAST(? AS text)" : "?");
                i += 8;
                continue;
            }
            if (n - i >= 4 && strncmp(s + i, "@us(", 4) == 0) {
                /* @us(EXPR): EXPR runs to the matching parenthesis */
                size_t j = i + 4;
                int depth = 1;
                for (; j < n && depth > 0; j++)
                    depth += s[j] == '(' ? 1 : s[j] == ')' ? -1 : 0;
                size_t inner = (depth == 0 ? j - 1 : j) - (i + 4);
                if (pg)
                    aj_buf_puts(b, "CAST(EXTRACT(EPOCH FROM ");
                aj_buf_put(b, s + i + 4, inner);
                if (pg)
                    aj_buf_puts(b, ") * 1000000 AS bigint)");
                i = j;
                continue;
            }
            if (n - i >= 3 && strncmp(s + i, "@is", 3) == 0) {
                aj_buf_puts(b, pg ? "IS NOT DISTINCT FROM" : "IS");
                i += 3;
                continue;
            }
        }
        aj_buf_put(b, s + i, 1);
        i++;
    }
}

int aj_sql_expand(const char *tmpl, int dialect, unsigned shape, char **out)
{
    if (!tmpl)
        return aj_error_set(AJ_ERROR, "no such statement");
    int pg = dialect == AJ_DIALECT_POSTGRES;
    int lean = !pg && (shape & AJ_SQL_LEAN);
    aj_buf b = {0};
    const char *s = tmpl;
    while (*s) {
        const char *open = strchr(s, '{');
        size_t plain = open ? (size_t)(open - s) : strlen(s);
        expand_macros(&b, s, plain, pg, lean);
        if (!open)
            break;
        const char *colon = strchr(open, ':');
        const char *close = strchr(open, '}');
        if (!colon || !close || colon > close) {
            free(b.s);
            return aj_error_set(AJ_ERROR, "malformed SQL template near \"%.20s\"", open);
        }
        int ok = 0;
        int on = condition(open + 1, (size_t)(colon - open - 1), dialect, shape, &ok);
        if (!ok) {
            free(b.s);
            return aj_error_set(AJ_ERROR, "unknown SQL template condition \"%.*s\"",
                                (int)(colon - open - 1), open + 1);
        }
        if (on)
            expand_macros(&b, colon + 1, (size_t)(close - colon - 1), pg, lean);
        s = close + 1;
    }
    char *text = NULL;
    int rc = aj_buf_take(&b, &text);
    if (rc || !pg) {
        *out = text;
        return rc;
    }
    *out = aj_sql_dollar_params(text);
    free(text);
    return *out ? AJ_OK : aj_error_set(AJ_ENOMEM, "out of memory");
}

/* --- the placeholder rewriter ---------------------------------------------------- */

static int ident_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || (unsigned char)ch >= 0x80;
}

/* When a literal, quoted identifier or comment starts at s[i], the index just past
 * it (the end of the text when it is unterminated: the server will say so); else i. */
static size_t skip_quoted(const char *s, size_t n, size_t i)
{
    if (s[i] == '\'') {
        /* E'...' strings take backslash escapes; '' is a quote in every string. */
        int escapes = i > 0 && (s[i - 1] == 'E' || s[i - 1] == 'e') &&
                      (i < 2 || !ident_char(s[i - 2]));
        for (size_t j = i + 1; j < n; j++) {
            if (escapes && s[j] == '\\' && j + 1 < n)
                j++;
            else if (s[j] == '\'' && j + 1 < n && s[j + 1] == '\'')
                j++;
            else if (s[j] == '\'')
                return j + 1;
        }
        return n;
    }
    if (s[i] == '"') {
        const char *end = memchr(s + i + 1, '"', n - i - 1); /* "" reads as two identifiers */
        return end ? (size_t)(end - s) + 1 : n;
    }
    if (s[i] == '-' && i + 1 < n && s[i + 1] == '-') {
        const char *end = memchr(s + i, '\n', n - i);
        return end ? (size_t)(end - s) + 1 : n;
    }
    if (s[i] == '/' && i + 1 < n && s[i + 1] == '*') { /* block comments nest */
        int depth = 0;
        for (size_t j = i; j < n; j++) {
            if (s[j] == '/' && j + 1 < n && s[j + 1] == '*') {
                depth++;
                j++;
            } else if (s[j] == '*' && j + 1 < n && s[j + 1] == '/') {
                j++;
                if (--depth == 0)
                    return j + 1;
            }
        }
        return n;
    }
    if (s[i] == '$' && (i == 0 || !ident_char(s[i - 1]))) { /* $tag$ ... $tag$ */
        size_t j = i + 1;
        if (j < n && ident_char(s[j]) && !(s[j] >= '0' && s[j] <= '9'))
            while (j < n && ident_char(s[j]))
                j++;
        if (j >= n || s[j] != '$')
            return i; /* $1 or a lone $ */
        size_t taglen = j + 1 - i;
        for (size_t k = j + 1; k + taglen <= n; k++)
            if (strncmp(s + k, s + i, taglen) == 0)
                return k + taglen;
        return n;
    }
    return i;
}

size_t aj_sql_dollar(const char *sql, char *out)
{
    size_t n = strlen(sql), count = 0, o = 0;
    for (size_t i = 0; i < n;) {
        size_t end = skip_quoted(sql, n, i);
        if (end != i) {
            if (out)
                memcpy(out + o, sql + i, end - i);
            o += end - i;
            i = end;
        } else if (sql[i] == '?') {
            count++;
            size_t d = i + 1;
            while (d < n && sql[d] >= '0' && sql[d] <= '9')
                d++;
            if (d > i + 1) { /* ?N: an explicit number */
                if (out) {
                    out[o] = '$';
                    memcpy(out + o + 1, sql + i + 1, d - i - 1);
                }
                o += d - i;
                i = d;
            } else {
                char num[24];
                int len = snprintf(num, sizeof num, "$%zu", count);
                if (out)
                    memcpy(out + o, num, (size_t)len);
                o += (size_t)len;
                i++;
            }
        } else {
            if (out)
                out[o] = sql[i];
            o++;
            i++;
        }
    }
    if (out)
        out[o] = '\0';
    return count;
}

size_t aj_sql_dollar_size(const char *sql)
{
    /* Each `?` grows by at most 20 digits; "?N" does not grow. */
    return strlen(sql) + 20 * aj_sql_dollar(sql, NULL) + 1;
}

char *aj_sql_dollar_params(const char *sql)
{
    char *out = malloc(aj_sql_dollar_size(sql));
    if (out)
        aj_sql_dollar(sql, out);
    return out;
}

size_t aj_sql_count_params(const char *sql) { return aj_sql_dollar(sql, NULL); }

int aj_sql_is_transaction_control(const char *sql)
{
    size_t n = strlen(sql), i = 0;
    char words[3][16] = {"", "", ""}; /* the first three keywords, upper case */
    int nwords = 0;
    while (i < n && nwords < 3) {
        size_t end = skip_quoted(sql, n, i);
        if (end != i && (sql[i] == '-' || sql[i] == '/')) {
            i = end; /* comments */
            continue;
        }
        if (isspace((unsigned char)sql[i]) || sql[i] == ';') {
            i++;
            continue;
        }
        if (!isalpha((unsigned char)sql[i]))
            break;
        size_t wlen = 0;
        char *word = words[nwords++];
        while (i < n && isalpha((unsigned char)sql[i])) {
            if (wlen < sizeof words[0] - 1)
                word[wlen++] = (char)toupper((unsigned char)sql[i]);
            i++;
        }
        word[wlen] = '\0';
    }
    const char *first = words[0];
    if (!strcmp(first, "BEGIN") || !strcmp(first, "START") || !strcmp(first, "COMMIT") ||
        !strcmp(first, "END") || !strcmp(first, "ABORT"))
        return 1;
    if (!strcmp(first, "ROLLBACK")) {
        /* ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] name only undoes a savepoint */
        int at = !strcmp(words[1], "WORK") || !strcmp(words[1], "TRANSACTION") ? 2 : 1;
        return strcmp(words[at], "TO") != 0;
    }
    if (!strcmp(first, "PREPARE"))
        return strcmp(words[1], "TRANSACTION") == 0;
    return 0;
}

/* --- schema ------------------------------------------------------------------- */

/* acidic_job_keys as 0.7.0's generator creates it, plus the core's columns, except that
 * `workflow` and `created_at`, which no step changes, come before the columns a step
 * does change (last_run_at to updated_at): PostgreSQL logs the middle of a row that an
 * update changed, between the prefix and suffix it kept (decision 019). On
 * PostgreSQL the uniqueness of (key, job, arguments) is an index over md5(job_args):
 * a btree row cannot hold arguments larger than about 2.7 KB. */
static const char *const sqlite_create_keys[] = {
    "CREATE TABLE IF NOT EXISTS acidic_job_keys ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,"
    " idempotency_key varchar NOT NULL, job_name varchar NOT NULL, job_args text,"
    " workflow text, created_at datetime(6) NOT NULL,"
    " last_run_at datetime(6) DEFAULT CURRENT_TIMESTAMP NOT NULL, locked_at datetime(6),"
    " recovery_point varchar NOT NULL, error_object text, attr_accessors text,"
    " updated_at datetime(6) NOT NULL,"
    " attempts integer, locked_by varchar, recover_at datetime(6), dead_at datetime(6),"
    " awaiting_batch_id integer, resume_adapter varchar, resume_job_name varchar,"
    " resume_args text)",
    "CREATE UNIQUE INDEX IF NOT EXISTS idx_acidic_job_keys_on_idempotency_key_n_job_name_n_job_args"
    " ON acidic_job_keys (idempotency_key, job_name, job_args)",
    NULL};

static const char *const pg_create_keys[] = {
    "CREATE TABLE IF NOT EXISTS acidic_job_keys ("
    " id bigserial PRIMARY KEY,"
    " idempotency_key character varying NOT NULL, job_name character varying NOT NULL,"
    " job_args text, workflow text, created_at timestamp(6) without time zone NOT NULL,"
    " last_run_at timestamp(6) without time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,"
    " locked_at timestamp(6) without time zone, recovery_point character varying NOT NULL,"
    " error_object text, attr_accessors text,"
    " updated_at timestamp(6) without time zone NOT NULL,"
    " attempts integer, locked_by character varying,"
    " recover_at timestamp(6) without time zone, dead_at timestamp(6) without time zone,"
    " awaiting_batch_id bigint, resume_adapter character varying,"
    " resume_job_name character varying, resume_args text)",
    "CREATE UNIQUE INDEX IF NOT EXISTS idx_acidic_job_keys_on_key_n_job_name_n_md5_job_args"
    " ON acidic_job_keys (idempotency_key, job_name, md5(job_args))",
    NULL};

static const char *const sqlite_create_staged[] = {
    "CREATE TABLE IF NOT EXISTS staged_acidic_jobs ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, adapter varchar NOT NULL,"
    " job_name varchar NOT NULL, job_args text, created_at datetime(6) NOT NULL,"
    " updated_at datetime(6) NOT NULL, batch_id integer, delivered_at datetime(6),"
    " key_id integer)",
    NULL};

static const char *const pg_create_staged[] = {
    "CREATE TABLE IF NOT EXISTS staged_acidic_jobs ("
    " id bigserial PRIMARY KEY, adapter character varying NOT NULL,"
    " job_name character varying NOT NULL, job_args text,"
    " created_at timestamp(6) without time zone NOT NULL,"
    " updated_at timestamp(6) without time zone NOT NULL,"
    " batch_id bigint, delivered_at timestamp(6) without time zone, key_id bigint)",
    NULL};

static const char *const sqlite_create_batches[] = {
    "CREATE TABLE IF NOT EXISTS acidic_job_batches ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, key_id integer NOT NULL,"
    " step varchar NOT NULL, remaining integer NOT NULL, continuation_adapter varchar,"
    " continuation_job_name varchar, continuation_args text,"
    " created_at datetime(6) NOT NULL, updated_at datetime(6) NOT NULL)",
    NULL};

static const char *const pg_create_batches[] = {
    "CREATE TABLE IF NOT EXISTS acidic_job_batches ("
    " id bigserial PRIMARY KEY, key_id bigint NOT NULL, step character varying NOT NULL,"
    " remaining integer NOT NULL, continuation_adapter character varying,"
    " continuation_job_name character varying, continuation_args text,"
    " created_at timestamp(6) without time zone NOT NULL,"
    " updated_at timestamp(6) without time zone NOT NULL)",
    NULL};

static const char *const create_schema[] = {
    "CREATE TABLE IF NOT EXISTS acidic_job_schema (version integer NOT NULL)", NULL};

/* Both dialects take partial indexes. recover_at is set only while a run needs
 * attention, so its index holds the live runs only, however long the history. */
static const char *const indexes[] = {
    "CREATE INDEX IF NOT EXISTS index_acidic_job_keys_on_recover_at ON acidic_job_keys"
    " (recover_at) WHERE recover_at IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS index_staged_acidic_jobs_on_delivered_at_and_id ON"
    " staged_acidic_jobs (delivered_at, id)",
    "CREATE INDEX IF NOT EXISTS index_staged_acidic_jobs_on_batch_id ON staged_acidic_jobs"
    " (batch_id) WHERE batch_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS index_acidic_job_batches_on_key_id ON acidic_job_batches (key_id)",
    NULL};

static const aj_ddl sqlite_ddl = {sqlite_create_keys, sqlite_create_staged,
                                  sqlite_create_batches, create_schema, indexes};
static const aj_ddl pg_ddl = {pg_create_keys, pg_create_staged, pg_create_batches,
                              create_schema, indexes};

const aj_ddl *aj_sql_ddl(int dialect)
{
    return dialect == AJ_DIALECT_POSTGRES ? &pg_ddl : &sqlite_ddl;
}

const aj_column aj_added_columns[] = {
    {'k', "workflow", "text", "text"}, /* 0.6.0 tables */
    {'k', "attempts", "integer", "integer"},
    {'k', "locked_by", "varchar", "character varying"},
    {'k', "recover_at", "datetime(6)", "timestamp(6) without time zone"},
    {'k', "dead_at", "datetime(6)", "timestamp(6) without time zone"},
    {'k', "awaiting_batch_id", "integer", "bigint"},
    {'k', "resume_adapter", "varchar", "character varying"},
    {'k', "resume_job_name", "varchar", "character varying"},
    {'k', "resume_args", "text", "text"},
    {'s', "batch_id", "integer", "bigint"},
    {'s', "delivered_at", "datetime(6)", "timestamp(6) without time zone"},
    {'s', "key_id", "integer", "bigint"},
};
const size_t aj_added_columns_count = sizeof aj_added_columns / sizeof aj_added_columns[0];
