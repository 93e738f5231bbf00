/*
 * Reading the documents other layers wrote, as text, never instantiating anything
 * (decision 013): error documents (Ruby: YAML of the exception, `--- !ruby/exception:
 * Stripe::CardError`; Python and the core: JSON {"class": ..., "message": ...}) and
 * workflow documents (the core's JSON, acidic_job 0.7.0's YAML).
 *
 * A small reader of the YAML that Psych (Ruby) emits and of JSON (YAML's flow form)
 * builds a tree of scalars, mappings and sequences. It never fails: on input it cannot
 * read (malformed, truncated, nested too deeply) it keeps what it read so far, so a
 * truncated error document still yields its class and message. Every string it hands
 * out is valid UTF-8 without NUL bytes or control characters other than tab and line
 * feed: invalid sequences and those characters become U+FFFD.
 */
#ifndef AJ_DOCUMENTS_H
#define AJ_DOCUMENTS_H

#include "acidic_job.h"
#include "util.h"

#include <stddef.h>

/* How many backtrace lines an error keeps. */
#define AJ_DOC_BACKTRACE_LINES 10
/* The longest one-line summary, in bytes, before "…" is appended. */
#define AJ_DOC_SUMMARY_BYTES 300

/* Read an error document into *out (caller frees with aj_admin_error_free). 0 or
 * AJ_ENOMEM. Never fails on the document's content: what it cannot read becomes the
 * message, as text (format "text"). */
int aj_doc_error(const char *doc, size_t len, aj_admin_error **out);

/* One step of a recorded workflow. */
typedef struct aj_doc_step {
    const char *name;
    const char *const *awaits;
    size_t n_awaits;
} aj_doc_step;

typedef struct aj_doc_workflow {
    const aj_doc_step *steps; /* in the order the document lists them */
    size_t count;
} aj_doc_workflow;

/* Read a workflow document ({"step": {"does": ..., "awaits": [...], "then": ...}, ...},
 * JSON or YAML, with string or Ruby symbol keys) into `arena`. A document that is not
 * such a mapping gives no steps. 0 or AJ_ENOMEM. */
int aj_doc_workflow_read(aj_arena *arena, const char *doc, size_t len, aj_doc_workflow *out);
/* The index of step `name`, or -1. */
long aj_doc_workflow_find(const aj_doc_workflow *wf, const char *name);

/* A copy of `text` on one line, in `arena`: every run of white space (line breaks
 * included) becomes one space, leading and trailing space is dropped, and text longer
 * than AJ_DOC_SUMMARY_BYTES is cut at a character boundary and ends in "…". NULL when
 * out of memory. `text` must already be clean (see above). */
char *aj_doc_one_line(aj_arena *arena, const char *text);

/* A copy of (s, len) in `arena` that is valid UTF-8 with U+FFFD in place of invalid
 * sequences, NUL bytes and control characters other than tab and line feed (CR LF
 * becomes LF). NULL when out of memory. */
char *aj_doc_clean(aj_arena *arena, const char *s, size_t len);

#endif
