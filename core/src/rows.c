#include "rows.h"
#include "error.h"

#include <stdlib.h>
#include <string.h>

void aj_rows_reset(aj_rows *rows)
{
    for (size_t i = 0; i < rows->nrows * rows->ncols; i++)
        if (rows->cells[i].type == AJ_TEXT)
            free((char *)rows->cells[i].text);
    rows->nrows = 0;
    rows->ncols = 0;
}

void aj_rows_clear(aj_rows *rows)
{
    aj_rows_reset(rows);
    free(rows->cells);
    rows->cells = NULL;
    rows->cap = 0;
}

int aj_rows_append(aj_rows *rows, const aj_value *cells, size_t ncols)
{
    if (rows->nrows == 0)
        rows->ncols = ncols;
    else if (ncols != rows->ncols)
        return aj_error_set(AJ_ERROR, "result row has %zu cells, expected %zu", ncols,
                            rows->ncols);
    if (ncols == 0) { /* nothing to copy (and no cells array to point into) */
        rows->nrows++;
        return AJ_OK;
    }
    size_t need = (rows->nrows + 1) * ncols;
    if (need > rows->cap) {
        size_t cap = rows->cap ? rows->cap * 2 : 16;
        while (cap < need)
            cap *= 2;
        aj_value *grown = realloc(rows->cells, cap * sizeof *grown);
        if (!grown)
            return aj_error_set(AJ_ENOMEM, "out of memory");
        rows->cells = grown;
        rows->cap = cap;
    }
    aj_value *dst = rows->cells + rows->nrows * ncols;
    for (size_t c = 0; c < ncols; c++) {
        dst[c] = cells[c];
        if (cells[c].type == AJ_TEXT) {
            char *copy = malloc(cells[c].len + 1);
            if (!copy) {
                for (size_t k = 0; k < c; k++)
                    if (dst[k].type == AJ_TEXT)
                        free((char *)dst[k].text);
                return aj_error_set(AJ_ENOMEM, "out of memory");
            }
            if (cells[c].len)
                memcpy(copy, cells[c].text, cells[c].len);
            copy[cells[c].len] = '\0';
            dst[c].text = copy;
        } else if (cells[c].type != AJ_INT) {
            dst[c].type = AJ_NULL;
            dst[c].text = NULL;
            dst[c].len = 0;
        }
    }
    rows->nrows++;
    return AJ_OK;
}

const char *aj_rows_text(const aj_rows *rows, size_t r, size_t c, size_t *len)
{
    if (r >= rows->nrows || c >= rows->ncols)
        return NULL;
    const aj_value *v = &rows->cells[r * rows->ncols + c];
    if (v->type != AJ_TEXT)
        return NULL;
    if (len)
        *len = v->len;
    return v->text;
}

int64_t aj_rows_int(const aj_rows *rows, size_t r, size_t c)
{
    if (r >= rows->nrows || c >= rows->ncols)
        return 0;
    const aj_value *v = &rows->cells[r * rows->ncols + c];
    if (v->type == AJ_INT)
        return v->integer;
    if (v->type == AJ_TEXT)
        return strtoll(v->text, NULL, 10);
    return 0;
}

/* Public accessors (acidic_job.h). */
size_t aj_rows_count(const aj_rows *rows) { return rows ? rows->nrows : 0; }
size_t aj_rows_columns(const aj_rows *rows) { return rows ? rows->ncols : 0; }

const aj_value *aj_rows_cell(const aj_rows *rows, size_t r, size_t c)
{
    if (!rows || r >= rows->nrows || c >= rows->ncols)
        return NULL;
    return &rows->cells[r * rows->ncols + c];
}

void aj_rows_free(aj_rows *rows)
{
    if (!rows)
        return;
    aj_rows_clear(rows);
    free(rows);
}
