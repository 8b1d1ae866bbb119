/*
 * tunnelmux — RFC 6455 opening handshake helpers (include/mux/ws.h, PROTOCOL.md §2.1): key
 * generation, accept computation, the client's upgrade request and parsing the server's 101.
 * Pure parsing and formatting: no sockets.
 */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "mux/err.h"
#include "mux/ws.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" /* RFC 6455 §1.3 */
#define WS_MAX_RESPONSE_HEAD 16384

/* See ws.h: 16 CSPRNG bytes, base64-encoded (EVP_EncodeBlock writes the NUL). */
int mux_ws_make_key(char out[MUX_WS_KEY_LEN + 1])
{
    unsigned char raw[16];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return MUX_ERR_INTERNAL;
    EVP_EncodeBlock((unsigned char *)out, raw, sizeof(raw));
    return 0;
}

static int is_b64(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* 1 when |key| is 24 base64 characters encoding exactly 16 bytes (22 symbols + "=="). */
static int valid_key(const char *key, size_t key_len)
{
    if (key == NULL || key_len != MUX_WS_KEY_LEN)
        return 0;
    for (size_t i = 0; i < 22; i++)
        if (!is_b64((unsigned char)key[i]))
            return 0;
    return key[22] == '=' && key[23] == '=';
}

/* See ws.h: base64(SHA-1(key || GUID)), RFC 6455 §4.2.2 step 5. */
int mux_ws_accept_key(const char *key, size_t key_len, char out[MUX_WS_ACCEPT_LEN + 1])
{
    if (!valid_key(key, key_len))
        return MUX_ERR_BAD_HANDSHAKE;
    unsigned char in[MUX_WS_KEY_LEN + sizeof(WS_GUID) - 1];
    memcpy(in, key, MUX_WS_KEY_LEN);
    memcpy(in + MUX_WS_KEY_LEN, WS_GUID, sizeof(WS_GUID) - 1);
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1(in, sizeof(in), digest);
    EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH);
    return 0;
}

/* See ws.h. Compares in constant time once the lengths match. */
int mux_ws_check_accept(const char *key, size_t key_len, const char *accept, size_t accept_len)
{
    char want[MUX_WS_ACCEPT_LEN + 1];
    if (accept == NULL || accept_len != MUX_WS_ACCEPT_LEN || mux_ws_accept_key(key, key_len, want) != 0)
        return 0;
    return CRYPTO_memcmp(want, accept, MUX_WS_ACCEPT_LEN) == 0;
}

