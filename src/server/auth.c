/*
 * tunnelmux server — client tokens, public basic auth, failure throttle (see auth.h).
 */
#include "server/auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

void auth_list_init(auth_list *l)
{
    memset(l, 0, sizeof(*l));
}

void auth_list_free(auth_list *l)
{
    if (l->v != NULL) {
        OPENSSL_cleanse(l->v, l->cap * sizeof(*l->v));
        free(l->v);
    }
    memset(l, 0, sizeof(*l));
}

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

int auth_pattern_valid(const char *pattern)
{
    size_t len = strlen(pattern), run = 0;
    if (len == 0 || len > AUTH_MAX_PATTERN)
        return 0;
    for (size_t i = 0; i <= len; i++) {
        char c = lower(pattern[i]);
        if (c == ',' || c == '\0') {
            if (run == 0)
                return 0;
            run = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '*' || c == '?'))
            return 0;
        run++;
    }
    return 1;
}

/* Glob over [p, pe) against NUL-terminated |s|: iterative with one backtrack point (O(n*m)). */
static int glob_match(const char *p, const char *pe, const char *s)
{
    const char *star = NULL, *retry = NULL;
    while (*s != '\0') {
        if (p < pe && (*p == '?' || lower(*p) == lower(*s))) {
            p++;
            s++;
        } else if (p < pe && *p == '*') {
            star = p++;
            retry = s;
        } else if (star != NULL) {
            p = star + 1;
            s = ++retry;
        } else {
            return 0;
        }
    }
    while (p < pe && *p == '*')
        p++;
    return p == pe;
}

int auth_pattern_match(const char *pattern, const char *name)
{
    const char *p = pattern;
    for (;;) {
        const char *comma = strchr(p, ',');
        const char *end = comma != NULL ? comma : p + strlen(p);
        if (end > p && glob_match(p, end, name))
            return 1;
        if (comma == NULL)
            return 0;
        p = comma + 1;
    }
}

static void digest(const char *secret, size_t len, uint8_t out[AUTH_DIGEST_LEN])
{
    SHA256((const unsigned char *)secret, len, out);
}

int auth_list_add(auth_list *l, const char *secret, size_t len, const char *pattern)
{
    if (len == 0 || !auth_pattern_valid(pattern))
        return AUTH_ERR_SYNTAX;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        auth_entry *v = calloc(cap, sizeof(*v));
        if (v == NULL)
            return AUTH_ERR_NOMEM;
        if (l->v != NULL) {
            memcpy(v, l->v, l->n * sizeof(*v));
            OPENSSL_cleanse(l->v, l->cap * sizeof(*l->v));
            free(l->v);
        }
        l->v = v;
        l->cap = cap;
    }
    auth_entry *e = &l->v[l->n++];
    digest(secret, len, e->digest);
    snprintf(e->pattern, sizeof(e->pattern), "%s", pattern);
    return AUTH_OK;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

