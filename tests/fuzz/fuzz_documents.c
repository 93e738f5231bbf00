/*
 * libFuzzer target: arbitrary bytes as an error document (aj_admin_error_parse) and as
 * a workflow document (the reader aj_admin_show uses), the way an operator's console
 * meets whatever the error_object and workflow columns hold.
 *
 * Every input must read (these readers never fail on content), without a crash, leak or
 * undefined behaviour (built with -fsanitize=fuzzer,address,undefined), and what comes
 * out must be safe to print: valid UTF-8, no NUL byte, no control character other than
 * tab and line feed (none at all in the one-line summary), a summary of bounded length,
 * at most 10 backtrace lines, and step names that are non-empty and unique. Seeds:
 * tests/fuzz/seeds/documents (Psych and JSON documents as the bindings write them).
 *
 *   tests/fuzz/run.sh runs it for a bounded number of inputs.
 */
#include "acidic_job.h"
#include "documents.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Valid UTF-8, no NUL, no C0/C1 control other than tab and line feed (`one_line`: no
 * tab or line feed either). */
static void check_text(const char *s, int one_line)
{
    if (!s)
        abort();
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s);
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        uint32_t cp;
        size_t n;
        if (c < 0x80) { cp = c; n = 1; }
        else if (c >= 0xC2 && c <= 0xDF) { cp = c & 0x1F; n = 2; }
        else if (c >= 0xE0 && c <= 0xEF) { cp = c & 0x0F; n = 3; }
        else if (c >= 0xF0 && c <= 0xF4) { cp = c & 0x07; n = 4; }
        else abort();
        if (i + n > len)
            abort();
        for (size_t k = 1; k < n; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                abort();
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            abort(); /* overlong, out of range or a surrogate */
        if ((cp < 0x20 && cp != '\t' && cp != '\n') || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F))
            abort();
        if (one_line && (cp == '\t' || cp == '\n'))
            abort();
        i += n;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size); /* called by libFuzzer */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *doc = (const char *)data;

    aj_admin_error *err = NULL;
    if (aj_admin_error_parse(&err, doc, size) != AJ_OK)
        abort(); /* only out of memory may fail, and libFuzzer's limit is far */
    if (strcmp(err->format, "yaml") && strcmp(err->format, "json") && strcmp(err->format, "text"))
        abort();
    check_text(err->summary, 1);
    if (strlen(err->summary) > AJ_DOC_SUMMARY_BYTES + 3) /* + "…" */
        abort();
    if (err->class_name)
        check_text(err->class_name, 0);
    if (err->message)
        check_text(err->message, 0);
    if (!err->class_name && !err->message)
        abort(); /* something is always shown */
    if (err->backtrace_count > AJ_DOC_BACKTRACE_LINES)
        abort();
    for (size_t i = 0; i < err->backtrace_count; i++)
        check_text(err->backtrace[i], 0);
    aj_admin_error_free(err);

    aj_arena arena = {0};
    aj_doc_workflow wf;
    if (aj_doc_workflow_read(&arena, doc, size, &wf) != AJ_OK)
        abort();
    for (size_t i = 0; i < wf.count; i++) {
        check_text(wf.steps[i].name, 0);
        if (!*wf.steps[i].name || aj_doc_workflow_find(&wf, wf.steps[i].name) != (long)i)
            abort(); /* empty, or a duplicate */
        for (size_t j = 0; j < wf.steps[i].n_awaits; j++)
            check_text(wf.steps[i].awaits[j], 0);
    }
    aj_arena_free(&arena);
    return 0;
}
