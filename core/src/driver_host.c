/* The host driver: SQL executed through the application's own database API (for
 * example ActiveRecord when its SQLite gem links another copy of SQLite). Always
 * borrowed, always with a host hook table: the host owns the connection and its
 * transactions, so this driver has no begin/commit. */
#include "driver.h"
#include "error.h"
#include "rows.h"
#include "sql.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct host_conn {
    int dialect;
    aj_host_ops ops;
    void *ctx;
} host_conn;

int aj_host_row(aj_host_result *result, const aj_value *cells, size_t ncells)
{
    if (!result || (ncells && !cells))
        return aj_error_set(AJ_EINVALID, "aj_host_row: NULL argument");
    if (ncells == 0)
        return aj_error_set(AJ_EINVALID, "aj_host_row: a row has at least one cell");
    for (size_t i = 0; i < ncells; i++) {
        if (cells[i].type != AJ_NULL && cells[i].type != AJ_INT && cells[i].type != AJ_TEXT)
            return aj_error_set(AJ_EINVALID, "aj_host_row: cell %zu has unknown type %d", i,
                                cells[i].type);
        if (cells[i].type == AJ_TEXT && !cells[i].text && cells[i].len)
            return aj_error_set(AJ_EINVALID, "aj_host_row: cell %zu is text of %zu bytes at "
                                "NULL", i, cells[i].len);
    }
    return aj_rows_append((aj_rows *)result, cells, ncells);
}

/* Hosts report errors as text; recognise the conditions the core reacts to, as the
 * native drivers do with their codes (SQLite's and PostgreSQL's wordings). */
static const char *infer_state(const char *msg)
{
    static const struct { const char *needle, *state; } known[] = {
        {"no such table", "42P01"},
        {"no such column", "42703"},
        {"has no column named", "42703"},
        {"UndefinedTable", "42P01"},
        {"UndefinedColumn", "42703"},
        {"NOT NULL constraint failed", "23502"},
        {"violates not-null constraint", "23502"},
        {"UNIQUE constraint failed", "23505"},
        {"duplicate key value violates unique constraint", "23505"},
        {"could not serialize access", "40001"},
        {"deadlock detected", "40P01"},
        {"index row size", "54000"},     /* up to btree's 2704 bytes */
        {"index row requires", "54000"}, /* past a page (8191 bytes) */
        {"ProgramLimitExceeded", "54000"},
        {"could not obtain lock on row", "55P03"},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strstr(msg, known[i].needle))
            return known[i].state;
    if (strstr(msg, "relation \"") && strstr(msg, "does not exist"))
        return "42P01";
    if (strstr(msg, "column \"") && strstr(msg, "does not exist"))
        return "42703";
    return "";
}

static int exec_one(host_conn *h, const aj_call *call)
{
    const char *text = call->sql->text;
    char *rewritten = NULL;
    if (h->dialect == AJ_DIALECT_POSTGRES && !call->sql->native) {
        if (!(rewritten = aj_sql_dollar_params(text)))
            return aj_error_set(AJ_ENOMEM, "out of memory");
        text = rewritten;
    }
    aj_rows scratch = {0};
    aj_rows *out = call->rows ? call->rows : &scratch;
    aj_rows_reset(out);
    aj_error_clear();
    int rc = h->ops.exec(h->ctx, text, call->params, call->nparams, (aj_host_result *)out);
    free(rewritten);
    aj_rows_clear(&scratch);
    if (rc == 0)
        return AJ_OK;
    const aj_error *err = aj_error_last();
    if (rc > 0 || err->code == AJ_OK) /* the host did not say why */
        return aj_error_set(rc < 0 ? rc : AJ_EDATABASE, "host database: the statement failed");
    char message[1024];
    snprintf(message, sizeof message, "%s", err->message);
    const char *state = infer_state(message);
    if (rc == AJ_EDATABASE && (!strcmp(state, "40001") || !strcmp(state, "40P01")))
        rc = AJ_ECONFLICT;
    aj_error_set(rc, "%s", message);
    aj_error_set_state(state);
    return rc;
}

static int host_exec(void *conn, const aj_call *calls, size_t ncalls, unsigned flags)
{
    host_conn *h = conn;
    if (flags & AJ_X_COMMIT)
        return aj_error_set(AJ_EMISUSE, "host connections are borrowed: the host commits");
    for (size_t i = 0; i < ncalls; i++) {
        int rc = exec_one(h, &calls[i]);
        if (rc)
            return rc;
    }
    return AJ_OK;
}

static int host_in_transaction(void *conn)
{
    host_conn *h = conn;
    return h->ops.in_transaction(h->ctx) ? 1 : 0;
}

static void host_close(void *conn, int owned, int forked)
{
    (void)owned;
    (void)forked;
    free(conn);
}

static const aj_driver host_driver_sqlite = {
    "host", AJ_DIALECT_SQLITE, 0, host_exec, NULL, NULL, NULL, host_in_transaction, NULL, NULL,
    host_close,
};
static const aj_driver host_driver_postgres = {
    "host", AJ_DIALECT_POSTGRES, 0, host_exec, NULL, NULL, NULL, host_in_transaction, NULL, NULL,
    host_close,
};

int aj_host_open(const aj_driver **driver, void **conn, int dialect, const aj_host_ops *ops,
                 void *ctx)
{
    host_conn *h = calloc(1, sizeof *h);
    if (!h)
        return aj_error_set(AJ_ENOMEM, "out of memory");
    h->dialect = dialect;
    h->ops = *ops;
    h->ctx = ctx;
    *driver = dialect == AJ_DIALECT_POSTGRES ? &host_driver_postgres : &host_driver_sqlite;
    *conn = h;
    return AJ_OK;
}
