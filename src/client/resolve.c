/*
 * tunnelmux client — the addresses of LOCAL_HOST (see resolve.h).
 */
#include "resolve.h"

#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "mux/err.h"

int local_addrs_resolve(local_addrs *out, const char *host, const char **reason)
{
    out->n = 0;
    out->pref = 0;
    if (host == NULL || host[0] == '\0') {
        *reason = "empty host name";
        return MUX_ERR_INVALID_ARGUMENT;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0) {
        *reason = gai_strerror(rc);
        return MUX_ERR_INVALID_ARGUMENT;
    }
    for (struct addrinfo *ai = res; ai != NULL && out->n < LOCAL_ADDR_MAX; ai = ai->ai_next) {
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        local_addr a;
        a.family = ai->ai_family;
        if (getnameinfo(ai->ai_addr, ai->ai_addrlen, a.text, sizeof(a.text), NULL, 0, NI_NUMERICHOST) != 0)
            continue;
        int dup = 0;
        for (int i = 0; i < out->n && !dup; i++)
            dup = strcmp(out->a[i].text, a.text) == 0;
        if (!dup)
            out->a[out->n++] = a;
    }
    freeaddrinfo(res);
    if (out->n == 0) {
        *reason = "no IPv4 or IPv6 address";
        return MUX_ERR_INVALID_ARGUMENT;
    }
    return out->n;
}

const local_addr *local_addrs_pick(const local_addrs *l, int attempt)
{
    if (attempt < 0 || attempt >= l->n)
        return NULL;
    return &l->a[(l->pref + attempt) % l->n];
}

void local_addrs_prefer(local_addrs *l, int attempt)
{
    if (attempt > 0 && attempt < l->n)
        l->pref = (l->pref + attempt) % l->n;
}
