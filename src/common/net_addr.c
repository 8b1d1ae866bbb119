/*
 * tunnelmux — peer-address formatting (see net_addr.h). One copy of what server/proxy.c
 * (format_addr, join_addr), server/tunnel.c (format_peer, peer_ip_of) and server/security.c
 * (security_peer_ip) each did their own way (issue 17 §4).
 */
#include "common/net_addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

int net_addr_join(char *out, size_t cap, const char *ip, unsigned port)
{
    char digits[5];
    size_t nd = 0, iplen = strlen(ip), n = 0;
    int bracket = memchr(ip, ':', iplen) != NULL;
    port &= 0xffff;
    do { /* per request: no printf */
        digits[nd++] = (char)('0' + port % 10);
        port /= 10;
    } while (port > 0 && nd < sizeof(digits));
    if (cap == 0)
        return -1;
    if (iplen + nd + (bracket ? 4 : 2) > cap) {
        out[0] = '\0';
        return -1;
    }
    if (bracket)
        out[n++] = '[';
    memcpy(out + n, ip, iplen);
    n += iplen;
    if (bracket)
        out[n++] = ']';
    out[n++] = ':';
    while (nd > 0)
        out[n++] = digits[--nd];
    out[n] = '\0';
    return 0;
}

int net_addr_format(const struct sockaddr *sa, socklen_t len, unsigned flags, char *ip, size_t ipcap, char *ip_port,
                    size_t ip_port_cap)
{
    char text[NET_ADDR_IP_MAX];
    unsigned port = 0;
    int ok = 0;
    if (ip != NULL && ipcap > 0)
        ip[0] = '\0';
    if (ip_port != NULL && ip_port_cap > 0)
        ip_port[0] = '\0';
    if (len == 0 || sa == NULL)
        return -1;
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        ok = inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text)) != NULL;
        port = ntohs(sin->sin_port);
    } else if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        int mapped = (flags & NET_ADDR_UNMAP_V4) && IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr);
        const void *a = mapped ? (const void *)&sin6->sin6_addr.s6_addr[12] : (const void *)&sin6->sin6_addr;
        ok = inet_ntop(mapped ? AF_INET : AF_INET6, a, text, sizeof(text)) != NULL;
        port = ntohs(sin6->sin6_port);
    }
    if (!ok)
        return -1;
    size_t tl = strlen(text);
    if (ip != NULL && tl + 1 > ipcap) {
        if (ipcap > 0)
            ip[0] = '\0';
        return -1;
    }
    if (ip_port != NULL && net_addr_join(ip_port, ip_port_cap, text, port) != 0) {
        if (ip != NULL && ipcap > 0)
            ip[0] = '\0';
        return -1;
    }
    if (ip != NULL)
        memcpy(ip, text, tl + 1);
    return 0;
}
