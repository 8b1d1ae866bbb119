/*
 * tunnelmux server — NAME -> the connected tunnels serving it (see registry.h).
 */
#include "server/registry.h"

#include <stdlib.h>
#include <string.h>

static size_t hash_name(const char *s)
{
    size_t h = 5381;
    for (; *s != '\0'; s++)
        h = h * 33 + (unsigned char)*s;
    return h % REGISTRY_BUCKETS;
}

void registry_init(registry *r)
{
    memset(r, 0, sizeof(*r));
}

static void free_entry(registry_entry *e)
{
    free(e->values);
    free(e);
}

void registry_free(registry *r)
{
    for (size_t i = 0; i < REGISTRY_BUCKETS; i++) {
        registry_entry *e = r->buckets[i];
        while (e != NULL) {
            registry_entry *next = e->next;
            free_entry(e);
            e = next;
        }
        r->buckets[i] = NULL;
    }
    r->nlive = r->nknown = 0;
}

static registry_entry *lookup(const registry *r, const char *name)
{
    for (registry_entry *e = r->buckets[hash_name(name)]; e != NULL; e = e->next) {
        if (strcmp(e->name, name) == 0)
            return e;
    }
    return NULL;
}

int registry_add(registry *r, const char *name, void *value, const uint8_t credential[REGISTRY_CREDENTIAL_LEN], size_t max_live,
                 size_t max_replicas)
{
    size_t len = strlen(name);
    if (len == 0 || len >= sizeof(((registry_entry *)0)->name) || value == NULL)
        return REGISTRY_NOMEM;
    if (max_replicas < 1)
        max_replicas = 1;
    registry_entry *e = lookup(r, name);
    if (e != NULL && e->nvalues > 0) {
        if (memcmp(e->credential, credential, REGISTRY_CREDENTIAL_LEN) != 0)
            return REGISTRY_TAKEN;
        for (size_t i = 0; i < e->nvalues; i++)
            if (e->values[i] == value)
                return REGISTRY_OK; /* already a replica */
        if (e->nvalues >= max_replicas)
            return REGISTRY_REPLICAS_FULL;
    }
    if (r->nlive >= max_live)
        return REGISTRY_FULL;
    if (e == NULL) {
        if ((e = calloc(1, sizeof(*e))) == NULL)
            return REGISTRY_NOMEM;
        memcpy(e->name, name, len + 1);
        size_t b = hash_name(name);
        e->next = r->buckets[b];
        r->buckets[b] = e;
        r->nknown++;
    }
    if (e->nvalues == e->cap) {
        size_t cap = e->cap == 0 ? 1 : e->cap * 2;
        void **v = realloc(e->values, cap * sizeof(*v));
        if (v == NULL)
            return REGISTRY_NOMEM;
        e->values = v;
        e->cap = cap;
    }
    if (e->nvalues == 0)
        memcpy(e->credential, credential, REGISTRY_CREDENTIAL_LEN);
    e->values[e->nvalues++] = value;
    r->nlive++;
    return REGISTRY_OK;
}

int registry_remove(registry *r, const char *name, void *value)
{
    if (value == NULL)
        return 0;
    size_t b = hash_name(name);
    for (registry_entry **pp = &r->buckets[b]; *pp != NULL; pp = &(*pp)->next) {
        registry_entry *e = *pp;
        if (strcmp(e->name, name) != 0)
            continue;
        size_t i = 0;
        while (i < e->nvalues && e->values[i] != value)
            i++;
        if (i == e->nvalues)
            return 0;
        memmove(&e->values[i], &e->values[i + 1], (e->nvalues - i - 1) * sizeof(*e->values));
        e->nvalues--;
        r->nlive--;
        if (e->nvalues == 0) {
            free(e->values); /* a known name costs only its entry */
            e->values = NULL;
            e->cap = 0;
            e->cursor = 0;
            if (r->nknown > REGISTRY_MAX_KNOWN) { /* bounded memory: forget it */
                *pp = e->next;
                free_entry(e);
                r->nknown--;
            }
        }
        return 1;
    }
    return 0;
}

size_t registry_replicas(const registry *r, const char *name, void *const **values, int *known)
{
    registry_entry *e = lookup(r, name);
    if (known != NULL)
        *known = e != NULL;
    *values = e != NULL ? e->values : NULL;
    return e != NULL ? e->nvalues : 0;
}

void *registry_pick(registry *r, const char *name, registry_load_fn load, void *ctx, int *known)
{
    registry_entry *e = lookup(r, name);
    if (known != NULL)
        *known = e != NULL;
    if (e == NULL || e->nvalues == 0)
        return NULL;
    size_t n = e->nvalues, start = e->cursor % n, best = n;
    long best_load = 0;
    for (size_t k = 0; k < n; k++) {
        size_t i = (start + k) % n;
        long l = load(e->values[i], ctx);
        if (l >= 0 && (best == n || l < best_load)) {
            best = i;
            best_load = l;
        }
    }
    if (best == n)
        return NULL;
    e->cursor = best + 1;
    return e->values[best];
}

void *registry_find(const registry *r, const char *name, int *known)
{
    registry_entry *e = lookup(r, name);
    if (known != NULL)
        *known = e != NULL;
    return e != NULL && e->nvalues > 0 ? e->values[0] : NULL;
}
