/* Workflow definitions: an ordered list of uniquely named steps. */
#ifndef AJ_WORKFLOW_H
#define AJ_WORKFLOW_H

#include "acidic_job.h"

typedef struct aj_step_def {
    char *name;
    char **awaits;
    size_t n_awaits;
} aj_step_def;

struct aj_workflow {
    aj_step_def *steps;
    size_t count;
    size_t cap;
    char *json; /* aj_workflow_json's text, rebuilt by every aj_workflow_add_step */
};

/* Index of the step named `name`, or -1. */
long aj_workflow_find(const aj_workflow *wf, const char *name);

/* The step after step i, or AJ_RECOVERY_POINT_FINISHED after the last. */
const char *aj_workflow_next(const aj_workflow *wf, size_t i);

/* The workflow as 0.7.0 stores it: {"name": {"does": .., "awaits": [..], "then": ..}}.
 * Owned by the workflow: built when a step is added, so a finished definition is
 * read-only and may be shared by threads. */
const char *aj_workflow_json(const aj_workflow *wf);

#endif
