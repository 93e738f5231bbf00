#include "workflow.h"
#include "error.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int aj_workflow_new(aj_workflow **out)
{
    if (!out)
        return aj_error_set(AJ_EINVALID, "aj_workflow_new: out is NULL");
    aj_workflow *wf = calloc(1, sizeof *wf);
    if (!wf)
        return aj_error_set(AJ_ENOMEM, "out of memory");
    *out = wf;
    return AJ_OK;
}

long aj_workflow_find(const aj_workflow *wf, const char *name)
{
    for (size_t i = 0; i < wf->count; i++)
        if (strcmp(wf->steps[i].name, name) == 0)
            return (long)i;
    return -1;
}

static void step_def_free(aj_step_def *s)
{
    for (size_t j = 0; j < s->n_awaits; j++)
        free(s->awaits[j]);
    free(s->awaits);
    free(s->name);
}

static int build_json(const aj_workflow *wf, char **out);

int aj_workflow_add_step(aj_workflow *wf, const char *name, const char *const *awaits,
                         size_t n_awaits)
{
    int rc;
    if (!wf)
        return aj_error_set(AJ_EINVALID, "aj_workflow_add_step: workflow is NULL");
    if ((rc = aj_check_name(name, "step name")))
        return rc;
    if (strcmp(name, AJ_RECOVERY_POINT_FINISHED) == 0)
        return aj_error_set(AJ_EINVALID, "\"%s\" is reserved: it marks a finished run",
                            AJ_RECOVERY_POINT_FINISHED);
    if (aj_workflow_find(wf, name) >= 0)
        return aj_error_set(AJ_EDUPLICATE_STEP,
                            "the workflow already has a step named \"%s\"; step names must be unique",
                            name);
    if (n_awaits && !awaits)
        return aj_error_set(AJ_EINVALID, "step \"%s\": awaits is NULL", name);
    for (size_t j = 0; j < n_awaits; j++)
        if ((rc = aj_check_name(awaits[j], "awaited job name")))
            return rc;

    if (wf->count == wf->cap) {
        size_t cap = wf->cap ? wf->cap * 2 : 8;
        aj_step_def *grown = realloc(wf->steps, cap * sizeof *grown);
        if (!grown)
            return aj_error_set(AJ_ENOMEM, "out of memory");
        wf->steps = grown;
        wf->cap = cap;
    }
    aj_step_def s = {0};
    s.name = aj_strdup(name);
    s.awaits = n_awaits ? calloc(n_awaits, sizeof *s.awaits) : NULL;
    if (!s.name || (n_awaits && !s.awaits))
        goto oom;
    for (size_t j = 0; j < n_awaits; j++) {
        if (!(s.awaits[j] = aj_strdup(awaits[j])))
            goto oom;
        s.n_awaits = j + 1;
    }
    wf->steps[wf->count++] = s;
    char *json = NULL;
    if (build_json(wf, &json)) {
        wf->count--;
        goto oom;
    }
    free(wf->json);
    wf->json = json;
    return AJ_OK;
oom:
    step_def_free(&s);
    return aj_error_set(AJ_ENOMEM, "out of memory");
}

size_t aj_workflow_count(const aj_workflow *wf) { return wf ? wf->count : 0; }

const char *aj_workflow_step(const aj_workflow *wf, size_t i)
{
    return wf && i < wf->count ? wf->steps[i].name : NULL;
}

size_t aj_workflow_awaits_count(const aj_workflow *wf, size_t i)
{
    return wf && i < wf->count ? wf->steps[i].n_awaits : 0;
}

const char *aj_workflow_await(const aj_workflow *wf, size_t i, size_t j)
{
    if (!wf || i >= wf->count || j >= wf->steps[i].n_awaits)
        return NULL;
    return wf->steps[i].awaits[j];
}

const char *aj_workflow_next(const aj_workflow *wf, size_t i)
{
    return i + 1 < wf->count ? wf->steps[i + 1].name : AJ_RECOVERY_POINT_FINISHED;
}

void aj_workflow_free(aj_workflow *wf)
{
    if (!wf)
        return;
    for (size_t i = 0; i < wf->count; i++)
        step_def_free(&wf->steps[i]);
    free(wf->steps);
    free(wf->json);
    free(wf);
}

/* --- JSON ------------------------------------------------------------------ */

const char *aj_workflow_json(const aj_workflow *wf) { return wf->json ? wf->json : "{}"; }

static int build_json(const aj_workflow *wf, char **out)
{
    aj_buf b = {0};
    aj_buf_puts(&b, "{");
    for (size_t i = 0; i < wf->count; i++) {
        const aj_step_def *s = &wf->steps[i];
        if (i)
            aj_buf_puts(&b, ", ");
        aj_buf_json(&b, s->name);
        aj_buf_puts(&b, ": {\"does\": ");
        aj_buf_json(&b, s->name);
        aj_buf_puts(&b, ", \"awaits\": [");
        for (size_t j = 0; j < s->n_awaits; j++) {
            if (j)
                aj_buf_puts(&b, ", ");
            aj_buf_json(&b, s->awaits[j]);
        }
        aj_buf_puts(&b, "], \"then\": ");
        aj_buf_json(&b, aj_workflow_next(wf, i));
        aj_buf_puts(&b, "}");
    }
    aj_buf_puts(&b, "}");
    return aj_buf_take(&b, out);
}
