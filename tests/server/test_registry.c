/* Unit tests for src/server/registry.c: NAME -> tunnel, conflicts, MAX_CLIENTS, known names. */
#include <stdio.h>

#include "check_main.h"
#include "server/registry.h"

static const uint8_t CRED_A[REGISTRY_CREDENTIAL_LEN] = {1};
static const uint8_t CRED_B[REGISTRY_CREDENTIAL_LEN] = {2};

START_TEST(test_add_find_remove)
{
    registry r;
    int a, b, known = -1;
    registry_init(&r);
    ck_assert_ptr_null(registry_find(&r, "demo", &known));
    ck_assert_int_eq(known, 0);
    ck_assert_int_eq(registry_add(&r, "demo", &a, CRED_A, 10, 8), REGISTRY_OK);
    ck_assert_ptr_eq(registry_find(&r, "demo", &known), &a);
    ck_assert_int_eq(known, 1);
    ck_assert_int_eq(registry_add(&r, "demo", &b, CRED_B, 10, 8), REGISTRY_TAKEN);
    ck_assert_int_eq(registry_remove(&r, "demo", &b), 0); /* not the holder */
    ck_assert_ptr_eq(registry_find(&r, "demo", NULL), &a);
    ck_assert_int_eq(registry_remove(&r, "demo", &a), 1);
    ck_assert_ptr_null(registry_find(&r, "demo", &known));
    ck_assert_int_eq(known, 1); /* 502 rather than 404 */
    ck_assert_int_eq(registry_add(&r, "demo", &b, CRED_A, 10, 8), REGISTRY_OK);
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
        ck_assert_int_eq(registry_add(&r, name, &v[i], CRED_A, 3, 8), REGISTRY_OK);
    }
    ck_assert_int_eq(registry_add(&r, "c3", &v[3], CRED_A, 3, 8), REGISTRY_FULL);
    ck_assert_int_eq(registry_add(&r, "c0", &v[3], CRED_B, 3, 8), REGISTRY_TAKEN);
    ck_assert_int_eq(registry_remove(&r, "c1", &v[1]), 1);
    ck_assert_int_eq(registry_add(&r, "c3", &v[3], CRED_A, 3, 8), REGISTRY_OK);
    ck_assert_int_eq(registry_add(&r, "", &v[4], CRED_A, 3, 8), REGISTRY_NOMEM);
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
        ck_assert_int_eq(registry_add(&r, name, &v[i], CRED_A, 5000, 8), REGISTRY_OK);
    }
    for (int i = 0; i < 3000; i++) {
        snprintf(name, sizeof(name), "n%d", i);
        ck_assert_ptr_eq(registry_find(&r, name, NULL), &v[i]);
    }
    registry_free(&r);
}
END_TEST

/* load callback for registry_pick: the int the value points at; < 0 = unusable */
static long int_load(void *value, void *ctx)
{
    (void)ctx;
    return *(int *)value;
}

START_TEST(test_replicas)
{
    registry r;
    int a = 0, b = 0, c = 0, d = 0, known = -1;
    void *const *vals;
    registry_init(&r);
    ck_assert_int_eq(registry_add(&r, "app", &a, CRED_A, 100, 3), REGISTRY_OK);
    ck_assert_int_eq(registry_add(&r, "app", &b, CRED_A, 100, 3), REGISTRY_OK);
    ck_assert_int_eq(registry_add(&r, "app", &b, CRED_A, 100, 3), REGISTRY_OK); /* idempotent */
    ck_assert_uint_eq(registry_replicas(&r, "app", &vals, &known), 2);
    ck_assert_int_eq(known, 1);
    /* another credential cannot join, even with room */
    ck_assert_int_eq(registry_add(&r, "app", &c, CRED_B, 100, 3), REGISTRY_TAKEN);
    ck_assert_int_eq(registry_add(&r, "app", &c, CRED_A, 100, 3), REGISTRY_OK);
    ck_assert_int_eq(registry_add(&r, "app", &d, CRED_A, 100, 3), REGISTRY_REPLICAS_FULL);
    ck_assert_uint_eq(r.nlive, 3);
    /* MAX_CLIENTS counts tunnels */
    ck_assert_int_eq(registry_add(&r, "other", &d, CRED_B, 3, 3), REGISTRY_FULL);
    /* removal keeps the others; the last one leaves the name known and free for any credential */
    ck_assert_int_eq(registry_remove(&r, "app", &b), 1);
    ck_assert_int_eq(registry_remove(&r, "app", &b), 0);
    ck_assert_uint_eq(registry_replicas(&r, "app", &vals, NULL), 2);
    ck_assert_ptr_eq(vals[0], &a);
    ck_assert_ptr_eq(vals[1], &c);
    ck_assert_int_eq(registry_remove(&r, "app", &a), 1);
    ck_assert_int_eq(registry_remove(&r, "app", &c), 1);
    ck_assert_ptr_null(registry_find(&r, "app", &known));
    ck_assert_int_eq(known, 1);
    ck_assert_int_eq(registry_add(&r, "app", &d, CRED_B, 100, 3), REGISTRY_OK);
    ck_assert_ptr_eq(registry_find(&r, "app", NULL), &d);
    ck_assert_uint_eq(r.nlive, 1);
    registry_free(&r);
}
END_TEST

START_TEST(test_pick)
{
    registry r;
    int v[3] = {0, 0, 0}, known = -1, seen[3] = {0, 0, 0};
    registry_init(&r);
    ck_assert_ptr_null(registry_pick(&r, "p", int_load, NULL, &known));
    ck_assert_int_eq(known, 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(registry_add(&r, "p", &v[i], CRED_A, 100, 8), REGISTRY_OK);
    /* equal loads: round robin, every replica in turn */
    for (int k = 0; k < 6; k++) {
        int *p = registry_pick(&r, "p", int_load, NULL, NULL);
        ck_assert_ptr_nonnull(p);
        seen[p - v]++;
    }
    ck_assert_int_eq(seen[0], 2);
    ck_assert_int_eq(seen[1], 2);
    ck_assert_int_eq(seen[2], 2);
    /* fewest open streams first */
    v[0] = 5, v[1] = 1, v[2] = 3;
    for (int k = 0; k < 4; k++)
        ck_assert_ptr_eq(registry_pick(&r, "p", int_load, NULL, NULL), &v[1]);
    /* unusable replicas (GOAWAY, closing) are never picked, even when idle */
    v[1] = -1;
    v[2] = 9;
    ck_assert_ptr_eq(registry_pick(&r, "p", int_load, NULL, NULL), &v[0]);
    v[0] = -1;
    ck_assert_ptr_eq(registry_pick(&r, "p", int_load, NULL, NULL), &v[2]);
    v[2] = -1;
    ck_assert_ptr_null(registry_pick(&r, "p", int_load, NULL, &known));
    ck_assert_int_eq(known, 1);
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
    tcase_add_test(tc, test_replicas);
    tcase_add_test(tc, test_pick);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
