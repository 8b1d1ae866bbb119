/*
 * tunnelmux server — NAME -> connected tunnel (see registry.h).
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

void registry_free(registry *r)
{
    for (size_t i = 0; i < REGISTRY_BUCKETS; i++) {
        registry_entry *e = r->buckets[i];
        while (e != NULL) {
            registry_entry *next = e->next;
            free(e);
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

int registry_add(registry *r, const char *name, void *value, size_t max_live)
{
    size_t len = strlen(name);
    if (len == 0 || len >= sizeof(((registry_entry *)0)->name) || value == NULL)
        return REGISTRY_NOMEM;
    registry_entry *e = lookup(r, name);
    if (e != NULL && e->value != NULL)
        return REGISTRY_TAKEN;
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
    e->value = value;
    r->nlive++;
    return REGISTRY_OK;
}

int registry_remove(registry *r, const char *name, void *value)
{
    size_t b = hash_name(name);
    for (registry_entry **pp = &r->buckets[b]; *pp != NULL; pp = &(*pp)->next) {
        registry_entry *e = *pp;
        if (strcmp(e->name, name) != 0)
            continue;
        if (e->value != value || value == NULL)
            return 0;
        e->value = NULL;
        r->nlive--;
        if (r->nknown > REGISTRY_MAX_KNOWN) { /* bounded memory: forget it */
            *pp = e->next;
            free(e);
            r->nknown--;
        }
        return 1;
    }
    return 0;
}

void *registry_find(const registry *r, const char *name, int *known)
{
    registry_entry *e = lookup(r, name);
    if (known != NULL)
        *known = e != NULL;
    return e != NULL ? e->value : NULL;
}
