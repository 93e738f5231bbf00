/*
 * libFuzzer target: passwords in URLs and conninfo strings (error.c aj_redact_url, and
 * every message aj_store_open produces). The oracle: the password libpq's PQconninfoParse
 * reads out of the input never appears in the redacted text, nor in the error message of
 * aj_store_open on that input. The password is judged when it is at least 4 bytes long and
 * occurs exactly once in the input (else the text may show it legitimately, e.g. as the
 * host name too).
 *
 * aj_store_open really connects: run.sh starts this target in a network namespace of its
 * own (unshare -n: no network, loopback down), where every connection fails at once, and
 * sets AJ_FUZZ_OPEN=1 only there. Without it only aj_redact_url is judged.
 */
#include "acidic_job.h"
#include "error.h"

#include <libpq-fe.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t occurrences(const char *hay, const char *needle)
{
    size_t n = 0, len = strlen(needle);
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return len ? n : 0;
}

static void leak(const char *where, const char *input, const char *password, const char *text)
{
    fprintf(stderr, "password \"%s\" of input \"%s\" appears in %s: %s\n", password, input,
            where, text);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096 || memchr(data, 0, size))
        return 0;
    char *input = malloc(size + 1);
    if (!input)
        return 0;
    memcpy(input, data, size);
    input[size] = 0;
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(input, &err);
    PQfreemem(err);
    const char *password = NULL;
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (strcmp(o->keyword, "password") == 0 && o->val)
            password = o->val;
    int judged = password && strlen(password) >= 4 && occurrences(input, password) == 1;
    char redacted[8192];
    aj_redact_url(input, redacted, sizeof redacted);
    if (judged && strstr(redacted, password))
        leak("aj_redact_url", input, password, redacted);
    const char *open = getenv("AJ_FUZZ_OPEN");
    if (judged && open && *open == '1' && strncmp(input, "sqlite", 6) != 0) {
        aj_store *store = NULL;
        if (aj_store_open(&store, input, NULL) == AJ_OK)
            aj_store_free(store);
        else if (strstr(aj_error_last()->message, password))
            leak("the aj_store_open message", input, password, aj_error_last()->message);
    }
    PQconninfoFree(opts);
    free(input);
    return 0;
}
