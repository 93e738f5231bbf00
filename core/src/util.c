/* timegm(), gmtime_r(), nanosleep() and gethostname() are not in strict C11. */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE
#endif
#include "util.h"
#include "error.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

char *aj_strndup(const char *s, size_t len)
{
    char *p = malloc(len + 1);
    if (!p)
        return NULL;
    if (len)
        memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *aj_strdup(const char *s) { return aj_strndup(s, strlen(s)); }

int aj_set_str(char **slot, size_t *slot_len, const char *s, size_t len)
{
    char *copy = NULL;
    if (s) {
        copy = aj_strndup(s, len);
        if (!copy)
            return aj_error_set(AJ_ENOMEM, "out of memory");
    }
    free(*slot);
    *slot = copy;
    if (slot_len)
        *slot_len = s ? len : 0;
    return AJ_OK;
}

int aj_grow(void **items, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return AJ_OK;
    size_t n = *cap ? *cap : 8;
    while (n < need) {
        if (n > SIZE_MAX / 2 / size)
            return aj_error_set(AJ_ENOMEM, "out of memory");
        n *= 2;
    }
    void *grown = realloc(*items, n * size);
    if (!grown)
        return aj_error_set(AJ_ENOMEM, "out of memory");
    *items = grown;
    *cap = n;
    return AJ_OK;
}

void aj_buf_put(aj_buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (aj_grow((void **)&b->s, &b->cap, b->len + n + 1, 1)) {
        b->oom = 1;
        return;
    }
    if (n)
        memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void aj_buf_puts(aj_buf *b, const char *s) { aj_buf_put(b, s, strlen(s)); }

void aj_buf_json(aj_buf *b, const char *s)
{
    aj_buf_puts(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            aj_buf_put(b, esc, 2);
        } else if (*p < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            aj_buf_puts(b, esc);
        } else {
            aj_buf_put(b, (const char *)p, 1);
        }
    }
    aj_buf_puts(b, "\"");
}

int aj_buf_take(aj_buf *b, char **out)
{
    if (b->oom || (!b->s && (aj_buf_put(b, "", 0), b->oom))) {
        free(b->s);
        *b = (aj_buf){0};
        return aj_error_set(AJ_ENOMEM, "out of memory");
    }
    *out = b->s;
    *b = (aj_buf){0};
    return AJ_OK;
}

struct aj_arena_block {
    aj_arena_block *next;
    size_t used, cap;
    max_align_t data[];
};

void *aj_arena_alloc(aj_arena *a, size_t size)
{
    const size_t align = sizeof(max_align_t);
    if (size > SIZE_MAX / 2)
        return a->oom = 1, NULL;
    size = (size + align - 1) / align * align;
    aj_arena_block *b = a->blocks;
    if (!b || b->cap - b->used < size) {
        size_t cap = size > 8192 ? size : 8192;
        b = malloc(sizeof *b + cap);
        if (!b)
            return a->oom = 1, NULL;
        b->next = a->blocks;
        b->used = 0;
        b->cap = cap;
        a->blocks = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += size;
    memset(p, 0, size);
    return p;
}

char *aj_arena_strndup(aj_arena *a, const char *s, size_t len)
{
    if (!s)
        return NULL;
    char *p = aj_arena_alloc(a, len + 1);
    if (p && len)
        memcpy(p, s, len);
    return p;
}

char *aj_arena_strdup(aj_arena *a, const char *s)
{
    return s ? aj_arena_strndup(a, s, strlen(s)) : NULL;
}

void aj_arena_free(aj_arena *a)
{
    while (a->blocks) {
        aj_arena_block *next = a->blocks->next;
        free(a->blocks);
        a->blocks = next;
    }
    a->oom = 0;
}

/* Returns the length of the valid UTF-8 sequence at p (1..4), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t left)
{
    unsigned char c = p[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) { n = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { n = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 4; cp = c & 0x07; }
    else return 0;
    if (n > left)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

int aj_check_doc(const char *doc, size_t len, const char *what)
{
    if (!doc && len)
        return aj_error_set(AJ_EINVALID, "%s: NULL pointer with length %zu", what, len);
    const unsigned char *p = (const unsigned char *)doc;
    for (size_t i = 0; i < len;) {
        if (p[i] == 0)
            return aj_error_set(AJ_EINVALID, "%s contains a NUL byte at offset %zu", what, i);
        size_t n = utf8_seq(p + i, len - i);
        if (!n)
            return aj_error_set(AJ_EINVALID, "%s is not valid UTF-8 (offset %zu)", what, i);
        i += n;
    }
    return AJ_OK;
}

int aj_check_name(const char *name, const char *what)
{
    if (!name)
        return aj_error_set(AJ_EINVALID, "%s is NULL", what);
    size_t len = strlen(name);
    if (len == 0)
        return aj_error_set(AJ_EINVALID, "%s is empty", what);
    if (len > 255)
        return aj_error_set(AJ_EINVALID, "%s is longer than 255 bytes", what);
    return aj_check_doc(name, len, what);
}

int64_t aj_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t aj_add_ms(int64_t us, int64_t ms)
{
    if (ms > AJ_MAX_DURATION_MS)
        ms = AJ_MAX_DURATION_MS;
    if (ms < -AJ_MAX_DURATION_MS)
        ms = -AJ_MAX_DURATION_MS;
    int64_t delta = ms * 1000; /* |delta| < 2^62: cannot overflow */
    if (delta > 0 && us > INT64_MAX - delta)
        return INT64_MAX;
    if (delta < 0 && us < INT64_MIN - delta)
        return INT64_MIN;
    return us + delta;
}

/* 0001-01-01 00:00:00 and 9999-12-31 23:59:59.999999 UTC, the range of both databases'
 * timestamp text the core reads back. */
#define AJ_MIN_TIME_US ((int64_t)-62135596800 * 1000000)
#define AJ_MAX_TIME_US ((int64_t)253402300799 * 1000000 + 999999)

static char *put_digits(char *p, unsigned v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + width;
}

/* Hot: every claim and staging writes timestamps. Converts by arithmetic (the inverse of
 * days-from-civil, proleptic Gregorian) rather than gmtime_r and snprintf, which cost
 * some thirty times as much. */
void aj_format_time(int64_t us, char buf[32])
{
    if (us < AJ_MIN_TIME_US)
        us = AJ_MIN_TIME_US;
    if (us > AJ_MAX_TIME_US)
        us = AJ_MAX_TIME_US;
    int64_t secs = us / 1000000;
    int64_t frac = us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        secs -= 1;
    }
    int64_t days = secs / 86400;
    int64_t sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days -= 1;
    }
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t day = doy - (153 * mp + 2) / 5 + 1;
    int64_t month = mp < 10 ? mp + 3 : mp - 9;
    int64_t year = yoe + era * 400 + (month <= 2);
    char *p = buf;
    p = put_digits(p, (unsigned)year, 4);
    *p++ = '-';
    p = put_digits(p, (unsigned)month, 2);
    *p++ = '-';
    p = put_digits(p, (unsigned)day, 2);
    *p++ = ' ';
    p = put_digits(p, (unsigned)(sod / 3600), 2);
    *p++ = ':';
    p = put_digits(p, (unsigned)(sod / 60 % 60), 2);
    *p++ = ':';
    p = put_digits(p, (unsigned)(sod % 60), 2);
    *p++ = '.';
    p = put_digits(p, (unsigned)frac, 6);
    *p = '\0';
}

