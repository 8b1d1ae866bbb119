/* Unit tests for src/server/metrics.c: counters, reconnects, refusal reasons, histogram buckets,
 * rates, the recent ring and the Prometheus text exposition. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "server/metrics.h"

/* The value of one exact series line in |text| (-1 when absent). */
static double series(const char *text, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = text; p != NULL && *p != '\0';) {
        const char *nl = strchr(p, '\n');
        if (strncmp(p, key, kl) == 0 && p[kl] == ' ')
            return strtod(p + kl + 1, NULL);
        p = nl != NULL ? nl + 1 : NULL;
    }
    return -1;
}

static metrics_request_info req(const char *client, int status, uint64_t in, uint64_t out, double secs)
{
    metrics_request_info i = {.client = client,
                              .method = "GET",
                              .path = "/p",
                              .status = status,
                              .bytes_in = in,
                              .bytes_out = out,
                              .seconds = secs,
                              .stream_id = 1};
    return i;
}

START_TEST(test_counters_and_exposition)
{
    metrics *m = metrics_new();
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(metrics_on_registered(m, "alpha"), 0);
    ck_assert_int_eq(metrics_on_registered(m, "beta"), 0);
    metrics_request_info a = req("alpha", 200, 10, 100, 0.003);
    metrics_on_request(m, &a, 1000);
    a = req("alpha", 404, 0, 5, 0.2);
    metrics_on_request(m, &a, 1001);
    a = req("alpha", 503, 0, 7, 100.0);
    metrics_on_request(m, &a, 1002);
    a = req(NULL, 404, 0, 9, 0.0);
    metrics_on_request(m, &a, 1003);
    a = req("unknown", 200, 0, 0, 0.0); /* a name never registered: not a per-client series */
    metrics_on_request(m, &a, 1004);
    metrics_on_refused(m, "NAME_TAKEN");
    metrics_on_refused(m, "NAME_TAKEN");
    metrics_on_refused(m, "BAD\"REASON");
    metrics_on_rate_limited(m, "beta");

    metrics_live live[1];
    memset(live, 0, sizeof(live));
    live[0].name = "alpha";
    live[0].peer = "127.0.0.1:1";
    live[0].connected_since_unix_ms = 1500;
    live[0].stats.bytes_in = 1000;
    live[0].stats.bytes_out = 2000;
    live[0].stats.streams_active = 2;
    live[0].stats.streams_opened = 3;
    live[0].stats.flow_blocked_ms = 1500;
    live[0].stats.last_rtt_ms = 12;
    live[0].stats.min_rtt_ms = 9;
    live[0].stats.srtt_ms = 15;
    live[0].stats.stall_ms[MUX_STALL_CREDIT] = 2500;
    live[0].stats.stall_ms[MUX_STALL_SOCKET] = 40;
    char *text = NULL;
    size_t len = 0;
    ck_assert_int_eq(metrics_render_prometheus(m, live, 1, NULL, &text, &len), 0);
    ck_assert_uint_eq(strlen(text), len);
    ck_assert_double_eq(series(text, "tunnelmux_connected_clients"), 1);
    ck_assert_double_eq(series(text, "tunnelmux_requests_total{code=\"2xx\"}"), 2);
    ck_assert_double_eq(series(text, "tunnelmux_requests_total{code=\"4xx\"}"), 2);
    ck_assert_double_eq(series(text, "tunnelmux_unrouted_requests_total"), 2);
    ck_assert_double_eq(series(text, "tunnelmux_client_requests_total{client=\"alpha\",code=\"2xx\"}"), 1);
    ck_assert_double_eq(series(text, "tunnelmux_client_requests_total{client=\"alpha\",code=\"4xx\"}"), 1);
    ck_assert_double_eq(series(text, "tunnelmux_client_requests_total{client=\"alpha\",code=\"5xx\"}"), 1);
    ck_assert_double_eq(series(text, "tunnelmux_client_requests_total{client=\"beta\",code=\"2xx\"}"), 0);
    ck_assert_double_eq(series(text, "tunnelmux_client_request_bytes_total{client=\"alpha\",direction=\"in\"}"), 10);
    ck_assert_double_eq(series(text, "tunnelmux_client_request_bytes_total{client=\"alpha\",direction=\"out\"}"), 112);
    /* histogram is cumulative: 0.003 <= 0.005, 0.2 <= 0.25, 100 only in +Inf */
    ck_assert_double_eq(series(text, "tunnelmux_client_request_duration_seconds_bucket{client=\"alpha\",le=\"0.0025\"}"), 0);
    ck_assert_double_eq(series(text, "tunnelmux_client_request_duration_seconds_bucket{client=\"alpha\",le=\"0.005\"}"), 1);
    ck_assert_double_eq(series(text, "tunnelmux_client_request_duration_seconds_bucket{client=\"alpha\",le=\"0.25\"}"), 2);
    ck_assert_double_eq(series(text, "tunnelmux_client_request_duration_seconds_bucket{client=\"alpha\",le=\"30\"}"), 2);
    ck_assert_double_eq(series(text, "tunnelmux_client_request_duration_seconds_bucket{client=\"alpha\",le=\"+Inf\"}"), 3);
    ck_assert_double_eq(series(text, "tunnelmux_client_request_duration_seconds_count{client=\"alpha\"}"), 3);
    ck_assert_double_eq(series(text, "tunnelmux_client_connected{client=\"alpha\"}"), 1);
    ck_assert_double_eq(series(text, "tunnelmux_client_connected{client=\"beta\"}"), 0);
    ck_assert_double_eq(series(text, "tunnelmux_client_active_streams{client=\"alpha\"}"), 2);
    ck_assert_double_eq(series(text, "tunnelmux_client_rtt_seconds{client=\"alpha\"}"), 0.012);
    ck_assert_double_eq(series(text, "tunnelmux_client_rtt_min_seconds{client=\"alpha\"}"), 0.009);
    ck_assert_double_eq(series(text, "tunnelmux_client_rtt_smoothed_seconds{client=\"alpha\"}"), 0.015);
    ck_assert_double_eq(series(text, "tunnelmux_client_stream_stall_seconds_total{client=\"alpha\",cause=\"credit\"}"), 2.5);
    ck_assert_double_eq(series(text, "tunnelmux_client_stream_stall_seconds_total{client=\"alpha\",cause=\"peer\"}"), 0);
    ck_assert_double_eq(series(text, "tunnelmux_client_stream_stall_seconds_total{client=\"alpha\",cause=\"socket\"}"), 0.04);
    ck_assert_double_eq(series(text, "tunnelmux_client_flow_blocked_seconds_total{client=\"alpha\"}"), 1.5);
    ck_assert_double_eq(series(text, "tunnelmux_client_tunnel_bytes_total{client=\"alpha\",direction=\"out\"}"), 2000);
    ck_assert_double_eq(series(text, "tunnelmux_refusals_total{reason=\"NAME_TAKEN\"}"), 2);
    ck_assert_double_eq(series(text, "tunnelmux_refusals_total{reason=\"BAD\\\"REASON\"}"), 1); /* label escaped */
    ck_assert_double_eq(series(text, "tunnelmux_client_rate_limit_hits_total{client=\"beta\"}"), 1);
    ck_assert_double_eq(series(text, "tunnelmux_rate_limit_hits_total"), 1);
    ck_assert_ptr_null(strstr(text, "client=\"unknown\""));
    ck_assert_ptr_nonnull(strstr(text, "# TYPE tunnelmux_client_request_duration_seconds histogram\n"));
    free(text);

    /* the session ends: its counters stay, a reconnect is counted, totals never go backwards */
    metrics_on_tunnel_closed(m, "alpha", &live[0].stats);
    ck_assert_int_eq(metrics_on_registered(m, "alpha"), 1);
    live[0].stats.bytes_out = 50;
    live[0].stats.streams_opened = 1;
    ck_assert_int_eq(metrics_render_prometheus(m, live, 1, NULL, &text, &len), 0);
    ck_assert_double_eq(series(text, "tunnelmux_client_tunnel_bytes_total{client=\"alpha\",direction=\"out\"}"), 2050);
    ck_assert_double_eq(series(text, "tunnelmux_client_streams_total{client=\"alpha\"}"), 4);
    ck_assert_double_eq(series(text, "tunnelmux_client_reconnects_total{client=\"alpha\"}"), 1);
    ck_assert_double_eq(series(text, "tunnelmux_reconnects_total"), 1);
    ck_assert_double_eq(series(text, "tunnelmux_tunnels_accepted_total"), 3);
    free(text);

    /* memory: contexts, bytes held, and an active stream whose response is only buffered now */
    live[0].stats.streams_active = 0;
    live[0].stats.zstd_contexts = 2;
    live[0].requests_active = 3;
    live[0].response_bytes_held = 5000;
    metrics_on_stream_refused(m, "alpha");
    metrics_on_stream_refused(m, "alpha");
    metrics_on_stream_refused(m, NULL);
    metrics_memory mem = {.response_bytes_held = 7000, .tunnels = 4};
    ck_assert_int_eq(metrics_render_prometheus(m, live, 1, &mem, &text, &len), 0);
    ck_assert_double_eq(series(text, "tunnelmux_client_active_streams{client=\"alpha\"}"), 3);
    ck_assert_double_eq(series(text, "tunnelmux_client_response_bytes_held{client=\"alpha\"}"), 5000);
    ck_assert_double_eq(series(text, "tunnelmux_response_bytes_held"), 7000);
    ck_assert_double_eq(series(text, "tunnelmux_tunnel_connections"), 4);
    ck_assert_double_eq(series(text, "tunnelmux_zstd_contexts"), 2);
    ck_assert_double_eq(series(text, "tunnelmux_client_zstd_contexts{client=\"alpha\"}"), 2);
    ck_assert_double_eq(series(text, "tunnelmux_streams_refused_total"), 3);
    ck_assert_double_eq(series(text, "tunnelmux_client_streams_refused_total{client=\"alpha\"}"), 2);
    ck_assert_double_eq(series(text, "tunnelmux_client_streams_refused_total{client=\"beta\"}"), 0);
    free(text);
    metrics_free(m);
}
END_TEST

