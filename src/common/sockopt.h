/*
 * tunnelmux — TCP socket options the daemons set, in one place (issue 17 §4). Each takes a socket
 * descriptor the caller owns and keeps; nothing here closes, reads or writes it.
 */
#ifndef TUNNELMUX_COMMON_SOCKOPT_H
#define TUNNELMUX_COMMON_SOCKOPT_H

#include <stdint.h>

/* Turns Nagle's algorithm off (TCP_NODELAY) on |fd|: small frames and request heads leave at once.
 * Returns 0, or -errno (strerror() gives the reason: not a TCP socket, bad descriptor, ...). */
int sockopt_set_nodelay(int fd);

/* Sets TCP_NOTSENT_LOWAT to |bytes| on |fd|: the kernel keeps at most about that many unsent bytes
 * and reports the socket writable below it, so little waits below the sender's own scheduler
 * (PROTOCOL.md §6.4). |bytes| 0 leaves the kernel's default and returns 0; more than INT_MAX is
 * -EINVAL. Returns 0 or -errno. */
int sockopt_set_notsent_lowat(int fd, uint64_t bytes);

#endif
