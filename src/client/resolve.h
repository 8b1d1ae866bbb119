/*
 * tunnelmux client — the addresses of LOCAL_HOST. The local service is dialled at each address
 * of LOCAL_HOST in turn (getaddrinfo order, IPv6 and IPv4), so "localhost" reaches a service that
 * listens on 127.0.0.1 only even where localhost resolves to ::1 first. The address that last
 * answered is tried first next time.
 */
#ifndef TM_CLIENT_RESOLVE_H
#define TM_CLIENT_RESOLVE_H

#include <stdint.h>

#define LOCAL_ADDR_MAX 8

typedef struct {
    char text[64]; /* numeric address, no brackets ("127.0.0.1", "::1") */
    int family;    /* AF_INET or AF_INET6 */
} local_addr;

typedef struct {
    local_addr a[LOCAL_ADDR_MAX];
    int n;               /* number of addresses (0: not resolved yet) */
    int pref;            /* index tried first */
    int64_t resolved_ms; /* when (client_now_ms) the list was made */
} local_addrs;

/*
 * Resolves |host| (a name or a numeric IPv4/IPv6 address, IPv6 without brackets) into |out|:
 * every distinct TCP address in getaddrinfo order, at most LOCAL_ADDR_MAX, pref reset to 0.
 * Blocking (getaddrinfo); LOCAL_HOST is a loopback name or an address in practice.
 * Returns the number of addresses (> 0), or MUX_ERR_INVALID_ARGUMENT with |*reason| set (static
 * string from gai_strerror or ours) when nothing usable was found; |out| is then emptied.
 */
int local_addrs_resolve(local_addrs *out, const char *host, const char **reason);

/*
 * The address to use for the |attempt|-th try (0 first) of one connection: the preferred one,
 * then the others in order. NULL once every address was tried (attempt >= n).
 */
const local_addr *local_addrs_pick(const local_addrs *l, int attempt);

/* Remembers that the |attempt|-th pick answered: it is tried first from now on. */
void local_addrs_prefer(local_addrs *l, int attempt);

#endif
