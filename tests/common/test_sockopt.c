/*
 * tunnelmux — tests for src/common/sockopt.c: the options really reach a TCP socket (read back
 * with getsockopt), zero leaves TCP_NOTSENT_LOWAT alone, and bad descriptors or values are errors.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check_main.h"
#include "common/sockopt.h"

static int tcp_socket(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    return fd;
}

static int get_int(int fd, int name)
{
    int v = -1;
    socklen_t len = sizeof(v);
    ck_assert_int_eq(getsockopt(fd, IPPROTO_TCP, name, &v, &len), 0);
    return v;
}

START_TEST(test_nodelay)
{
    int fd = tcp_socket();
    ck_assert_int_eq(get_int(fd, TCP_NODELAY), 0);
    ck_assert_int_eq(sockopt_set_nodelay(fd), 0);
    ck_assert_int_ne(get_int(fd, TCP_NODELAY), 0);
    close(fd);
}
END_TEST

START_TEST(test_notsent_lowat)
{
    int fd = tcp_socket();
    int before = get_int(fd, TCP_NOTSENT_LOWAT);
    ck_assert_int_eq(sockopt_set_notsent_lowat(fd, 0), 0); /* 0: the kernel's default stays */
    ck_assert_int_eq(get_int(fd, TCP_NOTSENT_LOWAT), before);
    ck_assert_int_eq(sockopt_set_notsent_lowat(fd, 131072), 0);
    ck_assert_int_eq(get_int(fd, TCP_NOTSENT_LOWAT), 131072);
    ck_assert_int_eq(sockopt_set_notsent_lowat(fd, (uint64_t)1 << 40), -EINVAL);
    ck_assert_int_eq(get_int(fd, TCP_NOTSENT_LOWAT), 131072);
    close(fd);
}
END_TEST

START_TEST(test_bad_descriptors)
{
    ck_assert_int_eq(sockopt_set_nodelay(-1), -EBADF);
    ck_assert_int_eq(sockopt_set_notsent_lowat(-1, 4096), -EBADF);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0); /* not TCP: the kernel refuses */
    ck_assert_int_lt(sockopt_set_nodelay(sv[0]), 0);
    ck_assert_int_lt(sockopt_set_notsent_lowat(sv[0], 4096), 0);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("sockopt");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_nodelay);
    tcase_add_test(tc, test_notsent_lowat);
    tcase_add_test(tc, test_bad_descriptors);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
