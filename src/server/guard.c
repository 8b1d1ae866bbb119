/*
 * tunnelmux server — Rapid Reset budget per public connection (see guard.h).
 */
#include "server/guard.h"

#include <string.h>

void guard_init(guard_table *g, uint32_t budget, int64_t window_ms)
{
    memset(g, 0, sizeof(*g));
    g->budget = budget;
    g->window_ms = window_ms > 0 ? window_ms : 10000;
}

#define PROBE 8

static guard_slot *find(const guard_table *g, uint64_t id)
{
    size_t h = (size_t)((id * 0x9E3779B97F4A7C15ull) >> 40) % GUARD_SLOTS;
    for (size_t k = 0; k < PROBE; k++) {
        const guard_slot *s = &g->slots[(h + k) % GUARD_SLOTS];
        if (s->conn_id == id)
            return (guard_slot *)s;
    }
    return NULL;
}

int guard_is_condemned(const guard_table *g, uint64_t conn_id)
{
    if (g->budget == 0 || conn_id == 0)
        return 0;
    const guard_slot *s = find(g, conn_id);
    return s != NULL && s->condemned;
}

int guard_on_cancel(guard_table *g, uint64_t conn_id, int64_t now_ms)
{
    if (g->budget == 0 || conn_id == 0)
        return 0;
    guard_slot *s = find(g, conn_id);
    if (s == NULL) {
        size_t h = (size_t)((conn_id * 0x9E3779B97F4A7C15ull) >> 40) % GUARD_SLOTS;
        for (size_t k = 0; k < PROBE; k++) {
            guard_slot *c = &g->slots[(h + k) % GUARD_SLOTS];
            if (s == NULL || c->conn_id == 0 || (s->conn_id != 0 && c->last_ms < s->last_ms))
                s = c;
            if (c->conn_id == 0)
                break;
        }
        memset(s, 0, sizeof(*s));
        s->conn_id = conn_id;
        ratelimit_init(&s->cancels, (double)g->budget * 1000.0 / (double)g->window_ms, (double)g->budget, now_ms);
    }
    s->last_ms = now_ms;
    if (s->condemned)
        return 0;
    if (ratelimit_take(&s->cancels, 1, now_ms) == 0)
        return 0;
    s->condemned = 1;
    g->condemned_total++;
    return 1;
}
