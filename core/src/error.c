#include "error.h"
#include "util.h"

#include <libpq-fe.h>

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AJ_ERROR_MESSAGE_MAX 1024

static _Thread_local char last_message[AJ_ERROR_MESSAGE_MAX] = "no error";
static _Thread_local char last_state[6] = "";
static _Thread_local aj_error last_error = {AJ_OK, NULL};

const aj_error *aj_error_last(void)
{
    last_error.message = last_message;
    return &last_error;
}

void aj_error_clear(void)
{
    last_error.code = AJ_OK;
    last_state[0] = '\0';
    strcpy(last_message, "no error");
}

int aj_error_set(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_message, sizeof last_message, fmt, ap);
    va_end(ap);
    aj_scrub_secrets(last_message, sizeof last_message);
    last_error.code = code;
    last_state[0] = '\0';
    return code;
}

int aj_error_report(int code, const char *message)
{
    if (code >= 0)
        code = AJ_ERROR;
    return aj_error_set(code, "%s", message && *message ? message : "the host reported an error");
}

void aj_error_set_state(const char *sqlstate)
{
    snprintf(last_state, sizeof last_state, "%s", sqlstate ? sqlstate : "");
}

const char *aj_error_state(void) { return last_state; }

/* Saving and restoring copy what is there: the message was scrubbed when it was set.
 * Both are on every transaction's path, so they copy the text, not the whole buffer. */
static size_t bounded_len(const char *s, size_t max)
{
    const char *end = memchr(s, '\0', max);
    return end ? (size_t)(end - s) : max;
}

void aj_error_save(aj_saved_error *saved)
{
    saved->code = last_error.code;
    memcpy(saved->state, last_state, sizeof last_state);
    size_t n = bounded_len(last_message, sizeof saved->message - 1);
    memcpy(saved->message, last_message, n);
    saved->message[n] = '\0';
}

int aj_error_restore(const aj_saved_error *saved)
{
    size_t n = bounded_len(saved->message, sizeof saved->message - 1);
    memcpy(last_message, saved->message, n);
    last_message[n] = '\0';
    last_error.code = saved->code;
    memcpy(last_state, saved->state, sizeof last_state);
    return saved->code;
}

const char *aj_code_name(int code)
{
    switch (code) {
    case AJ_OK: return "AJ_OK";
    case AJ_ERROR: return "AJ_ERROR";
    case AJ_EINVALID: return "AJ_EINVALID";
    case AJ_ENOMEM: return "AJ_ENOMEM";
    case AJ_EMISUSE: return "AJ_EMISUSE";
    case AJ_EDATABASE: return "AJ_EDATABASE";
    case AJ_ECONFLICT: return "AJ_ECONFLICT";
    case AJ_EMISMATCH: return "AJ_EMISMATCH";
    case AJ_ELOCKED: return "AJ_ELOCKED";
    case AJ_EUNKNOWN_RECOVERY_POINT: return "AJ_EUNKNOWN_RECOVERY_POINT";
    case AJ_ENO_STEPS: return "AJ_ENO_STEPS";
    case AJ_EDUPLICATE_STEP: return "AJ_EDUPLICATE_STEP";
    case AJ_ESTEP: return "AJ_ESTEP";
    case AJ_ENOTFOUND: return "AJ_ENOTFOUND";
    case AJ_ESCHEMA: return "AJ_ESCHEMA";
    case AJ_ESTATE: return "AJ_ESTATE";
    default: return "AJ_UNKNOWN_CODE";
    }
}

/* ---------------------------------------------------------------------------- */
/* Secrets                                                                       */
/* ---------------------------------------------------------------------------- */

/* A key whose value is a secret: contains "pass" or "pwd", any case ("password",
 * "passwd", "PASSWORD", "db_pass", "pwd"). */
static int secret_key(const char *key, size_t len)
{
    for (size_t i = 0; i + 3 <= len; i++) {
        if (i + 4 <= len && tolower((unsigned char)key[i]) == 'p' &&
            tolower((unsigned char)key[i + 1]) == 'a' && tolower((unsigned char)key[i + 2]) == 's' &&
            tolower((unsigned char)key[i + 3]) == 's')
            return 1;
        if (tolower((unsigned char)key[i]) == 'p' && tolower((unsigned char)key[i + 1]) == 'w' &&
            tolower((unsigned char)key[i + 2]) == 'd')
            return 1;
    }
    return 0;
}

