/*
 * libFuzzer target: the core's timestamps (util.c). Every string aj_parse_time accepts
 * must format back (aj_format_time) to text that parses to the same instant, and every
 * instant of years 1..9999 must survive format then parse. No crash, no undefined
 * behaviour (ASan+UBSan).
 */
#include "util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 0001-01-01 and 9999-12-31 23:59:59.999999 in microseconds since the epoch */
#define MIN_US (-62135596800LL * 1000000)
#define MAX_US (253402300799LL * 1000000 + 999999)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = 0;
    int64_t us = 0;
    if (aj_parse_time(s, &us) == 0 && us >= MIN_US && us <= MAX_US) {
        char text[32];
        aj_format_time(us, text);
        int64_t again = 0;
        if (aj_parse_time(text, &again) != 0 || again != us) {
            fprintf(stderr, "round trip: \"%s\" -> %lld -> \"%s\" -> %lld\n", s, (long long)us,
                    text, (long long)again);
            abort();
        }
    }
    free(s);
    if (size >= 8) {
        int64_t instant;
        memcpy(&instant, data, 8);
        if (instant >= MIN_US && instant <= MAX_US) {
            char text[32];
            aj_format_time(instant, text);
            int64_t again = 0;
            if (aj_parse_time(text, &again) != 0 || again != instant) {
                fprintf(stderr, "format: %lld -> \"%s\" -> %lld\n", (long long)instant, text,
                        (long long)again);
                abort();
            }
        }
    }
    return 0;
}
