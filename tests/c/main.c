/* The C test suite. Usage: aj_tests sqlite|postgres
 *
 * Prints cmocka's report, then one line for scripts/test.sh:
 *   SUMMARY <suite> <database> <passed> <failed>
 * where <suite> is $AJ_TEST_SUITE (default "c"). PostgreSQL needs AJ_TEST_PG_URL; without
 * it the program exits 77 (skipped, for ctest). */
#include "harness.h"
#include "tests.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AJ_REGISTER_TEST(name) cmocka_unit_test_setup_teardown(name, fresh_db_setup, fresh_db_teardown),

int main(int argc, char **argv) {
    if (argc != 2 || (strcmp(argv[1], "sqlite") != 0 && strcmp(argv[1], "postgres") != 0)) {
        fprintf(stderr, "usage: %s sqlite|postgres\n", argv[0]);
        return 2;
    }
    g_db = strcmp(argv[1], "sqlite") == 0 ? DB_SQLITE : DB_POSTGRES;
    if (g_db == DB_POSTGRES && (!getenv("AJ_TEST_PG_URL") || !*getenv("AJ_TEST_PG_URL"))) {
        fprintf(stderr, "AJ_TEST_PG_URL is not set: skipping the PostgreSQL tests\n");
        return 77;
    }
    const char *suite = getenv("AJ_TEST_SUITE");
    if (!suite || !*suite) suite = "c";

    /* unbuffered, so a crash loses nothing and forked children duplicate nothing */
    setvbuf(stdout, NULL, _IONBF, 0);

    const struct CMUnitTest common[] = {AJ_TEST_LIST(AJ_REGISTER_TEST)};
    const struct CMUnitTest sqlite_only[] = {AJ_SQLITE_TEST_LIST(AJ_REGISTER_TEST)};
    const struct CMUnitTest pg_only[] = {AJ_PG_TEST_LIST(AJ_REGISTER_TEST)};
    const size_t ncommon = sizeof common / sizeof common[0];
    const struct CMUnitTest *extra = g_db == DB_SQLITE ? sqlite_only : pg_only;
    const size_t nextra = g_db == DB_SQLITE ? sizeof sqlite_only / sizeof sqlite_only[0]
                                            : sizeof pg_only / sizeof pg_only[0];
    struct CMUnitTest tests[sizeof common / sizeof common[0] + 16];
    /* AJ_TEST_FILTER=pattern (shell wildcards) runs only the matching tests */
    const char *filter = getenv("AJ_TEST_FILTER");
    size_t total = 0;
    for (size_t i = 0; i < ncommon + nextra && total < sizeof tests / sizeof tests[0]; i++) {
        const struct CMUnitTest *t = i < ncommon ? &common[i] : &extra[i - ncommon];
        if (filter && *filter && fnmatch(filter, t->name, 0) != 0) continue;
        if (strcmp(t->name, "test_pg_reconnect") == 0 &&
            (!getenv("AJ_TEST_PG_DIR") || !*getenv("AJ_TEST_PG_DIR"))) {
            /* it restarts the server through scripts/pg-server.sh, which needs its DIR */
            fprintf(stderr, "not running test_pg_reconnect: AJ_TEST_PG_DIR is not set\n");
            continue;
        }
        tests[total++] = *t;
    }
    if (total == 0) {
        fprintf(stderr, "no test matches AJ_TEST_FILTER=%s\n", filter);
        return 2;
    }
    char group[64];
    snprintf(group, sizeof group, "%s/%s", suite, argv[1]);
    int failed = _cmocka_run_group_tests(group, tests, total, harness_group_setup,
                                         harness_group_teardown);
    if (failed < 0 || (size_t)failed > total) failed = (int)total;
    printf("SUMMARY %s %s %zu %d\n", suite, argv[1], total - (size_t)failed, failed);
    return failed ? 1 : 0;
}