static int key_char(char c) { return isalnum((unsigned char)c) || c == '_' || c == '-'; }
static int space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* The value that starts at v (after "key ="): a quoted conninfo value, or up to the
 * next separator. Returns where it ends. */
static const char *value_end(const char *v)
{
    if (*v == '\'') {
        /* libpq's \' escape, and '' (not libpq's, but a value someone quoted SQL-style
         * is echoed whole by libpq's complaint about it) */
        for (v++; *v; v++) {
            if (*v == '\\' && v[1])
                v++;
            else if (*v == '\'' && v[1] == '\'')
                v++;
            else if (*v == '\'')
                break;
        }
        return *v ? v + 1 : v;
    }
    /* Unquoted, a value ends at white space only: '&' and '#' end it in a URI query, but
     * not in conninfo, and hiding a little more than the password costs nothing. */
    while (*v && !space(*v))
        v++;
    return v;
}

/* Spans of `s` that hold secrets, in order: [start, end) pairs. */
typedef struct spans {
    size_t n;
    size_t at[32][2];
} spans;

static void add_span(spans *sp, size_t a, size_t b)
{
    if (b <= a)
        return;
    if (sp->n == 32) { /* full: the last span grows to cover this one too (hiding more
                          than the secrets costs nothing, dropping one shows it) */
        size_t *last = sp->at[31];
        if (a < last[0])
            last[0] = a;
        if (b > last[1])
            last[1] = b;
        return;
    }
    sp->at[sp->n][0] = a;
    sp->at[sp->n][1] = b;
    sp->n++;
}

/* Sort the spans by their start and merge those that overlap or touch: the replacement
 * goes right to left, so each span must lie wholly after the one before it. */
static void order_spans(spans *sp)
{
    for (size_t i = 1; i < sp->n; i++)
        for (size_t j = i; j > 0 && sp->at[j][0] < sp->at[j - 1][0]; j--) {
            size_t a = sp->at[j][0], b = sp->at[j][1];
            sp->at[j][0] = sp->at[j - 1][0];
            sp->at[j][1] = sp->at[j - 1][1];
            sp->at[j - 1][0] = a;
            sp->at[j - 1][1] = b;
        }
    size_t n = 0;
    for (size_t i = 0; i < sp->n; i++) {
        if (n && sp->at[i][0] <= sp->at[n - 1][1]) {
            if (sp->at[i][1] > sp->at[n - 1][1])
                sp->at[n - 1][1] = sp->at[i][1];
            continue;
        }
        sp->at[n][0] = sp->at[i][0];
        sp->at[n][1] = sp->at[i][1];
        n++;
    }
    sp->n = n;
}

/* Find the secret spans of a string (in no order, they may overlap): URI userinfo
 * passwords (every "://" in it) and values of password-like keys ("key = value" in
 * conninfo, "key=value" in a query). The keys are looked for inside values too: where a
 * value ends is libpq's to decide (host=0pwd='x password='secret' is a host "0pwd='x"
 * then a password), and a span too many only hides more. */
static void find_secrets(const char *s, spans *sp)
{
    sp->n = 0;
    size_t n = strlen(s);
    for (const char *p = strstr(s, "://"); p; p = strstr(p + 3, "://")) {
        const char *auth = p + 3;
        /* The userinfo ends at the LAST '@' before the next URL: a password that is not
         * percent-encoded may hold '/', '?', '#', '=' and even spaces, and what follows
         * the '@' up to the next URL is hidden with it only when there is a later '@'
         * (hiding too much costs nothing, a password shown does). */
        const char *next = strstr(auth, "://");
        const char *at = NULL;
        for (const char *q = auth; *q && (!next || q < next); q++)
            if (*q == '@')
                at = q;
        if (!at)
            continue;
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        if (colon)
            add_span(sp, (size_t)(colon + 1 - s), (size_t)(at - s));
    }
    for (size_t i = 0; i < n; i++) {
        if (!key_char(s[i]) || (i > 0 && key_char(s[i - 1])))
            continue;
        size_t k = i;
        while (k < n && key_char(s[k]))
            k++;
        if (!secret_key(s + i, k - i))
            continue;
        size_t e = k;
        while (e < n && space(s[e]))
            e++;
        if (e >= n || s[e] != '=')
            continue;
        e++;
        while (e < n && space(s[e]))
            e++;
        add_span(sp, e, (size_t)(value_end(s + e) - s));
    }
}