static int has_crlf(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

/* See ws.h. |extra_headers| must be empty or end with CRLF and contain no empty line. */
ssize_t mux_ws_client_request(char *buf, size_t cap, const char *host, const char *path, const char *key, const char *extra_headers)
{
    if (buf == NULL || host == NULL || path == NULL || key == NULL || host[0] == '\0' || path[0] != '/' || has_crlf(host) ||
        strpbrk(path, " \r\n") != NULL || !valid_key(key, strlen(key)))
        return MUX_ERR_INVALID_ARGUMENT;
    if (extra_headers == NULL)
        extra_headers = "";
    size_t xl = strlen(extra_headers);
    if (xl != 0 && (xl < 2 || memcmp(extra_headers + xl - 2, "\r\n", 2) != 0 || strstr(extra_headers, "\r\n\r\n") != NULL ||
                    memcmp(extra_headers, "\r\n", 2) == 0))
        return MUX_ERR_INVALID_ARGUMENT;
    int n = snprintf(buf, cap,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Protocol: " MUX_WS_SUBPROTOCOL "\r\n"
                     "%s"
                     "\r\n",
                     path, host, key, extra_headers);
    if (n < 0)
        return MUX_ERR_INVALID_ARGUMENT;
    if ((size_t)n >= cap)
        return MUX_ERR_BUFFER_TOO_SMALL;
    return n;
}

/* ---------------------------------------------------------------- response parsing */

static int is_tchar(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int name_is(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

/* 1 when the comma-separated token list |v| (|len| bytes) contains |token| (case-insensitive). */
static int list_has(const char *v, size_t len, const char *token)
{
    size_t i = 0, tl = strlen(token);
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < len && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == tl && strncasecmp(v + s, token, tl) == 0)
            return 1;
    }
    return 0;
}

static ssize_t bad(const char **reason, const char *why)
{
    if (reason != NULL)
        *reason = why;
    return MUX_ERR_BAD_HANDSHAKE;
}

/* See ws.h. The head is [buf, end of the first CRLFCRLF]; at most 16 KiB. */
ssize_t mux_ws_parse_response(const char *buf, size_t len, const char *key, int *status, const char **reason)
{
    if (status != NULL)
        *status = 0;
    if (buf == NULL && len != 0)
        return bad(reason, "no input");
    size_t scan = len < WS_MAX_RESPONSE_HEAD ? len : WS_MAX_RESPONSE_HEAD;
    const char *eoh = scan >= 4 ? memmem(buf, scan, "\r\n\r\n", 4) : NULL;
    if (eoh == NULL) {
        if (len >= WS_MAX_RESPONSE_HEAD)
            return bad(reason, "response head over 16 KiB");
        if (reason != NULL)
            *reason = "response head incomplete";
        return MUX_ERR_AGAIN;
    }
    size_t headlen = (size_t)(eoh - buf) + 4;
    if (memchr(buf, '\0', headlen) != NULL)
        return bad(reason, "NUL byte in response head");

    /* status line: HTTP/1.1 SP 3DIGIT [SP reason] CRLF */
    const char *p = buf, *end = buf + headlen - 2; /* end: the final CRLF */
    const char *eol = memmem(p, (size_t)(end - p) + 2, "\r\n", 2);
    size_t sl = (size_t)(eol - p);
    if (sl < 12 || memcmp(p, "HTTP/1.1 ", 9) != 0 || p[9] < '0' || p[9] > '9' || p[10] < '0' || p[10] > '9' || p[11] < '0' ||
        p[11] > '9' || (sl > 12 && p[12] != ' '))
        return bad(reason, "malformed status line");
    int code = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    if (status != NULL)
        *status = code;
    if (code != 101)
        return bad(reason, "status is not 101 Switching Protocols");

    int upgrade_ok = 0, connection_ok = 0, accept_seen = 0, accept_ok = 0;
    for (p = eol + 2; p < end; p = eol + 2) {
        eol = memmem(p, (size_t)(end - p) + 2, "\r\n", 2); /* never NULL: *end is CRLF */
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon == NULL || colon == p)
            return bad(reason, "malformed header line");
        for (const char *c = p; c < colon; c++)
            if (!is_tchar((unsigned char)*c))
                return bad(reason, "invalid character in header name");
        const char *v = colon + 1, *ve = eol;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        for (const char *c = v; c < ve; c++)
            if (*c == '\r' || *c == '\n')
                return bad(reason, "bare CR or LF in header value");
        size_t nl = (size_t)(colon - p), vl = (size_t)(ve - v);
        if (name_is(p, nl, "Upgrade")) {
            if (list_has(v, vl, "websocket"))
                upgrade_ok = 1;
        } else if (name_is(p, nl, "Connection")) {
            if (list_has(v, vl, "upgrade"))
                connection_ok = 1;
        } else if (name_is(p, nl, "Sec-WebSocket-Accept")) {
            if (accept_seen)
                return bad(reason, "duplicate Sec-WebSocket-Accept");
            accept_seen = 1;
            accept_ok = key != NULL && mux_ws_check_accept(key, strlen(key), v, vl);
        } else if (name_is(p, nl, "Sec-WebSocket-Protocol")) {
            if (!(vl == strlen(MUX_WS_SUBPROTOCOL) && memcmp(v, MUX_WS_SUBPROTOCOL, vl) == 0))
                return bad(reason, "server selected an unknown subprotocol");
        } else if (name_is(p, nl, "Sec-WebSocket-Extensions")) {
            return bad(reason, "server selected an extension we did not offer");
        }
    }
    if (!upgrade_ok)
        return bad(reason, "missing Upgrade: websocket");
    if (!connection_ok)
        return bad(reason, "missing Connection: upgrade");
    if (!accept_seen)
        return bad(reason, "missing Sec-WebSocket-Accept");
    if (!accept_ok)
        return bad(reason, "wrong Sec-WebSocket-Accept");
    if (reason != NULL)
        *reason = NULL;
    return (ssize_t)headlen;
}
