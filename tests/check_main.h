/*
 * tunnelmux — shared main() for check suites: each tests/<dir>/test_<module>.c defines
 * `Suite *make_suite(void)` and ends with TM_CHECK_MAIN(make_suite). Exit status is non-zero when
 * any test failed; check prints its "N%: Checks: N, Failures: N, Errors: N" summary line.
 */
#ifndef TM_CHECK_MAIN_H
#define TM_CHECK_MAIN_H

#include <check.h>
#include <stdlib.h>

#define TM_CHECK_MAIN(make_suite)                                                                                                  \
    int main(void)                                                                                                                 \
    {                                                                                                                              \
        /* check's default per-test timeout is 4 s: a busy machine (ctest -j2 beside builds) can                                   \
         * exceed it; a test that sets its own timeout keeps it. An env value from the caller wins.  */                            \
        setenv("CK_DEFAULT_TIMEOUT", "300", 0);                                                                                    \
        SRunner *sr = srunner_create(make_suite());                                                                                \
        srunner_run_all(sr, CK_NORMAL);                                                                                            \
        int failed = srunner_ntests_failed(sr);                                                                                    \
        srunner_free(sr);                                                                                                          \
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;                                                                          \
    }

#endif
