/* The SQLite driver: the embedded default. Prepared statements are cached per
 * connection and reset as soon as each call is done, so no statement of the core
 * outlives the call that ran it (in shared-cache mode an unreset statement would keep
 * a table lock that other connections trip over). */
#include "driver.h"
#include "error.h"
#include "rows.h"
#include "util.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

typedef struct sq_cached {
    sqlite3_stmt *stmt;
    const char *text; /* the aj_sql text it was prepared from */
} sq_cached;

typedef struct sq_conn {
    sqlite3 *db;
    sq_cached cache[AJ_SQL_SLOTS];
    sqlite3_stmt *begin_deferred, *begin_immediate, *commit, *rollback;
} sq_conn;

/* SQLite reports the conditions the core reacts to through codes and messages; give
 * each the SQLSTATE PostgreSQL uses for it (error.h). */
static int sq_error(sqlite3 *db, int rc, const char *what, int64_t waited_us)
{
    int ext = db ? sqlite3_extended_errcode(db) : rc;
    int primary = rc & 0xff;
    const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
        char waited[32];
        aj_format_duration(waited_us / 1000, waited);
        int code;
        if (ext == SQLITE_BUSY_SNAPSHOT)
            code = aj_error_set(AJ_ECONFLICT, "SQLite %s: another connection wrote to the database "
                                "after this transaction read it (SQLITE_BUSY_SNAPSHOT)", what);
        else if (primary == SQLITE_LOCKED)
            code = aj_error_set(AJ_ECONFLICT, "SQLite %s: a table is locked by another connection "
                                "of the same shared cache (%s)", what, msg);
        else if (waited_us < 1000)
            /* SQLite does not wait when a transaction that has read wants to write while
             * another connection writes: waiting could deadlock. */
            code = aj_error_set(AJ_ECONFLICT, "SQLite %s: the database is busy: another connection "
                                "held the write lock (SQLite allows one writer at a time) and "
                                "SQLite refused at once, without waiting, since this transaction "
                                "had read before it wrote; retrying the transaction helps",
                                what);
        else
            code = aj_error_set(AJ_ECONFLICT, "SQLite %s: the database is busy: another connection "
                                "held the write lock (SQLite allows one writer at a time) and this "
                                "one gave up after waiting %s; raise the busy timeout or keep "
                                "write transactions short", what, waited);
        aj_error_set_state("40001");
        return code;
    }
    if (primary == SQLITE_CONSTRAINT) {
        int code = aj_error_set(AJ_EDATABASE, "SQLite %s: %s", what, msg);
        if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY)
            aj_error_set_state("23505");
        else if (ext == SQLITE_CONSTRAINT_NOTNULL)
            aj_error_set_state("23502");
        else
            aj_error_set_state("23000");
        return code;
    }
    if (primary == SQLITE_ERROR && msg &&
        (strstr(msg, "no such table") || strstr(msg, "no such column") ||
         strstr(msg, "has no column named"))) {
        int code = aj_error_set(AJ_EDATABASE, "SQLite %s: %s", what, msg);
        aj_error_set_state(strstr(msg, "table") && !strstr(msg, "column") ? "42P01" : "42703");
        return code;
    }
    return aj_error_set(AJ_EDATABASE, "SQLite %s: %s", what, msg);
}

static int tx_statement(sq_conn *c, sqlite3_stmt **st, const char *sql)
{
    int64_t start = aj_now_us();
    if (!*st) {
        int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
        if (rc != SQLITE_OK)
            return sq_error(c->db, rc, sql, aj_now_us() - start);
    }
    int rc = sqlite3_step(*st);
    sqlite3_reset(*st);
    if (rc != SQLITE_DONE)
        return sq_error(c->db, rc, sql, aj_now_us() - start);
    return AJ_OK;
}

static int sq_begin(void *conn, int mode)
{
    sq_conn *c = conn;
    if (!sqlite3_get_autocommit(c->db))
        return aj_error_set(AJ_EMISUSE, "SQLite BEGIN: a transaction is already open on the "
                                        "connection");
    return mode == AJ_BEGIN_DEFERRED ? tx_statement(c, &c->begin_deferred, "BEGIN")
                                     : tx_statement(c, &c->begin_immediate, "BEGIN IMMEDIATE");
}

