/*
 * libFuzzer target: passwords in URLs and conninfo strings (error.c aj_redact_url, and
 * every message aj_store_open produces). The oracle: the password libpq's PQconninfoParse
 * reads out of the input never appears in the redacted text, nor in the error message of
 * aj_store_open on that input. The password is judged when it is at least 4 bytes long and
 * occurs exactly once in the input (else the text may show it legitimately, e.g. as the
 * host name too), against a twin input whose password has other letters and digits (the
 * same length, the same parse): the text of the input may hold the password no more often
 * than the twin's (the fixed words of a message may contain it: "stgr" is in
 * "PostgreSQL").
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

/* The input with its one occurrence of `password` changed: each letter and digit to the
 * next one (z to a, 9 to 0), the other bytes kept. */
static char *twin_of(const char *input, const char *password)
{
    char *twin = strdup(input);
    if (!twin)
        abort();
    char *at = strstr(twin, password);
    for (size_t i = 0; at && i < strlen(password); i++) {
        char c = at[i];
        if ((c >= 'a' && c < 'z') || (c >= 'A' && c < 'Z') || (c >= '0' && c < '9'))
            at[i] = (char)(c + 1);
        else if (c == 'z' || c == 'Z' || c == '9')
            at[i] = (char)(c == '9' ? '0' : c - 25);
    }
    return twin;
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
    char *twin = judged ? twin_of(input, password) : NULL;
    char redacted[8192], twin_redacted[8192];
    aj_redact_url(input, redacted, sizeof redacted);
    if (judged) {
        aj_redact_url(twin, twin_redacted, sizeof twin_redacted);
        if (occurrences(redacted, password) > occurrences(twin_redacted, password))
            leak("aj_redact_url", input, password, redacted);
    }
    const char *open = getenv("AJ_FUZZ_OPEN");
    if (judged && open && *open == '1' && strncmp(input, "sqlite", 6) != 0) {
        aj_store *store = NULL;
        char message[2048];
        size_t twin_count = 0;
        if (aj_store_open(&store, twin, NULL) == AJ_OK)
            aj_store_free(store);
        else
            twin_count = occurrences(aj_error_last()->message, password);
        store = NULL;
        if (aj_store_open(&store, input, NULL) == AJ_OK)
            aj_store_free(store);
        else if (snprintf(message, sizeof message, "%s", aj_error_last()->message),
                 occurrences(message, password) > twin_count)
            leak("the aj_store_open message", input, password, message);
    }
    free(twin);
    PQconninfoFree(opts);
    free(input);
    return 0;
}
