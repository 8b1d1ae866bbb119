/* Unit tests for src/server/route.c: host canonicalisation and NAME extraction. */
#include <string.h>

#include "check_main.h"
#include "server/route.h"

static int lookup(const char *authority, const char *domain, char *name)
{
    char dom[ROUTE_MAX_HOST + 1];
    ck_assert_int_gt(route_canonical_domain(domain, dom, sizeof(dom)), 0);
    return route_lookup_name(authority, strlen(authority), dom, name, ROUTE_MAX_NAME + 1, NULL, 0);
}

START_TEST(test_canonical_host)
{
    char out[ROUTE_MAX_HOST + 1];
    ck_assert_int_eq(route_canonical_host("Demo.Example.COM:8080", 21, out, sizeof(out)), 16);
    ck_assert_str_eq(out, "demo.example.com");
    ck_assert_int_eq(route_canonical_host("demo.example.com.", 17, out, sizeof(out)), 16);
    ck_assert_str_eq(out, "demo.example.com");
    ck_assert_int_eq(route_canonical_host("demo.example.com.:443", 21, out, sizeof(out)), 16);
    ck_assert_int_eq(route_canonical_host("[::1]:8080", 10, out, sizeof(out)), 5);
    ck_assert_str_eq(out, "[::1]");
    ck_assert_int_eq(route_canonical_host("[::1]", 5, out, sizeof(out)), 5);
    ck_assert_int_eq(route_canonical_host("", 0, out, sizeof(out)), ROUTE_ERR_BAD_HOST);
    ck_assert_int_eq(route_canonical_host(":80", 3, out, sizeof(out)), ROUTE_ERR_BAD_HOST);
    ck_assert_int_eq(route_canonical_host("a.b:", 4, out, sizeof(out)), ROUTE_ERR_BAD_HOST);
    ck_assert_int_eq(route_canonical_host("a.b:99999", 9, out, sizeof(out)), ROUTE_ERR_BAD_HOST);
    ck_assert_int_eq(route_canonical_host("a.b:12x", 7, out, sizeof(out)), ROUTE_ERR_BAD_HOST);
    ck_assert_int_eq(route_canonical_host("a b.c", 5, out, sizeof(out)), ROUTE_ERR_BAD_HOST);
    ck_assert_int_eq(route_canonical_host("user@a.b", 8, out, sizeof(out)), ROUTE_ERR_BAD_HOST);
    ck_assert_int_eq(route_canonical_host("[::1", 4, out, sizeof(out)), ROUTE_ERR_BAD_HOST);
    ck_assert_int_eq(route_canonical_host("a\0b", 3, out, sizeof(out)), ROUTE_ERR_BAD_HOST);
    ck_assert_int_eq(route_canonical_host("abcdef", 6, out, 4), ROUTE_ERR_BAD_HOST);
    char big[400];
    memset(big, 'a', sizeof(big));
    ck_assert_int_eq(route_canonical_host(big, sizeof(big), out, sizeof(out)), ROUTE_ERR_BAD_HOST);
}
END_TEST

START_TEST(test_extract_name)
{
    char name[ROUTE_MAX_NAME + 1];
    ck_assert_int_eq(lookup("demo.example.com", "example.com", name), 4);
    ck_assert_str_eq(name, "demo");
    ck_assert_int_eq(lookup("DEMO.Example.Com:8080", "Example.COM.", name), 4);
    ck_assert_str_eq(name, "demo");
    ck_assert_int_eq(lookup("demo.localhost:18080", "localhost", name), 4);
    ck_assert_int_eq(lookup("a-1.example.com.", "example.com", name), 3);
    ck_assert_str_eq(name, "a-1");
    ck_assert_int_eq(lookup("example.com", "example.com", name), ROUTE_ERR_NOT_DOMAIN);
    ck_assert_int_eq(lookup(".example.com", "example.com", name), ROUTE_ERR_NOT_DOMAIN);
    ck_assert_int_eq(lookup("demo.other.com", "example.com", name), ROUTE_ERR_NOT_DOMAIN);
    ck_assert_int_eq(lookup("demoexample.com", "example.com", name), ROUTE_ERR_NOT_DOMAIN);
    ck_assert_int_eq(lookup("a.b.example.com", "example.com", name), ROUTE_ERR_BAD_NAME);
    ck_assert_int_eq(lookup("-a.example.com", "example.com", name), ROUTE_ERR_BAD_NAME);
    ck_assert_int_eq(lookup("a-.example.com", "example.com", name), ROUTE_ERR_BAD_NAME);
    ck_assert_int_eq(lookup("a_b.example.com", "example.com", name), ROUTE_ERR_BAD_NAME);
    ck_assert_int_eq(lookup("[::1]:80", "example.com", name), ROUTE_ERR_NOT_DOMAIN);
    ck_assert_int_eq(lookup("", "example.com", name), ROUTE_ERR_BAD_HOST);
    char host[300];
    memset(host, 'a', 64);
    strcpy(host + 64, ".example.com");
    ck_assert_int_eq(lookup(host, "example.com", name), ROUTE_ERR_BAD_NAME);
    host[63] = '.';
    strcpy(host + 63, ".example.com");
    memset(host, 'b', 63);
    ck_assert_int_eq(lookup(host, "example.com", name), 63);
}
END_TEST