static void sq_rollback(void *conn)
{
    sq_conn *c = conn;
    if (sqlite3_get_autocommit(c->db))
        return; /* nothing to roll back (SQLite may have rolled back by itself) */
    aj_saved_error err;
    aj_error_save(&err);
    if (tx_statement(c, &c->rollback, "ROLLBACK") != AJ_OK)
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    aj_error_restore(&err);
}

static int sq_commit(void *conn)
{
    sq_conn *c = conn;
    if (sqlite3_get_autocommit(c->db))
        return aj_error_set(AJ_EMISUSE, "SQLite COMMIT: no transaction is open: something "
                                        "ended it before the core could commit");
    int rc = tx_statement(c, &c->commit, "COMMIT");
    if (rc)
        sq_rollback(c); /* a failed COMMIT leaves the transaction open */
    return rc;
}

static int sq_prepare(sq_conn *c, const aj_sql *sql, sqlite3_stmt **out, int *cached)
{
    int slot = sql->slot;
    if (slot >= 0 && slot < AJ_SQL_SLOTS && c->cache[slot].stmt) {
        if (c->cache[slot].text == sql->text ||
            strcmp(sqlite3_sql(c->cache[slot].stmt), sql->text) == 0) {
            c->cache[slot].text = sql->text;
            *out = c->cache[slot].stmt;
            *cached = 1;
            return AJ_OK;
        }
        sqlite3_finalize(c->cache[slot].stmt); /* the store re-expanded its statements */
        c->cache[slot].stmt = NULL;
    }
    const char *tail = NULL;
    unsigned flags = slot >= 0 ? SQLITE_PREPARE_PERSISTENT : 0;
    int64_t start = aj_now_us();
    int rc = sqlite3_prepare_v3(c->db, sql->text, -1, flags, out, &tail);
    if (rc != SQLITE_OK)
        return sq_error(c->db, rc, "prepare", aj_now_us() - start);
    if (!*out)
        return aj_error_set(AJ_EINVALID, "SQLite: the SQL holds no statement");
    while (tail && (*tail == ' ' || *tail == '\n' || *tail == '\t' || *tail == ';' ||
                    *tail == '\r'))
        tail++;
    if (tail && *tail) {
        sqlite3_finalize(*out);
        *out = NULL;
        return aj_error_set(AJ_EINVALID, "SQLite: one statement at a time, please (found more "
                                         "after the first)");
    }
    *cached = slot >= 0 && slot < AJ_SQL_SLOTS;
    if (*cached) {
        c->cache[slot].stmt = *out;
        c->cache[slot].text = sql->text;
    }
    return AJ_OK;
}

static int sq_bind(sq_conn *c, sqlite3_stmt *st, const aj_value *params, size_t n)
{
    int expected = sqlite3_bind_parameter_count(st);
    if ((size_t)expected != n)
        return aj_error_set(AJ_EINVALID, "SQLite: the statement takes %d parameters, %zu given",
                            expected, n);
    for (size_t i = 0; i < n; i++) {
        int rc, idx = (int)i + 1;
        switch (params[i].type) {
        case AJ_INT: rc = sqlite3_bind_int64(st, idx, params[i].integer); break;
        case AJ_TEXT:
            rc = sqlite3_bind_text64(st, idx, params[i].text ? params[i].text : "",
                                     params[i].len, SQLITE_STATIC, SQLITE_UTF8);
            break;
        case AJ_NULL: rc = sqlite3_bind_null(st, idx); break;
        default:
            return aj_error_set(AJ_EINVALID, "parameter %zu has unknown type %d", i + 1,
                                params[i].type);
        }
        if (rc != SQLITE_OK)
            return sq_error(c->db, rc, "bind", 0);
    }
    return AJ_OK;
}

