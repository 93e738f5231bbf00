/* The host driver: SQL executed through the application's own database API (for
 * example ActiveRecord when its SQLite gem links another copy of SQLite). Always
 * borrowed: the host owns the connection and its transactions. */
#include "driver.h"
#include "error.h"
#include "rows.h"
#include "sql.h"

#include <stdlib.h>
#include <string.h>

typedef struct host_conn {
    int dialect;
    aj_host_ops ops;
    void *ctx;
    char *dollar[AJ_SQL_SLOTS]; /* PostgreSQL: statements rewritten to $n, per slot */
} host_conn;

int aj_host_row(aj_host_result *result, const aj_value *cells, size_t ncells)
{
    if (!result || (ncells && !cells))
        return aj_error_set(AJ_EINVALID, "aj_host_row: NULL argument");
    return aj_rows_append((aj_rows *)result, cells, ncells);
}

static int host_exec(void *conn, const aj_sql *sql, const aj_value *params, size_t nparams,
                     aj_rows *rows, int64_t *changes, unsigned flags)
{
    host_conn *h = conn;
    if (flags)
        return aj_error_set(AJ_EMISUSE, "host connections are borrowed: the host owns "
                                        "transaction control");
    const char *text = sql->text;
    char *adhoc = NULL;
    if (h->dialect == AJ_DIALECT_POSTGRES) {
        int cached = sql->slot >= 0 && sql->slot < AJ_SQL_SLOTS;
        if (cached && !h->dollar[sql->slot])
            h->dollar[sql->slot] = aj_sql_dollar_params(sql->text);
        text = cached ? h->dollar[sql->slot] : (adhoc = aj_sql_dollar_params(sql->text));
        if (!text)
            return aj_error_set(AJ_ENOMEM, "out of memory");
    }
    aj_rows scratch = {0};
    aj_rows *out = rows ? rows : &scratch;
    aj_rows_reset(out);
    char errbuf[512] = "";
    int rc = h->ops.exec(h->ctx, text, params, nparams, (aj_host_result *)out, errbuf,
                         sizeof errbuf);
    free(adhoc);
    aj_rows_clear(&scratch);
    if (rc) {
        errbuf[sizeof errbuf - 1] = '\0';
        return aj_error_set(AJ_EDATABASE, "host database: %s", errbuf[0] ? errbuf : "error");
    }
    if (changes)
        *changes = -1; /* not reported by hosts */
    return AJ_OK;
}

static int host_tx(void *conn, aj_tx_op op)
{
    (void)conn;
    if (op == AJ_TX_COMMIT || op == AJ_TX_ROLLBACK)
        return AJ_OK;
    return aj_error_set(AJ_EMISUSE, "host connections are borrowed: the host begins its "
                                    "own transactions");
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
    host_conn *h = conn;
    for (int i = 0; i < AJ_SQL_SLOTS; i++)
        free(h->dollar[i]);
    free(h);
}

static const aj_driver host_driver_sqlite = {
    "host", AJ_DIALECT_SQLITE, host_exec, host_tx, host_in_transaction, NULL, host_close,
};
static const aj_driver host_driver_postgres = {
    "host", AJ_DIALECT_POSTGRES, host_exec, host_tx, host_in_transaction, NULL, host_close,
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