START_TEST(test_rates_and_recent_ring)
{
    metrics *m = metrics_new();
    metrics_on_registered(m, "alpha");
    metrics_live l = {.name = "alpha", .peer = "-"};
    metrics_sample(m, &l, 1, 1000);
    for (int i = 0; i < METRICS_RECENT + 6; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/r%d", i);
        metrics_request_info r = req("alpha", 200, 0, 0, 0.001);
        r.path = path;
        metrics_on_request(m, &r, 2000 + i);
    }
    l.stats.bytes_out = 4000;
    metrics_sample(m, &l, 1, 3000); /* 2 s later */
    metrics_client *c = metrics_client_find(m, "alpha");
    ck_assert_ptr_nonnull(c);
    ck_assert_double_eq_tol(c->rate_requests, (METRICS_RECENT + 6) / 2.0, 1e-9);
    ck_assert_double_eq_tol(c->rate_bytes_out, 2000.0, 1e-9);
    ck_assert_uint_eq(m->recent_count, METRICS_RECENT);
    /* newest is the last written; the oldest kept is number 6 */
    ck_assert_str_eq(m->recent[(m->recent_next + METRICS_RECENT - 1) % METRICS_RECENT].path, "/r69");
    ck_assert_str_eq(m->recent[m->recent_next].path, "/r6");
    metrics_free(m);
}
END_TEST

