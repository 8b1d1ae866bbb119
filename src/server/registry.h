/*
 * tunnelmux server — NAME -> connected tunnel (no I/O; the value is opaque).
 *
 * Keeps every name registered during the process lifetime (up to a cap) so a request for a name
 * whose client disconnected can be answered 502 rather than 404 (PROTOCOL.md §6).
 */
#ifndef TM_SERVER_REGISTRY_H
#define TM_SERVER_REGISTRY_H

#include <stddef.h>

#define REGISTRY_BUCKETS 1024
#define REGISTRY_MAX_KNOWN 100000 /* names remembered after disconnect (beyond: forgotten = 404) */

enum {
    REGISTRY_OK = 0,
    REGISTRY_TAKEN = -1, /* a live client holds the name */
    REGISTRY_FULL = -2,  /* max_live reached */
    REGISTRY_NOMEM = -3,
};

typedef struct registry_entry registry_entry;
struct registry_entry {
    registry_entry *next;
    void *value; /* NULL = known but not connected */
    char name[64];
};

typedef struct {
    registry_entry *buckets[REGISTRY_BUCKETS];
    size_t nlive;  /* entries with a value */
    size_t nknown; /* all entries */
} registry;

/* Zeroes |r|. */
void registry_init(registry *r);
/* Frees every entry (values are not touched). */
void registry_free(registry *r);

/*
 * Binds |name| (a canonical label, < 64 bytes) to |value| (non-NULL, borrowed). Returns REGISTRY_OK,
 * REGISTRY_TAKEN when a live value holds it, REGISTRY_FULL when |max_live| are live, REGISTRY_NOMEM.
 */
int registry_add(registry *r, const char *name, void *value, size_t max_live);

/* Unbinds |name| if it is bound to |value| (the name stays known). Returns 1 if it was. */
int registry_remove(registry *r, const char *name, void *value);

/* Returns the live value of |name| or NULL; |*known| (may be NULL) is set to 1 when the name was
 * ever registered in this process (and not forgotten). */
void *registry_find(const registry *r, const char *name, int *known);

#endif