int auth_list_parse(auth_list *l, const char *text, size_t len, int pattern_first, char *err, size_t errlen)
{
    size_t pos = 0, lineno = 0;
    int added = 0;
    while (pos < len) {
        size_t start = pos;
        while (pos < len && text[pos] != '\n')
            pos++;
        size_t end = pos;
        pos++; /* past '\n' */
        lineno++;
        if (end > start && text[end - 1] == '\r')
            end--;
        while (start < end && is_blank(text[start]))
            start++;
        while (end > start && is_blank(text[end - 1]))
            end--;
        if (start == end || text[start] == '#')
            continue;
        if (end - start > AUTH_MAX_LINE) {
            snprintf(err, errlen, "line %zu: too long", lineno);
            return AUTH_ERR_SYNTAX;
        }
        /* two fields separated by blanks */
        size_t f1e = start;
        while (f1e < end && !is_blank(text[f1e]))
            f1e++;
        size_t f2s = f1e;
        while (f2s < end && is_blank(text[f2s]))
            f2s++;
        if (f2s == end) {
            snprintf(err, errlen, "line %zu: expected two fields (%s)", lineno,
                     pattern_first ? "name-pattern user:password" : "token name-pattern");
            return AUTH_ERR_SYNTAX;
        }
        for (size_t i = f2s; i < end; i++) {
            if (is_blank(text[i])) {
                snprintf(err, errlen, "line %zu: more than two fields", lineno);
                return AUTH_ERR_SYNTAX;
            }
        }
        for (size_t i = start; i < end; i++) {
            unsigned char c = (unsigned char)text[i];
            if (c < 0x20 && c != '\t') {
                snprintf(err, errlen, "line %zu: control character", lineno);
                return AUTH_ERR_SYNTAX;
            }
        }
        const char *sec = text + start, *pat = text + f2s;
        size_t seclen = f1e - start, patlen = end - f2s;
        if (pattern_first) {
            sec = text + f2s;
            seclen = end - f2s;
            pat = text + start;
            patlen = f1e - start;
            if (memchr(sec, ':', seclen) == NULL) {
                snprintf(err, errlen, "line %zu: credentials must be user:password", lineno);
                return AUTH_ERR_SYNTAX;
            }
        }
        char pattern[AUTH_MAX_PATTERN + 1];
        if (patlen > AUTH_MAX_PATTERN) {
            snprintf(err, errlen, "line %zu: name pattern too long", lineno);
            return AUTH_ERR_SYNTAX;
        }
        memcpy(pattern, pat, patlen);
        pattern[patlen] = '\0';
        if (!auth_pattern_valid(pattern)) {
            snprintf(err, errlen, "line %zu: invalid name pattern '%s' (letters, digits, '-', '*', '?', ',')", lineno, pattern);
            return AUTH_ERR_SYNTAX;
        }
        int rv = auth_list_add(l, sec, seclen, pattern);
        if (rv != AUTH_OK) {
            snprintf(err, errlen, "line %zu: %s", lineno, rv == AUTH_ERR_NOMEM ? "out of memory" : "invalid entry");
            return rv;
        }
        added++;
    }
    return added;
}

int auth_list_load_file(auth_list *l, const char *path, int pattern_first, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return AUTH_ERR_IO;
    }
    size_t cap = 1 << 20;
    char *buf = malloc(cap + 1);
    if (buf == NULL) {
        fclose(f);
        snprintf(err, errlen, "%s: out of memory", path);
        return AUTH_ERR_NOMEM;
    }
    size_t n = fread(buf, 1, cap + 1, f);
    int ioerr = ferror(f);
    fclose(f);
    if (ioerr || n > cap) {
        OPENSSL_cleanse(buf, n);
        free(buf);
        snprintf(err, errlen, "%s: %s", path, ioerr ? "read error" : "larger than 1 MiB");
        return AUTH_ERR_IO;
    }
    char why[256] = "";
    int rv = auth_list_parse(l, buf, n, pattern_first, why, sizeof(why));
    OPENSSL_cleanse(buf, n);
    free(buf);
    if (rv < 0)
        snprintf(err, errlen, "%s: %s", path, why);
    return rv;
}

int auth_list_check(const auth_list *l, const char *secret, size_t len, const char *name)
{
    uint8_t d[AUTH_DIGEST_LEN];
    digest(secret != NULL ? secret : "", secret != NULL ? len : 0, d);
    int known = 0, allowed = 0;
    for (size_t i = 0; i < l->n; i++) {
        /* every entry is compared: no early exit on a match */
        int same = CRYPTO_memcmp(d, l->v[i].digest, AUTH_DIGEST_LEN) == 0;
        known |= same;
        if (same && auth_pattern_match(l->v[i].pattern, name))
            allowed = 1;
    }
    OPENSSL_cleanse(d, sizeof(d));
    if (secret == NULL || len == 0 || !known)
        return AUTH_ERR_TOKEN;
    return allowed ? AUTH_OK : AUTH_ERR_NAME;
}

int auth_list_covers(const auth_list *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (auth_pattern_match(l->v[i].pattern, name))
            return 1;
    return 0;
}