START_TEST(test_bounds)
{
    metrics *m = metrics_new();
    char name[64];
    memset(name, 'a', 63);
    name[63] = '\0';
    ck_assert_ptr_nonnull(metrics_client_get(m, name));
    char longer[80];
    memset(longer, 'b', 79);
    longer[79] = '\0';
    ck_assert_ptr_null(metrics_client_get(m, longer)); /* not a label: never tracked */
    for (int i = 0; i < METRICS_MAX_REASONS + 5; i++) {
        char r[16];
        snprintf(r, sizeof(r), "R%d", i);
        metrics_on_refused(m, r);
    }
    ck_assert_uint_eq(m->nrefusals, METRICS_MAX_REASONS);
    uint64_t sum = 0;
    for (size_t i = 0; i < m->nrefusals; i++)
        sum += m->refusals[i].count;
    ck_assert_uint_eq(sum, METRICS_MAX_REASONS + 5); /* nothing lost: extra reasons count as OTHER */
    ck_assert_str_eq(m->refusals[METRICS_MAX_REASONS - 1].reason, "OTHER");
    ck_assert_uint_eq(m->refusals[METRICS_MAX_REASONS - 1].count, 6);
    ck_assert_int_eq(metrics_status_class(0), 0);
    ck_assert_int_eq(metrics_status_class(99), 0);
    ck_assert_int_eq(metrics_status_class(101), 1);
    ck_assert_int_eq(metrics_status_class(599), 5);
    ck_assert_int_eq(metrics_status_class(600), 0);
    metrics_free(m);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_counters_and_exposition);
    tcase_add_test(tc, test_rates_and_recent_ring);
    tcase_add_test(tc, test_bounds);
    suite_add_tcase(s, tc);
    return s;
}

TM_CHECK_MAIN(make_suite)
