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

/* Redact "scheme://user:PASSWORD@host" and "password=VALUE" (conninfo, or a URI query
 * parameter). Anything else is copied as is. */
void aj_redact_url(const char *url, char *out, size_t outsz)
{
    if (!outsz)
        return;
    size_t o = 0;
    const char *s = url ? url : "";
    const char *scheme_end = strstr(s, "://");
    const char *at = scheme_end ? strchr(scheme_end + 3, '@') : NULL;
    const char *colon = NULL;
    if (at) {
        for (const char *p = scheme_end + 3; p < at; p++)
            if (*p == ':') { colon = p; break; }
    }
#define PUT(c) do { if (o + 1 < outsz) out[o++] = (c); } while (0)
    for (const char *p = s; *p;) {
        if (colon && p == colon + 1) {
            for (const char *r = "***"; *r; r++) PUT(*r);
            p = at;
            continue;
        }
        if (strncmp(p, "password=", 9) == 0 && (p == s || p[-1] == ' ' || p[-1] == '?' ||
                                                p[-1] == '&' || p[-1] == '\t')) {
            for (const char *r = "password=***"; *r; r++) PUT(*r);
            p += 9;
            if (*p == '\'') {
                p++;
                while (*p && *p != '\'') { if (*p == '\\' && p[1]) p++; p++; }
                if (*p) p++;
            } else {
                while (*p && *p != ' ' && *p != '&' && *p != '\t') p++;
            }
            continue;
        }
        PUT(*p);
        p++;
    }
#undef PUT
    out[o] = '\0';
}
