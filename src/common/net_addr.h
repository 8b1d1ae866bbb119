/*
 * tunnelmux — peer-address formatting shared by the server (public peers, tunnel peers, throttle
 * keys, logs) and, later, the client: one numeric IP text and one "ip:port" / "[v6]:port" text.
 *
 * Pure (C library and inet_ntop only, no allocation, no printf on the per-request path). Nothing
 * here keeps or takes ownership of its arguments; output buffers are the caller's.
 */
#ifndef TM_COMMON_NET_ADDR_H
#define TM_COMMON_NET_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

#define NET_ADDR_IP_MAX 46                 /* INET6_ADDRSTRLEN: an IP text and its NUL */
#define NET_ADDR_MAX (NET_ADDR_IP_MAX + 8) /* "[" IP "]:" 5 digits and the NUL */
#define NET_ADDR_UNMAP_V4 0x1u             /* show an IPv4-mapped IPv6 address (::ffff:a.b.c.d) as a.b.c.d */

/*
 * Formats the socket address |sa| (|len| bytes as getpeername returned it; AF_INET or AF_INET6)
 * into |ip| (the numeric address) and |ip_port| ("ip:port", or "[ip]:port" for IPv6); either may
 * be NULL. Returns 0, or -1 when |len| is 0, the family is neither, or a buffer is too small; on
 * -1 the given buffers hold "".
 */
int net_addr_format(const struct sockaddr *sa, socklen_t len, unsigned flags, char *ip, size_t ipcap, char *ip_port,
                    size_t ip_port_cap);

/* |out| = "ip:port", or "[ip]:port" when |ip| contains ':' (IPv6). Returns 0, or -1 with |out| ""
 * when it does not fit. */
int net_addr_join(char *out, size_t cap, const char *ip, unsigned port);

#endif