/* Replace [a, b) of msg by "***" (in place, bounded by cap: what does not fit is cut). */
static void replace_span(char *msg, size_t cap, size_t a, size_t b)
{
    size_t len = strlen(msg);
    if (a >= len)
        return;
    if (b > len)
        b = len;
    if (a + 4 > cap) { /* no room for the whole mark (a short secret grew the text) */
        size_t i = a;
        for (; i + 1 < cap && i < a + 3; i++)
            msg[i] = '*';
        msg[i] = '\0';
        return;
    }
    size_t tail = len - b;
    if (a + 3 + tail + 1 > cap)
        tail = cap - a - 4;
    memmove(msg + a + 3, msg + b, tail);
    memcpy(msg + a, "***", 3);
    msg[a + 3 + tail] = '\0';
}

void aj_scrub_secrets(char *msg, size_t cap)
{
    spans sp;
    find_secrets(msg, &sp);
    order_spans(&sp);
    /* Right to left, so that earlier spans keep their offsets. */
    for (size_t i = sp.n; i-- > 0;) {
        size_t a = sp.at[i][0], b = sp.at[i][1];
        if (b - a == 3 && strncmp(msg + a, "***", 3) == 0)
            continue; /* redacted already (a redacted URL quoted in a message); a password
                         that merely starts with "***" is not */
        replace_span(msg, cap, a, b);
    }
}

void aj_redact_url(const char *conninfo, char *out, size_t outsz)
{
    if (!outsz)
        return;
    snprintf(out, outsz, "%s", conninfo ? conninfo : "");
    aj_scrub_secrets(out, outsz);
}

/* Replace every occurrence of `secret` (len >= 1) in msg by "***". */
static void scrub_value(char *msg, size_t cap, const char *secret, size_t len)
{
    if (!len)
        return;
    for (char *p = strstr(msg, secret); p;) {
        size_t at = (size_t)(p - msg);
        replace_span(msg, cap, at, at + len);
        if (at + 3 >= strlen(msg))
            break; /* the mark ends the text (it may have been cut) */
        p = strstr(msg + at + 3, secret);
    }
}

void aj_scrub_conninfo(char *msg, size_t cap, const char *conninfo)
{
    if (!conninfo)
        return;
    spans sp;
    find_secrets(conninfo, &sp);
    /* 1. The secret values themselves, wherever the message copied them. */
    for (size_t i = 0; i < sp.n; i++) {
        size_t a = sp.at[i][0], b = sp.at[i][1];
        char *secret = aj_strndup(conninfo + a, b - a);
        if (!secret)
            continue;
        /* A quoted conninfo value: the message may quote it without the quotes. */
        size_t len = strlen(secret);
        if (len >= 2 && secret[0] == '\'' && secret[len - 1] == '\'') {
            secret[len - 1] = '\0';
            scrub_value(msg, cap, secret + 1, len - 2);
        }
        scrub_value(msg, cap, secret, strlen(secret));
        free(secret);
    }
    /* 2. The password libpq parses (however the key was spelled or quoted). */
    PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (strcmp(o->keyword, "password") == 0 && o->val && *o->val)
            scrub_value(msg, cap, o->val, strlen(o->val));
    PQconninfoFree(opts);
    /* 3. Quoted pieces of the message that libpq copied out of a secret span (libpq
     * quotes the values it complains about: invalid integer value "pw" for ...). */
    for (char *q = strchr(msg, '"'); q;) {
        char *end = strchr(q + 1, '"');
        if (!end)
            break;
        size_t qlen = (size_t)(end - q - 1);
        int secret = 0;
        if (qlen > 0) {
            for (const char *hit = conninfo; *hit && !secret; hit++) {
                if (strncmp(hit, q + 1, qlen) != 0)
                    continue;
                size_t a = (size_t)(hit - conninfo), b = a + qlen;
                for (size_t i = 0; i < sp.n; i++)
                    if (a < sp.at[i][1] && sp.at[i][0] < b)
                        secret = 1;
            }
        }
        if (secret) {
            size_t at = (size_t)(q - msg);
            replace_span(msg, cap, at + 1, at + 1 + qlen);
            if (at + 4 >= strlen(msg))
                break; /* the mark ends the text (it may have been cut) */
            end = msg + at + 4;
        }
        q = strchr(end + 1, '"');
    }
}
