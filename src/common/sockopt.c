/*
 * tunnelmux — TCP socket options (see sockopt.h).
 */
#include "sockopt.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

int sockopt_set_nodelay(int fd)
{
    int one = 1;
    if (fd < 0)
        return -EBADF;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0 ? 0 : -errno;
}

int sockopt_set_notsent_lowat(int fd, uint64_t bytes)
{
    if (bytes == 0)
        return 0;
    if (bytes > INT_MAX)
        return -EINVAL;
    if (fd < 0)
        return -EBADF;
    int v = (int)bytes;
    return setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v, sizeof(v)) == 0 ? 0 : -errno;
}
