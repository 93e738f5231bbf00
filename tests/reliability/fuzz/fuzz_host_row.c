/*
 * libFuzzer target: rows reported by a host connection (aj_host_row, driver_host.c). The
 * input describes rows (widths, cell types, integers, text of any bytes); a host store's
 * exec hands them to aj_host_row, and aj_store_exec reads them back. Every row aj_host_row
 * accepted comes back cell for cell; a row without cells, a cell of an unknown type, text
 * with a NULL pointer and a length, or a row of another width than the first is refused. No crash, no undefined
 * behaviour, no read outside what the host gave.
 */
#include "acidic_job.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ROWS 8
#define MAX_CELLS 6

typedef struct plan {
    size_t nrows;
    size_t ncells[MAX_ROWS];
    aj_value cells[MAX_ROWS][MAX_CELLS];
    int accepted[MAX_ROWS];
} plan;

static int host_exec(void *ctx, const char *sql, const aj_value *params, size_t nparams,
                     aj_host_result *result)
{
    (void)sql, (void)params, (void)nparams;
    plan *p = ctx;
    for (size_t r = 0; r < p->nrows; r++)
        p->accepted[r] = aj_host_row(result, p->cells[r], p->ncells[r]) == AJ_OK;
    return 0;
}

static int host_in_tx(void *ctx)
{
    (void)ctx;
    return 1;
}

/* The host's transaction: nothing to begin on this pretend connection. */
static int host_atomically(void *ctx, aj_tx_body body, void *arg, int *committed)
{
    (void)ctx;
    *committed = body(arg) == 0;
    return 0;
}

static int valid(const aj_value *v)
{
    return v->type == AJ_NULL || v->type == AJ_INT || (v->type == AJ_TEXT && (v->text || !v->len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    plan p;
    memset(&p, 0, sizeof p);
    size_t i = 0;
#define NEXT() (i < size ? data[i++] : 0)
    p.nrows = NEXT() % (MAX_ROWS + 1);
    for (size_t r = 0; r < p.nrows; r++) {
        p.ncells[r] = NEXT() % (MAX_CELLS + 1);
        for (size_t c = 0; c < p.ncells[r]; c++) {
            aj_value *v = &p.cells[r][c];
            unsigned kind = NEXT() % 5;
            v->type = kind == 4 ? 7 : kind == 3 ? AJ_TEXT : (int)kind;
            uint64_t bits = 0;
            for (int b = 0; b < 8; b++)
                bits = (bits << 8) | NEXT();
            memcpy(&v->integer, &bits, sizeof bits);
            size_t len = NEXT();
            if (len > size - i)
                len = size - i;
            v->text = kind == 3 ? NULL : (const char *)data + i;
            v->len = kind == 3 ? len + 1 : len;
            i += len;
        }
    }
    aj_host_ops ops = AJ_HOST_OPS_INIT;
    ops.exec = host_exec;
    ops.in_transaction = host_in_tx;
    aj_host_tx tx = AJ_HOST_TX_INIT;
    tx.atomically = host_atomically;
    aj_store *store = NULL;
    if (aj_store_borrow_host(&store, AJ_DIALECT_SQLITE, &ops, &tx, &p, NULL) != AJ_OK)
        abort();
    aj_rows *rows = NULL;
    if (aj_store_exec(store, "SELECT 1", NULL, 0, &rows) == AJ_OK) {
        size_t out = 0, width = 0;
        for (size_t r = 0; r < p.nrows; r++) {
            int ok = p.ncells[r] > 0;
            for (size_t c = 0; c < p.ncells[r]; c++)
                ok &= valid(&p.cells[r][c]);
            if (p.accepted[r] && !ok) {
                fprintf(stderr, "aj_host_row accepted row %zu with an invalid cell\n", r);
                abort();
            }
            if (!p.accepted[r])
                continue;
            if (out == 0)
                width = p.ncells[r];
            else if (p.ncells[r] != width) {
                fprintf(stderr, "aj_host_row accepted row %zu of %zu cells after rows of %zu\n",
                        r, p.ncells[r], width);
                abort();
            }
            if (out >= aj_rows_count(rows) || aj_rows_columns(rows) != width) {
                fprintf(stderr, "row %zu was accepted but did not come back\n", r);
                abort();
            }
            for (size_t c = 0; c < width; c++) {
                const aj_value *got = aj_rows_cell(rows, out, c), *want = &p.cells[r][c];
                int same = got && got->type == want->type &&
                           (want->type != AJ_INT || got->integer == want->integer) &&
                           (want->type != AJ_TEXT ||
                            (got->len == want->len && !memcmp(got->text, want->text, want->len)));
                if (!same) {
                    fprintf(stderr, "row %zu cell %zu came back changed\n", r, c);
                    abort();
                }
            }
            out++;
        }
        aj_rows_free(rows);
    }
    aj_store_free(store);
    return 0;
}
