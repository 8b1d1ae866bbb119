/* Unit tests for src/common/net_addr.c: IP and "ip:port" texts of socket addresses. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "check_main.h"
#include "common/net_addr.h"

static struct sockaddr_in v4(const char *ip, unsigned port)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    ck_assert_int_eq(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
    return sin;
}

static struct sockaddr_in6 v6(const char *ip, unsigned port)
{
    struct sockaddr_in6 sin6;
    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons((uint16_t)port);
    ck_assert_int_eq(inet_pton(AF_INET6, ip, &sin6.sin6_addr), 1);
    return sin6;
}

START_TEST(test_ipv4)
{
    struct sockaddr_in sin = v4("192.0.2.7", 8080);
    char ip[NET_ADDR_IP_MAX], ap[NET_ADDR_MAX];
    ck_assert_int_eq(net_addr_format((struct sockaddr *)&sin, sizeof(sin), 0, ip, sizeof(ip), ap, sizeof(ap)), 0);
    ck_assert_str_eq(ip, "192.0.2.7");
    ck_assert_str_eq(ap, "192.0.2.7:8080");
    sin = v4("255.255.255.255", 65535);
    ck_assert_int_eq(net_addr_format((struct sockaddr *)&sin, sizeof(sin), 0, NULL, 0, ap, sizeof(ap)), 0);
    ck_assert_str_eq(ap, "255.255.255.255:65535");
    sin = v4("10.0.0.1", 0);
    ck_assert_int_eq(net_addr_format((struct sockaddr *)&sin, sizeof(sin), 0, ip, sizeof(ip), NULL, 0), 0);
    ck_assert_str_eq(ip, "10.0.0.1");
    ck_assert_int_eq(net_addr_format((struct sockaddr *)&sin, sizeof(sin), 0, NULL, 0, ap, sizeof(ap)), 0);
    ck_assert_str_eq(ap, "10.0.0.1:0");
}
END_TEST

START_TEST(test_ipv6_bracketed)
{
    struct sockaddr_in6 sin6 = v6("2001:db8::1", 443);
    char ip[NET_ADDR_IP_MAX], ap[NET_ADDR_MAX];
    ck_assert_int_eq(net_addr_format((struct sockaddr *)&sin6, sizeof(sin6), NET_ADDR_UNMAP_V4, ip, sizeof(ip), ap, sizeof(ap)), 0);
    ck_assert_str_eq(ip, "2001:db8::1");
    ck_assert_str_eq(ap, "[2001:db8::1]:443");
    /* the longest text fits the documented sizes */
    sin6 = v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
    ck_assert_int_eq(net_addr_format((struct sockaddr *)&sin6, sizeof(sin6), 0, ip, sizeof(ip), ap, sizeof(ap)), 0);
    ck_assert_str_eq(ap, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
}
END_TEST

START_TEST(test_v4_mapped)
{
    struct sockaddr_in6 sin6 = v6("::ffff:127.0.0.1", 4000);
    char ip[NET_ADDR_IP_MAX], ap[NET_ADDR_MAX];
    ck_assert_int_eq(net_addr_format((struct sockaddr *)&sin6, sizeof(sin6), NET_ADDR_UNMAP_V4, ip, sizeof(ip), ap, sizeof(ap)), 0);
    ck_assert_str_eq(ip, "127.0.0.1");
    ck_assert_str_eq(ap, "127.0.0.1:4000"); /* no brackets once shown as IPv4 */
    ck_assert_int_eq(net_addr_format((struct sockaddr *)&sin6, sizeof(sin6), 0, ip, sizeof(ip), ap, sizeof(ap)), 0);
    ck_assert_str_eq(ip, "::ffff:127.0.0.1"); /* kept as the socket reports it */
    ck_assert_str_eq(ap, "[::ffff:127.0.0.1]:4000");
}
END_TEST

START_TEST(test_refusals)
{
    struct sockaddr_in sin = v4("192.0.2.7", 8080);
    char ip[NET_ADDR_IP_MAX], ap[NET_ADDR_MAX];
    memcpy(ip, "junk", 5);
    memcpy(ap, "junk", 5);
    ck_assert_int_eq(net_addr_format((struct sockaddr *)&sin, 0, 0, ip, sizeof(ip), ap, sizeof(ap)), -1); /* no peer */
    ck_assert_str_eq(ip, "");
    ck_assert_str_eq(ap, "");
    struct sockaddr un;
    memset(&un, 0, sizeof(un));
    un.sa_family = AF_UNIX;
    ck_assert_int_eq(net_addr_format(&un, sizeof(un), 0, ip, sizeof(ip), ap, sizeof(ap)), -1);
    /* too small: "" rather than a cut address */
    char small[10];
    ck_assert_int_eq(net_addr_format((struct sockaddr *)&sin, sizeof(sin), 0, small, sizeof(small), NULL, 0), 0); /* 9 + NUL fits */
    ck_assert_str_eq(small, "192.0.2.7");
    ck_assert_int_eq(net_addr_format((struct sockaddr *)&sin, sizeof(sin), 0, ip, sizeof(ip), small, sizeof(small)), -1);
    ck_assert_str_eq(small, "");
    ck_assert_str_eq(ip, "");
    /* a truncated sockaddr_in6 is refused */
    struct sockaddr_in6 sin6 = v6("2001:db8::1", 1);
    ck_assert_int_eq(net_addr_format((struct sockaddr *)&sin6, sizeof(struct sockaddr_in), 0, ip, sizeof(ip), NULL, 0), -1);
}
END_TEST

START_TEST(test_join)
{
    char out[NET_ADDR_MAX];
    ck_assert_int_eq(net_addr_join(out, sizeof(out), "1.2.3.4", 5), 0);
    ck_assert_str_eq(out, "1.2.3.4:5");
    ck_assert_int_eq(net_addr_join(out, sizeof(out), "::1", 80), 0);
    ck_assert_str_eq(out, "[::1]:80");
    char tight[10]; /* "1.2.3.4:5" is 9 + NUL */
    ck_assert_int_eq(net_addr_join(tight, sizeof(tight), "1.2.3.4", 5), 0);
    ck_assert_int_eq(net_addr_join(tight, sizeof(tight), "1.2.3.4", 55), -1);
    ck_assert_str_eq(tight, "");
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("common_net_addr");
    TCase *tc = tcase_create("net_addr");
    tcase_add_test(tc, test_ipv4);
    tcase_add_test(tc, test_ipv6_bracketed);
    tcase_add_test(tc, test_v4_mapped);
    tcase_add_test(tc, test_refusals);
    tcase_add_test(tc, test_join);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
