/*
 * tunnelmux server — NAME -> the connected tunnels serving it (no I/O; values are opaque).
 *
 * A name is held by one or more tunnels, its replicas (docs/SCALING.md): they all presented the
 * same credential (a digest given by the caller; a different one is refused, no hijacking), up to
 * a per-name cap (MAX_REPLICAS). registry_pick() chooses the replica for a new stream: the usable
 * one with the fewest open streams, ties broken round robin.
 *
 * Keeps every name registered during the process lifetime (up to a cap) so a request for a name
 * whose clients disconnected can be answered 502 rather than 404 (PROTOCOL.md §6).
 */
#ifndef TM_SERVER_REGISTRY_H
#define TM_SERVER_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#define REGISTRY_BUCKETS 1024
#define REGISTRY_MAX_KNOWN 100000  /* names remembered after disconnect (beyond: forgotten = 404) */
#define REGISTRY_CREDENTIAL_LEN 32 /* a SHA-256 of the credential, never the credential itself */
#define REGISTRY_MAX_REPLICAS 64   /* hard cap of MAX_REPLICAS */

enum {
    REGISTRY_OK = 0,
    REGISTRY_TAKEN = -1,         /* live tunnels with another credential hold the name */
    REGISTRY_FULL = -2,          /* max_live tunnels are registered (all names) */
    REGISTRY_NOMEM = -3,         /* out of memory, or an invalid name or value */
    REGISTRY_REPLICAS_FULL = -4, /* the name has max_replicas tunnels already */
};

typedef struct registry_entry registry_entry;
struct registry_entry {
    registry_entry *next;
    void **values;                               /* the replicas, in registration order (nvalues == 0: known but not connected) */
    size_t nvalues;                              /* live replicas */
    size_t cap;                                  /* allocated slots of values */
    size_t cursor;                               /* round robin: where the next tie-break starts */
    uint8_t credential[REGISTRY_CREDENTIAL_LEN]; /* of the live replicas (meaningless when nvalues == 0) */
    char name[64];
};

typedef struct {
    registry_entry *buckets[REGISTRY_BUCKETS];
    size_t nlive;  /* live tunnels (replicas), all names together */
    size_t nknown; /* all entries */
} registry;

/* Zeroes |r|. */
void registry_init(registry *r);
/* Frees every entry (values are not touched). */
void registry_free(registry *r);

/*
 * Adds |value| (non-NULL, borrowed) as a replica of |name| (a canonical label, < 64 bytes) that
 * presented |credential|. Returns REGISTRY_OK; REGISTRY_TAKEN when the name has live replicas with
 * another credential; REGISTRY_REPLICAS_FULL when it has |max_replicas|; REGISTRY_FULL when
 * |max_live| tunnels are live (all names); REGISTRY_NOMEM.
 */
int registry_add(registry *r, const char *name, void *value, const uint8_t credential[REGISTRY_CREDENTIAL_LEN], size_t max_live,
                 size_t max_replicas);

/* Removes |value| from the replicas of |name| (the name stays known). Returns 1 if it was one. */
int registry_remove(registry *r, const char *name, void *value);

/* The live replicas of |name| (borrowed, valid until the next add/remove) and their count; 0 when
 * none. |*known| (may be NULL) is set to 1 when the name was ever registered in this process. */
size_t registry_replicas(const registry *r, const char *name, void *const **values, int *known);

/* A callback of registry_pick: the load of |value| (open streams), or < 0 when it must not get a
 * new stream (closing, sent or received GOAWAY). */
typedef long (*registry_load_fn)(void *value, void *ctx);

/*
 * The replica of |name| for a new stream: the one with the lowest load(value) >= 0, ties broken
 * round robin (successive picks among equal loads rotate). NULL when there is none or none is
 * usable. |*known| as for registry_replicas.
 */
void *registry_pick(registry *r, const char *name, registry_load_fn load, void *ctx, int *known);

/* The first live replica of |name| or NULL (|*known| as above). */
void *registry_find(const registry *r, const char *name, int *known);

#endif
