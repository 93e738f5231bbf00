/* Result rows: copies of the cells a statement returned. */
#ifndef AJ_ROWS_H
#define AJ_ROWS_H

#include "acidic_job.h"

struct aj_rows {
    size_t ncols;
    size_t nrows;
    size_t cap;      /* cells allocated */
    aj_value *cells; /* nrows * ncols; text cells point into their own allocation */
};

/* Forget the rows but keep the allocation for reuse. */
void aj_rows_reset(aj_rows *rows);
/* Append a row of `ncols` cells, copying text. AJ_ENOMEM or 0. All rows of one result
 * have the same width (the first row sets it). */
int aj_rows_append(aj_rows *rows, const aj_value *cells, size_t ncols);
/* Release the cells (not the struct itself). */
void aj_rows_clear(aj_rows *rows);

/* Cell helpers for the core: NULL-safe text (NUL-terminated copy) and integer. */
const char *aj_rows_text(const aj_rows *rows, size_t r, size_t c, size_t *len);
int64_t aj_rows_int(const aj_rows *rows, size_t r, size_t c);

#endif
