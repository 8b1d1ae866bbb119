/*
 * tunnelmux server — authentication of client daemons and of public users (pure, no I/O except
 * reading the token / password files given by the operator).
 *
 * Client tokens (docs/SECURITY.md §2): AUTH_TOKENS_FILE holds one `token name-pattern` per line
 * ('#' comments, blank lines ignored); AUTH_TOKEN is one shared token allowed every name. Only the
 * SHA-256 digest of each token is kept; a presented token is hashed and compared against every
 * entry with CRYPTO_memcmp (equal-length digests, no early exit), so timing reveals neither the
 * token nor which entry matched. A pattern is a case-insensitive glob over the canonical NAME
 * ('*' any run of characters, '?' one character), or a comma-separated list of such globs.
 *
 * Public basic auth: BASIC_AUTH (`user:password`, every name) and BASIC_AUTH_FILE (one
 * `name-pattern user:password` per line). Credentials are kept as digests and checked the same way.
 *
 * Failure throttle: failed attempts per source address are counted in a bounded table; after
 * AUTH_FAIL_FREE failures the address must wait (doubling per further failure, capped), and the
 * caller answers 429 / REFUSE(RATE_LIMITED) with that retry-after.
 */
#ifndef TM_SERVER_AUTH_H
#define TM_SERVER_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define AUTH_DIGEST_LEN 32
#define AUTH_MAX_PATTERN 255
#define AUTH_MAX_LINE 4096

enum {
    AUTH_OK = 0,
    AUTH_ERR_TOKEN = -1,  /* no entry has this token (or no token given) */
    AUTH_ERR_NAME = -2,   /* the token is valid but its pattern does not allow the name */
    AUTH_ERR_SYNTAX = -3, /* file / value malformed (parse functions) */
    AUTH_ERR_NOMEM = -4,
    AUTH_ERR_IO = -5,
};

typedef struct {
    uint8_t digest[AUTH_DIGEST_LEN]; /* SHA-256 of the secret */
    char pattern[AUTH_MAX_PATTERN + 1];
} auth_entry;

/* A list of (secret digest, name pattern) pairs: client tokens or public credentials. */
typedef struct {
    auth_entry *v;
    size_t n, cap;
} auth_list;

/* Zeroes |l|. */
void auth_list_init(auth_list *l);
/* Frees the entries of |l| (wiping the digests) and zeroes it. */
void auth_list_free(auth_list *l);

/*
 * Adds |secret| (|len| bytes, must be non-empty) with |pattern| (NUL-terminated, validated with
 * auth_pattern_valid). Only the digest of |secret| is stored; nothing is borrowed.
 * Returns AUTH_OK, AUTH_ERR_SYNTAX or AUTH_ERR_NOMEM.
 */
int auth_list_add(auth_list *l, const char *secret, size_t len, const char *pattern);

/*
 * Parses a token file's text (|len| bytes): lines `SECRET PATTERN` (blank-separated; for
 * BASIC_AUTH_FILE the order is `PATTERN user:password`, selected by |pattern_first|). Lines starting
 * with '#' and blank lines are skipped; CRLF line ends accepted. On error returns AUTH_ERR_SYNTAX
 * and writes "line N: why" into |err| (never the secret). Returns the number of entries added.
 */
int auth_list_parse(auth_list *l, const char *text, size_t len, int pattern_first, char *err, size_t errlen);

/* Reads |path| (at most 1 MiB) and parses it like auth_list_parse. Errors name the file. */
int auth_list_load_file(auth_list *l, const char *path, int pattern_first, char *err, size_t errlen);

/*
 * Checks |secret| (|len| bytes) for |name| (canonical NAME). Every entry is compared (constant time
 * in the secret). Returns AUTH_OK when an entry has this secret and its pattern matches |name|,
 * AUTH_ERR_NAME when the secret is known but no pattern of it allows |name|, AUTH_ERR_TOKEN
 * otherwise (empty secret included).
 */
int auth_list_check(const auth_list *l, const char *secret, size_t len, const char *name);

/* 1 when some entry's pattern matches |name| (used to know whether a name needs basic auth). */
int auth_list_covers(const auth_list *l, const char *name);

/* 1 when |pattern| is a valid pattern: comma-separated non-empty globs of [a-z0-9-*?] (any case). */
int auth_pattern_valid(const char *pattern);

/* 1 when |name| matches |pattern| (case-insensitive; comma-separated alternatives). */
int auth_pattern_match(const char *pattern, const char *name);

/*
 * Decodes an `Authorization: Basic base64(user:password)` value into |out| (|cap| bytes,
 * NUL-terminated). Returns the decoded length, or -1 when the scheme is not Basic or the base64 is
 * malformed / too long.
 */
int auth_parse_basic(const char *value, size_t len, char *out, size_t cap);

/* ------------------------------------------------------------------ failure throttle */

#define AUTH_THROTTLE_SLOTS 4096
#define AUTH_FAIL_FREE 5          /* failures allowed before any delay */
#define AUTH_FAIL_WINDOW_MS 60000 /* failures older than this are forgotten */
#define AUTH_FAIL_MAX_DELAY_MS 60000

typedef struct {
    char addr[48];     /* source IP ("" = free slot) */
    uint32_t failures; /* within the window */
    int64_t last_ms;   /* time of the last failure */
    int64_t until_ms;  /* blocked until */
} auth_throttle_slot;

/* Failed-attempt counters per source address (bounded: the oldest slot is reused). */
typedef struct {
    auth_throttle_slot slots[AUTH_THROTTLE_SLOTS];
    uint32_t base_delay_ms; /* delay after the first counted failure (doubles), default 1000 */
} auth_throttle;

/* Initialises |t| with |base_delay_ms| (0 disables the throttle). */
void auth_throttle_init(auth_throttle *t, uint32_t base_delay_ms);

/* Returns 0 when |addr| may try now, or the milliseconds it must still wait. */
int64_t auth_throttle_check(const auth_throttle *t, const char *addr, int64_t now_ms);

/* Records a failure from |addr|; returns the wait now imposed on it (0 while under the free budget). */
int64_t auth_throttle_fail(auth_throttle *t, const char *addr, int64_t now_ms);

/* Forgets |addr| after a success. */
void auth_throttle_success(auth_throttle *t, const char *addr);

#endif
