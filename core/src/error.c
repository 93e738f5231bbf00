#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define AJ_ERROR_MESSAGE_MAX 1024

static _Thread_local char last_message[AJ_ERROR_MESSAGE_MAX] = "no error";
static _Thread_local aj_error last_error = {AJ_OK, NULL};

const aj_error *aj_error_last(void)
{
    last_error.message = last_message;
    return &last_error;
}

void aj_error_clear(void)
{
    last_error.code = AJ_OK;
    strcpy(last_message, "no error");
}

int aj_error_set(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_message, sizeof last_message, fmt, ap);
    va_end(ap);
    last_error.code = code;
    return code;
}

void aj_error_save(aj_saved_error *saved)
{
    saved->code = last_error.code;
    snprintf(saved->message, sizeof saved->message, "%s", last_message);
}

int aj_error_restore(const aj_saved_error *saved)
{
    return aj_error_set(saved->code, "%s", saved->message);
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
    default: return "AJ_UNKNOWN_CODE";
    }
}

/* Redact "scheme://user:PASSWORD@host" and "password = VALUE" (conninfo, with any
 * spacing and quoting libpq accepts, or a URI query parameter). Anything else is
 * copied as is. */
static const char *skip_spaces(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

/* At p (a keyword boundary): "password", spaces, "=", spaces, then the value. Returns
 * where the value ends, or NULL when p does not start a password setting. */
static const char *password_value_end(const char *p)
{
    if (strncmp(p, "password", 8) != 0)
        return NULL;
    const char *q = skip_spaces(p + 8);
    if (*q != '=')
        return NULL;
    q = skip_spaces(q + 1);
    if (*q == '\'') {
        for (q++; *q && *q != '\''; q++)
            if (*q == '\\' && q[1])
                q++;
        return *q ? q + 1 : q;
    }
    while (*q && *q != ' ' && *q != '&' && *q != '\t' && *q != '\n' && *q != '\r')
        q++;
    return q;
}

void aj_redact_url(const char *url, char *out, size_t outsz)
{
    if (!outsz)
        return;
    size_t o = 0;
    const char *s = url ? url : "";
    const char *scheme_end = strstr(s, "://");
    const char *at = NULL, *colon = NULL;
    if (scheme_end) {
        /* userinfo ends at the last '@' before the path */
        const char *auth_end = scheme_end + 3 + strcspn(scheme_end + 3, "/?#");
        for (const char *p = scheme_end + 3; p < auth_end; p++)
            if (*p == '@')
                at = p;
        for (const char *p = scheme_end + 3; at && p < at; p++)
            if (*p == ':') { colon = p; break; }
    }
#define PUT(c) do { if (o + 1 < outsz) out[o++] = (c); } while (0)
    for (const char *p = s; *p;) {
        if (colon && p == colon + 1) {
            for (const char *r = "***"; *r; r++) PUT(*r);
            p = at;
            colon = NULL; /* once: an empty password has at == colon + 1 */
            continue;
        }
        int boundary = p == s || p[-1] == ' ' || p[-1] == '?' || p[-1] == '&' ||
                       p[-1] == '\t' || p[-1] == '\n' || p[-1] == '\r';
        const char *end = boundary ? password_value_end(p) : NULL;
        if (end) {
            for (const char *r = "password=***"; *r; r++) PUT(*r);
            p = end;
            continue;
        }
        PUT(*p);
        p++;
    }
#undef PUT
    out[o] = '\0';
}
