/* tunnelmux server — public connection progress (see sockprogress.h). */
#include "server/sockprogress.h"

#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

#include <linux/tcp.h> /* struct tcp_info with tcpi_bytes_acked (glibc's copy lacks it) */

#ifndef SOL_TCP
#define SOL_TCP 6
#endif

int sockprogress_acked(int fd, uint64_t *acked)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    memset(&ti, 0, sizeof(ti));
    if (fd < 0 || getsockopt(fd, SOL_TCP, TCP_INFO, &ti, &len) != 0)
        return -1;
    if (len < offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof(ti.tcpi_bytes_acked))
        return -1; /* a kernel before 4.1 */
    *acked = ti.tcpi_bytes_acked;
    return 0;
}

void sockprogress_abort(int fd)
{
    if (fd < 0)
        return;
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)); /* the close that follows sends RST */
    shutdown(fd, SHUT_RDWR);                                /* h2o's pending write fails at once (the socket polls writable) */
}
