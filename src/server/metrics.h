/*
 * tunnelmux server — counters for /metrics (Prometheus text format), the admin JSON API and the
 * access log. No I/O and no h2o: the server feeds events in (registrations, refusals, finished
 * public requests) and passes the live per-tunnel session stats when it renders.
 *
 * Per-client counters are keyed by client NAME and survive reconnects (Prometheus counters must
 * never go backwards); at most METRICS_MAX_CLIENTS names are tracked, later names only count in
 * the server totals. Client names are RFC 1123 labels (validated before they reach us); request
 * paths are attacker-controlled and are kept only in the recent-requests ring, escaped by whoever
 * shows them.
 */
#ifndef TM_SERVER_METRICS_H
#define TM_SERVER_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "mux/mux.h"

#define METRICS_MAX_CLIENTS 10000
#define METRICS_MAX_REASONS 32
#define METRICS_NBUCKETS 14 /* request duration histogram buckets, +Inf excluded */
#define METRICS_RECENT 64   /* recent requests kept for the dashboard */
#define METRICS_PATH_MAX 256

/* Upper bounds (seconds) of the request duration histogram buckets. */
extern const double metrics_buckets[METRICS_NBUCKETS];

/* Status classes: index 0 = no status / other, 1..5 = 1xx..5xx. */
#define METRICS_NCLASSES 6

typedef struct {
    uint64_t requests[METRICS_NCLASSES]; /* finished public requests by status class */
    uint64_t req_bytes_in;               /* public request body bytes received */
    uint64_t req_bytes_out;              /* public response body bytes sent */
    uint64_t hist[METRICS_NBUCKETS + 1]; /* duration histogram (non-cumulative; last = +Inf) */
    double duration_sum;                 /* seconds */
} metrics_requests;

typedef struct metrics_client metrics_client;
struct metrics_client {
    metrics_client *next; /* hash chain */
    char name[64];
    metrics_requests req;
    uint64_t connects;        /* registrations of this name */
    uint64_t rate_limited;    /* requests refused by a rate limit */
    uint64_t streams_refused; /* requests refused (503) with MAX_STREAMS_PER_CLIENT streams open */
    /* the client's local connection queue, as reported in response heads (PROTOCOL.md §9.4) */
    uint64_t queue_reports;     /* responses that carried a queue wait */
    uint64_t queue_waited;      /* of them, with a wait over 0 ms (the stream was queued) */
    uint64_t queue_wait_ms_sum; /* total of the reported waits */
    uint64_t queue_wait_ms_max; /* longest reported wait */
    int64_t queue_length_last;  /* streams waiting at the client's last report (-1: none yet) */
    /* accumulated from this name's finished tunnel sessions (live ones are added at render time) */
    uint64_t tun_bytes_in, tun_bytes_out, tun_streams, tun_flow_blocked_ms;
    uint64_t tun_stall_ms[MUX_STALL_CAUSES]; /* closed tunnels' stream stall times by cause */
    /* rates from the last sample (metrics_sample) */
    uint64_t sample_requests, sample_bytes_in, sample_bytes_out;
    int64_t sample_at_ms;
    double rate_requests, rate_bytes_in, rate_bytes_out; /* per second */
};

/* One finished public request (the access record). Strings are borrowed for the call. */
typedef struct {
    const char *client; /* routed client NAME, NULL when the request reached no client */
    const char *method;
    const char *path;
    int status;            /* 0 when no response head was sent */
    uint64_t bytes_in;     /* request body bytes */
    uint64_t bytes_out;    /* response body bytes */
    double seconds;        /* request begin to response end */
    uint32_t stream_id;    /* 0 when no stream was opened */
    int64_t queue_wait_ms; /* ms the stream waited for a local connection at the client; -1 unknown */
    int64_t queue_length;  /* streams waiting there when its response began; -1 unknown */
} metrics_request_info;

/* A recent request as kept for the dashboard (copies, truncated). */
typedef struct {
    int64_t at_unix_ms;
    char client[64];
    char method[16];
    char path[METRICS_PATH_MAX];
    int status;
    double seconds;
    uint64_t bytes_in, bytes_out;
    int64_t queue_wait_ms; /* -1 unknown */
} metrics_recent;

#define METRICS_WORST_STREAMS 5

/* Live state of one registered tunnel, gathered by the caller when rendering. */
typedef struct {
    const char *name;
    const char *peer;
    int64_t connected_since_unix_ms;
    mux_session_stats stats;
    uint32_t requests_active;                      /* public requests in progress: open streams and responses still buffered */
    uint64_t response_bytes_held;                  /* response bytes received from the tunnel, not yet written to readers */
    mux_stream_stall worst[METRICS_WORST_STREAMS]; /* streams that stalled longest (admin API) */
    size_t nworst;
    uint32_t replicas; /* tunnels of this name (their stats summed above; peer: the oldest's) */
} metrics_live;

