/* The SQLite driver: the embedded default. Prepared statements are cached per
 * connection; a step holds the database write lock from BEGIN IMMEDIATE to COMMIT. */
#include "driver.h"
#include "error.h"
#include "rows.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

typedef struct sq_conn {
    sqlite3 *db;
    sqlite3_stmt *cache[AJ_SQL_SLOTS];
    sqlite3_stmt *tx_stmt[5]; /* indexed by aj_tx_op */
} sq_conn;

static const char *const tx_sql[5] = {"BEGIN", "BEGIN IMMEDIATE", "BEGIN IMMEDIATE", "COMMIT",
                                      "ROLLBACK"};

static int sq_error(sqlite3 *db, int rc, const char *what)
{
    int code = (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED ? AJ_ECONFLICT
                                                                            : AJ_EDATABASE;
    return aj_error_set(code, "SQLite: %s: %s", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

static int sq_tx(void *conn, aj_tx_op op)
{
    sq_conn *c = conn;
    if (op == AJ_TX_ROLLBACK && sqlite3_get_autocommit(c->db))
        return AJ_OK; /* nothing to roll back */
    if (!c->tx_stmt[op]) {
        int rc = sqlite3_prepare_v3(c->db, tx_sql[op], -1, SQLITE_PREPARE_PERSISTENT,
                                    &c->tx_stmt[op], NULL);
        if (rc != SQLITE_OK)
            return sq_error(c->db, rc, tx_sql[op]);
    }
    int rc = sqlite3_step(c->tx_stmt[op]);
    sqlite3_reset(c->tx_stmt[op]);
    if (rc != SQLITE_DONE) {
        int err = sq_error(c->db, rc, tx_sql[op]);
        if (op == AJ_TX_COMMIT && !sqlite3_get_autocommit(c->db)) {
            /* A failed COMMIT leaves the transaction open: end it. */
            sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
        }
        return err;
    }
    return AJ_OK;
}

static int sq_prepare(sq_conn *c, const aj_sql *sql, sqlite3_stmt **out, int *cached)
{
    if (sql->slot >= 0 && sql->slot < AJ_SQL_SLOTS && c->cache[sql->slot]) {
        *out = c->cache[sql->slot];
        *cached = 1;
        return AJ_OK;
    }
    const char *tail = NULL;
    unsigned flags = sql->slot >= 0 ? SQLITE_PREPARE_PERSISTENT : 0;
    int rc = sqlite3_prepare_v3(c->db, sql->text, -1, flags, out, &tail);
    if (rc != SQLITE_OK)
        return sq_error(c->db, rc, "prepare");
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
    *cached = sql->slot >= 0 && sql->slot < AJ_SQL_SLOTS;
    if (*cached)
        c->cache[sql->slot] = *out;
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
        default: rc = sqlite3_bind_null(st, idx); break;
        }
        if (rc != SQLITE_OK)
            return sq_error(c->db, rc, "bind");
    }
    return AJ_OK;
}

static int sq_collect(sq_conn *c, sqlite3_stmt *st, aj_rows *rows)
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
    (void)c;
    return aj_rows_append(rows, cells, (size_t)ncols);
}

static int sq_exec(void *conn, const aj_sql *sql, const aj_value *params, size_t nparams,
                   aj_rows *rows, int64_t *changes, unsigned flags)
{
    sq_conn *c = conn;
    int rc;
    int began = 0;
    if (flags & (AJ_X_BEGIN_IMMEDIATE | AJ_X_BEGIN_SERIALIZABLE)) {
        if ((rc = sq_tx(c, AJ_TX_BEGIN_IMMEDIATE)))
            return rc;
        began = 1;
    } else if (flags & AJ_X_BEGIN) {
        if ((rc = sq_tx(c, AJ_TX_BEGIN)))
            return rc;
        began = 1;
    }
    if (rows)
        aj_rows_reset(rows);

    sqlite3_stmt *st = NULL;
    int cached = 0;
    if ((rc = sq_prepare(c, sql, &st, &cached)) == AJ_OK &&
        (rc = sq_bind(c, st, params, nparams)) == AJ_OK) {
        int s;
        while ((s = sqlite3_step(st)) == SQLITE_ROW)
            if (rows && (rc = sq_collect(c, st, rows)))
                break;
        if (rc == AJ_OK && s != SQLITE_DONE)
            rc = sq_error(c->db, s, "step");
        if (rc == AJ_OK && changes)
            *changes = sqlite3_changes64(c->db);
    }
    if (st) {
        if (cached) {
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
        } else {
            sqlite3_finalize(st);
        }
    }
    if (rc == AJ_OK && (flags & AJ_X_COMMIT))
        rc = sq_tx(c, AJ_TX_COMMIT);
    if (rc && (began || (flags & AJ_X_COMMIT))) {
        aj_saved_error err;
        aj_error_save(&err);
        sq_tx(c, AJ_TX_ROLLBACK);
        aj_error_restore(&err);
    }
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
            sqlite3_finalize(c->cache[i]);
        for (int i = 0; i < 5; i++)
            sqlite3_finalize(c->tx_stmt[i]);
        if (owned)
            sqlite3_close_v2(c->db);
    }
    free(c);
}

static const aj_driver sqlite_driver = {
    "sqlite", AJ_DIALECT_SQLITE, sq_exec, sq_tx, sq_in_transaction, NULL, sq_close,
};

static const char *synchronous_pragma(int s)
{
    return s == AJ_SYNC_OFF ? "PRAGMA synchronous=OFF"
           : s == AJ_SYNC_NORMAL ? "PRAGMA synchronous=NORMAL"
                                 : "PRAGMA synchronous=FULL";
}

/* Switch to WAL. Processes opening a new file at once race for it, and SQLite reports
 * the loser's SQLITE_BUSY at once instead of waiting out the busy timeout: retry with
 * a short sleep until that timeout has passed. */
static int set_wal(sqlite3 *db, int busy_timeout_ms, char **msg)
{
    int waited_ms = 0;
    for (;;) {
        int rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, msg);
        int primary = rc & 0xff;
        if ((primary != SQLITE_BUSY && primary != SQLITE_LOCKED && primary != SQLITE_IOERR) ||
            waited_ms >= busy_timeout_ms)
            return rc;
        sqlite3_free(*msg);
        *msg = NULL;
        sqlite3_sleep(5);
        waited_ms += 5;
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
    sqlite3_busy_timeout(c->db, opts->busy_timeout_ms);
    char *msg = NULL;
    if ((!memory && (rc = set_wal(c->db, opts->busy_timeout_ms, &msg))) ||
        (rc = sqlite3_exec(c->db, synchronous_pragma(opts->synchronous), NULL, NULL, &msg))) {
        int err = aj_error_set(rc == SQLITE_BUSY ? AJ_ECONFLICT : AJ_EDATABASE,
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
    *driver = &sqlite_driver;
    *conn = c;
    return AJ_OK;
}

struct sqlite3 *aj_sqlite_handle(void *conn) { return ((sq_conn *)conn)->db; }
