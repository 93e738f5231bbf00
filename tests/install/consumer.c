/* A program built against the installed acidic_job (tests/install/run.sh): it opens a
 * SQLite store, which creates the acidic_job tables, and defines a workflow. */
#include <acidic_job.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DATABASE_FILE\n", argv[0]);
        return 2;
    }
    char url[1024];
    snprintf(url, sizeof url, "sqlite:%s", argv[1]);
    aj_store *store = NULL;
    aj_workflow *wf = NULL;
    int rc = aj_store_open(&store, url, NULL);
    if (rc == AJ_OK)
        rc = aj_workflow_new(&wf);
    if (rc == AJ_OK)
        rc = aj_workflow_add_step(wf, "create_ride_and_audit_record", NULL, 0);
    if (rc == AJ_OK)
        printf("acidic_job %s: %s store, %zu step\n", AJ_VERSION, aj_store_driver(store),
               aj_workflow_count(wf));
    else
        fprintf(stderr, "%s: %s\n", aj_code_name(rc), aj_error_last()->message);
    aj_workflow_free(wf);
    aj_store_free(store);
    return rc == AJ_OK ? 0 : 1;
}