typedef struct metrics metrics;
struct metrics {
    metrics_client *buckets[1024];
    metrics_client **clients; /* insertion order, for rendering */
    size_t nclients, capclients;
    metrics_requests total; /* every public request, routed or not */
    uint64_t unrouted;      /* requests that reached no client (404/502 before a tunnel) */
    uint64_t retries;       /* requests sent again on another tunnel of their name (safe retry) */
    uint64_t tunnels_accepted;
    uint64_t reconnects; /* registrations of a name already seen */
    uint64_t rate_limited;
    uint64_t stalled_readers; /* public readers cut for taking no bytes for WRITE_TIMEOUT */
    uint64_t auth_throttled;  /* requests answered 429 after wrong basic-auth credentials (public, admin) */
    uint64_t streams_refused; /* requests refused (503) over MAX_STREAMS_PER_CLIENT */
    struct {
        char reason[32];
        uint64_t count;
    } refusals[METRICS_MAX_REASONS];
    size_t nrefusals;
    metrics_recent recent[METRICS_RECENT];
    size_t recent_next, recent_count;
    int64_t started_unix_ms;
};

/* Allocates zeroed metrics (started now). Returns NULL when out of memory; free with metrics_free. */
metrics *metrics_new(void);
/* Frees |m| and every client entry (NULL is fine). */
void metrics_free(metrics *m);

/* The entry of |name|, created when absent (NULL when METRICS_MAX_CLIENTS are tracked or out of
 * memory). The pointer stays valid until metrics_free. */
metrics_client *metrics_client_get(metrics *m, const char *name);
/* The entry of |name| or NULL (never creates). */
metrics_client *metrics_client_find(const metrics *m, const char *name);

/* A client registered as |name|. Returns 1 when the name had registered before (a reconnect). */
int metrics_on_registered(metrics *m, const char *name);
/* Another replica of a name that has live tunnels registered: an accepted tunnel, not a reconnect. */
void metrics_on_replica_registered(metrics *m);
/* The tunnel of |name| closed; its session's final counters |final| (may be NULL) are kept. */
void metrics_on_tunnel_closed(metrics *m, const char *name, const mux_session_stats *final);
/* A HELLO was refused with |reason| (a MUX_CODE name such as "NAME_TAKEN"; at most
 * METRICS_MAX_REASONS distinct reasons are kept, later ones count as "OTHER"). */
void metrics_on_refused(metrics *m, const char *reason);
/* A public request for |name| (NULL = not attributable) was refused by a rate limit. */
void metrics_on_rate_limited(metrics *m, const char *name);
/* A public request for |name| was refused (503): its tunnel had MAX_STREAMS_PER_CLIENT streams open. */
void metrics_on_stream_refused(metrics *m, const char *name);
/* A request whose tunnel was lost before the response was sent again on another tunnel (safe retry). */
void metrics_on_retry(metrics *m);
/* A public reader was cut for taking no bytes for WRITE_TIMEOUT (response.c). */
void metrics_on_reader_stalled(metrics *m);
/* A request was answered 429 because its address sent wrong basic-auth credentials (security.c). */
void metrics_on_auth_throttled(metrics *m);
/* A public request finished (the access record). */
void metrics_on_request(metrics *m, const metrics_request_info *info, int64_t now_unix_ms);

/* Recomputes every client's rates from its counters plus |live| (|nlive| registered tunnels). */
void metrics_sample(metrics *m, const metrics_live *live, size_t nlive, int64_t now_ms);

/* Status class index (0..5) of an HTTP status. */
int metrics_status_class(int status);

/* Process-wide memory figures sampled by the caller when rendering. */
typedef struct {
    uint64_t response_bytes_held; /* response bytes held for public readers, all requests */
    uint64_t tunnels;             /* tunnel connections open (registered or not) */
} metrics_memory;

/*
 * Renders the Prometheus text exposition (format 0.0.4) into a malloc'ed NUL-terminated string
 * (*out, caller frees) of *outlen bytes. |live| lists the registered tunnels (may be empty);
 * |mem| (may be NULL) the memory gauges. Returns 0, or -1 when out of memory.
 */
int metrics_render_prometheus(const metrics *m, const metrics_live *live, size_t nlive, const metrics_memory *mem, char **out,
                              size_t *outlen);

#endif