static int digits(const char **s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*s)[i];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    *s += n;
    *out = v;
    return 0;
}

int aj_parse_time(const char *s, int64_t *us)
{
    int y, mo, d, h, mi, se;
    if (!s || digits(&s, 4, &y) || *s++ != '-' || digits(&s, 2, &mo) || *s++ != '-' ||
        digits(&s, 2, &d) || (*s != ' ' && *s != 'T'))
        return -1;
    s++;
    if (digits(&s, 2, &h) || *s++ != ':' || digits(&s, 2, &mi) || *s++ != ':' ||
        digits(&s, 2, &se))
        return -1;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
        return -1;
    int64_t frac = 0;
    if (*s == '.') {
        s++;
        int n = 0;
        while (*s >= '0' && *s <= '9') {
            if (n < 6) {
                frac = frac * 10 + (*s - '0');
                n++;
            }
            s++;
        }
        if (n == 0)
            return -1;
        while (n++ < 6)
            frac *= 10;
    }
    int64_t offset = 0;
    if (*s == 'Z' || *s == 'z') {
        s++;
    } else if (*s == '+' || *s == '-') {
        int sign = *s++ == '-' ? -1 : 1, oh, om = 0;
        if (digits(&s, 2, &oh) || oh > 23)
            return -1;
        if (*s == ':')
            s++;
        if (*s >= '0' && *s <= '9' && (digits(&s, 2, &om) || om > 59))
            return -1;
        offset = sign * ((int64_t)oh * 3600 + om * 60);
    } else if (*s == ' ' && strcmp(s, " UTC") == 0) {
        s += 4;
    }
    if (*s != '\0')
        return -1;
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    time_t t = timegm(&tm);
    *us = ((int64_t)t - offset) * 1000000 + frac;
    return 0;
}

void aj_format_duration(int64_t ms, char buf[32])
{
    if (ms < 0)
        ms = 0;
    if (ms < 1000)
        snprintf(buf, 32, "%lld ms", (long long)ms);
    else if (ms < 120 * 1000)
        snprintf(buf, 32, ms % 1000 ? "%.1f s" : "%.0f s", (double)ms / 1000);
    else if (ms < 120 * 60 * 1000)
        snprintf(buf, 32, "%lld min", (long long)(ms / 60000));
    else if (ms < (int64_t)48 * 3600 * 1000)
        snprintf(buf, 32, "%lld h", (long long)(ms / 3600000));
    else
        snprintf(buf, 32, "%lld days", (long long)(ms / 86400000));
}

void aj_backoff(int attempt)
{
    long ms = (1L << (attempt < 8 ? attempt : 8)) + (rand() % 5);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void aj_process_name(char *buf, size_t cap)
{
    char host[128] = "";
    if (gethostname(host, sizeof host - 1) != 0 || !host[0])
        strcpy(host, "localhost");
    host[sizeof host - 1] = '\0';
    snprintf(buf, cap, "%s:%ld", host, (long)getpid());
}
