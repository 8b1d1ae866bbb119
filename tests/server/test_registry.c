/* Unit tests for src/server/registry.c: NAME -> tunnel, conflicts, MAX_CLIENTS, known names. */
#include <stdio.h>

#include "check_main.h"
#include "server/registry.h"

START_TEST(test_add_find_remove)
{
    registry r;
    int a, b, known = -1;
    registry_init(&r);
    ck_assert_ptr_null(registry_find(&r, "demo", &known));
    ck_assert_int_eq(known, 0);
    ck_assert_int_eq(registry_add(&r, "demo", &a, 10), REGISTRY_OK);
    ck_assert_ptr_eq(registry_find(&r, "demo", &known), &a);
    ck_assert_int_eq(known, 1);
    ck_assert_int_eq(registry_add(&r, "demo", &b, 10), REGISTRY_TAKEN);
    ck_assert_int_eq(registry_remove(&r, "demo", &b), 0); /* not the holder */
    ck_assert_ptr_eq(registry_find(&r, "demo", NULL), &a);
    ck_assert_int_eq(registry_remove(&r, "demo", &a), 1);
    ck_assert_ptr_null(registry_find(&r, "demo", &known));
    ck_assert_int_eq(known, 1); /* 502 rather than 404 */
    ck_assert_int_eq(registry_add(&r, "demo", &b, 10), REGISTRY_OK);
    ck_assert_ptr_eq(registry_find(&r, "demo", NULL), &b);
    ck_assert_int_eq(r.nlive, 1);
    ck_assert_int_eq(r.nknown, 1);
    registry_free(&r);
}
END_TEST

START_TEST(test_max_clients)
{
    registry r;
    int v[5];
    char name[16];
    registry_init(&r);
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof(name), "c%d", i);
        ck_assert_int_eq(registry_add(&r, name, &v[i], 3), REGISTRY_OK);
    }
    ck_assert_int_eq(registry_add(&r, "c3", &v[3], 3), REGISTRY_FULL);
    ck_assert_int_eq(registry_add(&r, "c0", &v[3], 3), REGISTRY_TAKEN);
    ck_assert_int_eq(registry_remove(&r, "c1", &v[1]), 1);
    ck_assert_int_eq(registry_add(&r, "c3", &v[3], 3), REGISTRY_OK);
    ck_assert_int_eq(registry_add(&r, "", &v[4], 3), REGISTRY_NOMEM);
    registry_free(&r);
}
END_TEST

START_TEST(test_many)
{
    registry r;
    static int v[3000];
    char name[16];
    registry_init(&r);
    for (int i = 0; i < 3000; i++) {
        snprintf(name, sizeof(name), "n%d", i);
        ck_assert_int_eq(registry_add(&r, name, &v[i], 5000), REGISTRY_OK);
    }
    for (int i = 0; i < 3000; i++) {
        snprintf(name, sizeof(name), "n%d", i);
        ck_assert_ptr_eq(registry_find(&r, name, NULL), &v[i]);
    }
    registry_free(&r);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("server_registry");
    TCase *tc = tcase_create("registry");
    tcase_add_test(tc, test_add_find_remove);
    tcase_add_test(tc, test_max_clients);
    tcase_add_test(tc, test_many);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