static int sq_collect(sqlite3_stmt *st, aj_rows *rows)
{
    int ncols = sqlite3_column_count(st);
    aj_value cells[32];
    if (ncols > 32)
        return aj_error_set(AJ_EINVALID, "SQLite: at most 32 result columns are supported");
    for (int i = 0; i < ncols; i++) {
        aj_value v = {AJ_NULL, 0, NULL, 0};
        switch (sqlite3_column_type(st, i)) {
        case SQLITE_NULL: break;
        case SQLITE_INTEGER:
            v.type = AJ_INT;
            v.integer = sqlite3_column_int64(st, i);
            break;
        default:
            v.type = AJ_TEXT;
            v.text = (const char *)sqlite3_column_text(st, i);
            v.len = (size_t)sqlite3_column_bytes(st, i);
            if (!v.text)
                v.text = "";
        }
        cells[i] = v;
    }
    return aj_rows_append(rows, cells, (size_t)ncols);
}

static int exec_one(sq_conn *c, const aj_call *call)
{
    if (call->rows)
        aj_rows_reset(call->rows);
    sqlite3_stmt *st = NULL;
    int cached = 0;
    int rc = sq_prepare(c, call->sql, &st, &cached);
    if (rc == AJ_OK && (rc = sq_bind(c, st, call->params, call->nparams)) == AJ_OK) {
        int64_t start = aj_now_us();
        int s;
        int made_up = call->sql->result != AJ_RESULT_RETURNED;
        while ((s = sqlite3_step(st)) == SQLITE_ROW)
            if (call->rows && !made_up && (rc = sq_collect(st, call->rows)))
                break;
        if (rc == AJ_OK && s != SQLITE_DONE)
            rc = sq_error(c->db, s, "statement", aj_now_us() - start);
        if (rc == AJ_OK && call->rows && call->sql->result != AJ_RESULT_RETURNED) {
            /* the statement's RETURNING clause was left out for this driver */
            aj_value v = {AJ_INT, call->sql->result == AJ_RESULT_ROWID
                                      ? sqlite3_last_insert_rowid(c->db) : 1, NULL, 0};
            if (sqlite3_changes64(c->db) > 0)
                rc = aj_rows_append(call->rows, &v, 1);
            call->rows->ncols = 1;
        } else if (rc == AJ_OK && call->rows && call->rows->nrows == 0) {
            call->rows->ncols = (size_t)sqlite3_column_count(st);
        }
    }
    if (st) {
        if (cached) {
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
        } else {
            sqlite3_finalize(st);
        }
    }
    return rc;
}

static int sq_exec(void *conn, const aj_call *calls, size_t ncalls, unsigned flags)
{
    sq_conn *c = conn;
    int rc = AJ_OK;
    for (size_t i = 0; i < ncalls && rc == AJ_OK; i++)
        rc = exec_one(c, &calls[i]);
    if (rc == AJ_OK && (flags & AJ_X_COMMIT))
        return sq_commit(c);
    if (rc && (flags & AJ_X_COMMIT))
        sq_rollback(c);
    return rc;
}

static int sq_in_transaction(void *conn) { return !sqlite3_get_autocommit(((sq_conn *)conn)->db); }

static void sq_close(void *conn, int owned, int forked)
{
    sq_conn *c = conn;
    if (!forked) {
        /* In a forked child SQLite must not be touched at all: the memory is leaked on
         * purpose, the parent keeps its connection. */
        for (int i = 0; i < AJ_SQL_SLOTS; i++)
            sqlite3_finalize(c->cache[i].stmt);
        sqlite3_finalize(c->begin_deferred);
        sqlite3_finalize(c->begin_immediate);
        sqlite3_finalize(c->commit);
        sqlite3_finalize(c->rollback);
        if (owned)
            sqlite3_close_v2(c->db);
    }
    free(c);
}

static const aj_driver sqlite_driver = {
    "sqlite", AJ_DIALECT_SQLITE, AJ_DRV_LEAN | AJ_DRV_READS_ALONE, sq_exec, sq_begin,
    sq_commit, sq_rollback, sq_in_transaction, NULL, NULL, sq_close,
};

/* acidic_job_now(): the time as the core writes it (the process's clock, microseconds),
 * which @now reads on this driver. strftime('...', 'now') costs more than a short
 * statement does. */
