/*
 * libFuzzer target: migration lines ("?column TABLE COLUMN TYPE", migrate.c, static: this
 * file includes migrate.c). A line is applied only when it is well formed: exactly three
 * words, none longer than the 63 bytes the parser keeps; otherwise it must be refused,
 * never applied with a truncated or partial name. No crash, no undefined behaviour.
 */
#include "../../../core/src/migrate.c"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static aj_store *store;

static int well_formed(const char *spec)
{
    int words = 0;
    const char *p = spec + strlen("?column");
    while (*p) {
        while (*p && isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        const char *start = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        if (p - start > 63)
            return 0;
        words++;
    }
    return words == 3;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!store) {
        if (aj_store_open(&store, "sqlite::memory:", NULL) != AJ_OK)
            abort();
        aj_store_exec(store, "CREATE TABLE t (a text)", NULL, 0, NULL);
    }
    if (size > 1024 || memchr(data, 0, size))
        return 0;
    char spec[1100];
    int n = snprintf(spec, sizeof spec, "?column %.*s", (int)size, (const char *)data);
    if (n < 0)
        return 0;
    aj_store_exec(store, "SAVEPOINT fuzz", NULL, 0, NULL);
    int rc = add_column_if_missing(store, spec);
    aj_store_exec(store, "ROLLBACK TO fuzz", NULL, 0, NULL);
    aj_store_exec(store, "RELEASE fuzz", NULL, 0, NULL);
    if (rc == AJ_OK && !well_formed(spec)) {
        fprintf(stderr, "a malformed migration line was applied (rc %d): \"%s\"\n", rc, spec);
        abort();
    }
    return 0;
}
