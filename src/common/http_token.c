/* tunnelmux — HTTP field syntax (see http_token.h). */
#include "common/http_token.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

/* tchar of RFC 9110 §5.6.2 */
static const uint8_t tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1,
    ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1, ['0'] = 1, ['1'] = 1,  ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,
    ['7'] = 1, ['8'] = 1, ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1,  ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,  ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1,
    ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1,  ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1,
    ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1,  ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1,
    ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1,  ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

int http_is_token(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!tchar[(unsigned char)s[i]])
            return 0;
    return 1;
}

int http_is_clean_value(const char *s, size_t len)
{
    size_t i = 0;
    /* eight bytes at a time while no byte is below 0x0e (CR is 0x0d): the word test "some byte
     * < n" of (w - n*0x01..) & ~w & 0x80.. is exact for n <= 128; the byte loop decides the rest */
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (((w - 0x0e0e0e0e0e0e0e0eull) & ~w & 0x8080808080808080ull) != 0)
            break;
    }
    for (; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= '\r' && (c == '\r' || c == '\n' || c == '\0'))
            return 0;
    }
    return 1;
}

int http_name_eq(const char *name, size_t len, const char *lit, size_t litlen)
{
    if (len != litlen)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + ('a' - 'A'));
        if (c != (unsigned char)lit[i])
            return 0;
    }
    return 1;
}

int http_is_hop_by_hop(const char *name, size_t len)
{
    switch (len) {
    case 2:
        return http_name_is(name, len, "te");
    case 7:
        return http_name_is(name, len, "trailer") || http_name_is(name, len, "upgrade");
    case 10:
        return http_name_is(name, len, "connection") || http_name_is(name, len, "keep-alive");
    case 14:
        return http_name_is(name, len, "http2-settings");
    case 16:
        return http_name_is(name, len, "proxy-connection");
    case 17:
        return http_name_is(name, len, "transfer-encoding");
    default:
        return 0;
    }
}

int http_list_next(const char *list, size_t len, size_t *pos, const char **elem, size_t *elem_len)
{
    if (*pos >= len)
        return 0;
    const char *p = list + *pos, *end = list + len;
    const char *comma = memchr(p, ',', (size_t)(end - p));
    const char *e = comma != NULL ? comma : end;
    while (p < e && (*p == ' ' || *p == '\t'))
        p++;
    const char *q = e;
    while (q > p && (q[-1] == ' ' || q[-1] == '\t'))
        q--;
    *elem = p;
    *elem_len = (size_t)(q - p);
    *pos = comma != NULL ? (size_t)(comma + 1 - list) : len;
    return 1;
}

int http_list_has(const char *list, size_t len, const char *token, size_t toklen)
{
    size_t pos = 0, n;
    const char *e;
    while (http_list_next(list, len, &pos, &e, &n)) {
        if (n == toklen && strncasecmp(e, token, toklen) == 0)
            return 1;
    }
    return 0;
}