static void now_function(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    (void)argv;
    char now[32];
    aj_format_time(aj_now_us(), now);
    sqlite3_result_text(ctx, now, -1, SQLITE_TRANSIENT);
}

static int register_functions(sqlite3 *db)
{
    int rc = sqlite3_create_function_v2(db, "acidic_job_now", 0, SQLITE_UTF8 | SQLITE_INNOCUOUS,
                                        NULL, now_function, NULL, NULL, NULL);
    return rc == SQLITE_OK ? AJ_OK
                           : aj_error_set(AJ_EDATABASE, "SQLite: cannot define acidic_job_now(): "
                                          "%s", sqlite3_errstr(rc));
}

static const char *synchronous_pragma(int s)
{
    return s == AJ_SYNC_OFF ? "PRAGMA synchronous=OFF"
           : s == AJ_SYNC_NORMAL ? "PRAGMA synchronous=NORMAL"
                                 : "PRAGMA synchronous=FULL";
}

/* Switch to WAL. Processes opening a new file at once race for it, and SQLite reports
 * the loser's SQLITE_BUSY at once instead of waiting out the busy timeout: retry with
 * a short sleep until that timeout has passed. */
static int set_wal(sqlite3 *db, int64_t busy_timeout_ms, char **msg)
{
    int64_t start = aj_now_us();
    for (;;) {
        int rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, msg);
        int primary = rc & 0xff;
        if ((primary != SQLITE_BUSY && primary != SQLITE_LOCKED && primary != SQLITE_IOERR) ||
            aj_now_us() - start >= busy_timeout_ms * 1000)
            return rc;
        sqlite3_free(*msg);
        *msg = NULL;
        sqlite3_sleep(5);
    }
}

int aj_sqlite_open(const aj_driver **driver, void **conn, const char *path,
                   const aj_options *opts)
{
    if (!path || !*path)
        return aj_error_set(AJ_EINVALID, "sqlite: URL without a path; use sqlite:PATH or "
                                         "sqlite::memory:");
    sq_conn *c = calloc(1, sizeof *c);
    if (!c)
        return aj_error_set(AJ_ENOMEM, "out of memory");
    int memory = strcmp(path, ":memory:") == 0;
    int rc = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                               SQLITE_OPEN_FULLMUTEX, NULL);
    if (rc != SQLITE_OK) {
        int err = aj_error_set(AJ_EDATABASE, "SQLite: cannot open \"%s\": %s", path,
                               c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        sqlite3_close_v2(c->db);
        free(c);
        return err;
    }
    sqlite3_busy_timeout(c->db, (int)(opts->busy_timeout_ms > 0x7fffffff ? 0x7fffffff
                                                                         : opts->busy_timeout_ms));
    char *msg = NULL;
    if (register_functions(c->db)) {
        sqlite3_close_v2(c->db);
        free(c);
        return AJ_EDATABASE;
    }
    if ((!memory && (rc = set_wal(c->db, opts->busy_timeout_ms, &msg))) ||
        (rc = sqlite3_exec(c->db, synchronous_pragma(opts->synchronous), NULL, NULL, &msg))) {
        int err = aj_error_set((rc & 0xff) == SQLITE_BUSY ? AJ_ECONFLICT : AJ_EDATABASE,
                               "SQLite: cannot set up \"%s\": %s", path, msg ? msg : "error");
        sqlite3_free(msg);
        sqlite3_close_v2(c->db);
        free(c);
        return err;
    }
    *driver = &sqlite_driver;
    *conn = c;
    return AJ_OK;
}

int aj_sqlite_borrow(const aj_driver **driver, void **conn, struct sqlite3 *db)
{
    sq_conn *c = calloc(1, sizeof *c);
    if (!c)
        return aj_error_set(AJ_ENOMEM, "out of memory");
    c->db = db;
    if (register_functions(db)) {
        free(c);
        return AJ_EDATABASE;
    }
    *driver = &sqlite_driver;
    *conn = c;
    return AJ_OK;
}

struct sqlite3 *aj_sqlite_handle(void *conn) { return ((sq_conn *)conn)->db; }