START_TEST(test_labels)
{
    char out[ROUTE_MAX_NAME + 1];
    ck_assert(route_is_label("a", 1));
    ck_assert(route_is_label("0abc-9", 6));
    ck_assert(!route_is_label("", 0));
    ck_assert(!route_is_label("-a", 2));
    ck_assert(!route_is_label("a.b", 3));
    ck_assert_int_eq(route_fold_client_id("DeMo", out, sizeof(out)), 4);
    ck_assert_str_eq(out, "demo");
    ck_assert_int_eq(route_fold_client_id("de mo", out, sizeof(out)), ROUTE_ERR_BAD_NAME);
    ck_assert_int_eq(route_fold_client_id("", out, sizeof(out)), ROUTE_ERR_BAD_NAME);
    ck_assert_int_eq(route_fold_client_id(NULL, out, sizeof(out)), ROUTE_ERR_BAD_NAME);
    char id[70];
    memset(id, 'x', 64);
    id[64] = 0;
    ck_assert_int_eq(route_fold_client_id(id, out, sizeof(out)), ROUTE_ERR_BAD_NAME);
}
END_TEST

/* absolute-form split: |t| -> expected authority and rest, or NULL authority for "not absolute" */
static void check_absolute(const char *t, const char *auth, const char *rest)
{
    size_t ao = 99, al = 99, ro = 99;
    int rv = route_absolute_form(t, strlen(t), &ao, &al, &ro);
    if (auth == NULL) {
        ck_assert_msg(rv == 0, "%s: taken as absolute-form", t);
        ck_assert(ao == 99 && al == 99 && ro == 99); /* outputs untouched */
        return;
    }
    ck_assert_msg(rv == 1, "%s: not taken as absolute-form", t);
    ck_assert_int_eq(al, strlen(auth));
    ck_assert(memcmp(t + ao, auth, al) == 0);
    ck_assert_str_eq(t + ro, rest);
}

START_TEST(test_absolute_form)
{
    check_absolute("http://a.example.com/x?y=1", "a.example.com", "/x?y=1");
    check_absolute("HTTPS://A.example.com:8443", "A.example.com:8443", "");
    check_absolute("http://a.example.com?q", "a.example.com", "?q");
    check_absolute("http://[::1]:80/p", "[::1]:80", "/p");
    check_absolute("svn+ssh://h/p", "h", "/p");
    check_absolute("/origin/form", NULL, NULL);
    check_absolute("*", NULL, NULL);
    check_absolute("", NULL, NULL);
    check_absolute("http:///no-authority", "", "/no-authority");
    check_absolute("http://", "", "");
    check_absolute("http://h#frag", "h", "#frag");
    check_absolute("http:/x", NULL, NULL);
    check_absolute("1http://h/", NULL, NULL);
    check_absolute("ht tp://h/", NULL, NULL);
    ck_assert_int_eq(route_absolute_form(NULL, 0, NULL, NULL, NULL), 0);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("server_route");
    TCase *tc = tcase_create("route");
    tcase_add_test(tc, test_canonical_host);
    tcase_add_test(tc, test_extract_name);
    tcase_add_test(tc, test_labels);
    tcase_add_test(tc, test_absolute_form);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