int auth_parse_basic(const char *value, size_t len, char *out, size_t cap)
{
    size_t i = 0;
    while (i < len && is_blank(value[i]))
        i++;
    if (len - i < 6 || strncasecmp(value + i, "basic", 5) != 0 || !is_blank(value[i + 5]))
        return -1;
    i += 6;
    while (i < len && is_blank(value[i]))
        i++;
    size_t end = len;
    while (end > i && is_blank(value[end - 1]))
        end--;
    size_t b64 = end - i;
    if (b64 == 0 || b64 % 4 != 0 || b64 / 4 * 3 + 1 > cap || b64 > 4096)
        return -1;
    for (size_t k = i; k < end; k++) {
        char c = value[k];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '='))
            return -1;
    }
    int n = EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)value + i, (int)b64);
    if (n < 0)
        return -1;
    /* EVP_DecodeBlock counts padding as zero bytes */
    if (value[end - 1] == '=')
        n--;
    if (b64 >= 2 && value[end - 2] == '=')
        n--;
    out[n] = '\0';
    return n;
}

/* ------------------------------------------------------------------ throttle */

void auth_throttle_init(auth_throttle *t, uint32_t base_delay_ms)
{
    memset(t, 0, sizeof(*t));
    t->base_delay_ms = base_delay_ms;
}

static size_t slot_hash(const char *addr)
{
    size_t h = 2166136261u;
    for (; *addr != '\0'; addr++)
        h = (h ^ (unsigned char)*addr) * 16777619u;
    return h % AUTH_THROTTLE_SLOTS;
}

#define PROBE 8 /* slots probed per address */

static auth_throttle_slot *find_slot(const auth_throttle *t, const char *addr)
{
    size_t h = slot_hash(addr);
    for (size_t k = 0; k < PROBE; k++) {
        const auth_throttle_slot *s = &t->slots[(h + k) % AUTH_THROTTLE_SLOTS];
        if (strcmp(s->addr, addr) == 0)
            return (auth_throttle_slot *)s;
    }
    return NULL;
}

int64_t auth_throttle_check(const auth_throttle *t, const char *addr, int64_t now_ms)
{
    if (t->base_delay_ms == 0 || addr == NULL || addr[0] == '\0')
        return 0;
    const auth_throttle_slot *s = find_slot(t, addr);
    if (s == NULL || s->until_ms <= now_ms)
        return 0;
    return s->until_ms - now_ms;
}

int64_t auth_throttle_fail(auth_throttle *t, const char *addr, int64_t now_ms)
{
    if (t->base_delay_ms == 0 || addr == NULL || addr[0] == '\0')
        return 0;
    auth_throttle_slot *s = find_slot(t, addr);
    if (s == NULL) {
        /* reuse a free or the least recently failing slot among the probed ones */
        size_t h = slot_hash(addr);
        for (size_t k = 0; k < PROBE; k++) {
            auth_throttle_slot *c = &t->slots[(h + k) % AUTH_THROTTLE_SLOTS];
            if (s == NULL || c->addr[0] == '\0' || (s->addr[0] != '\0' && c->last_ms < s->last_ms))
                s = c;
            if (c->addr[0] == '\0')
                break;
        }
        memset(s, 0, sizeof(*s));
        snprintf(s->addr, sizeof(s->addr), "%s", addr);
    }
    if (now_ms - s->last_ms > AUTH_FAIL_WINDOW_MS && s->until_ms <= now_ms)
        s->failures = 0;
    s->failures++;
    s->last_ms = now_ms;
    if (s->failures <= AUTH_FAIL_FREE)
        return 0;
    uint32_t extra = s->failures - AUTH_FAIL_FREE - 1;
    int64_t delay = (int64_t)t->base_delay_ms << (extra > 16 ? 16 : extra);
    if (delay > AUTH_FAIL_MAX_DELAY_MS)
        delay = AUTH_FAIL_MAX_DELAY_MS;
    s->until_ms = now_ms + delay;
    return delay;
}

void auth_throttle_success(auth_throttle *t, const char *addr)
{
    auth_throttle_slot *s = addr != NULL ? find_slot(t, addr) : NULL;
    if (s != NULL)
        memset(s, 0, sizeof(*s));
}
