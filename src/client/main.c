/*
 * tunnelmux-client — options, lws context, signals, event loop (see client.h for the modules).
 */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "common/config.h"
#include "common/log.h"
#include "tls_membio.h"

/* The only global state: set by the signal handler, read by the loop. */
static volatile sig_atomic_t g_stop_signal;

static void on_signal(int sig)
{
    g_stop_signal = sig;
}

static int validate_schema(const cfg_option *opt, void *options, char *err, size_t errlen)
{
    const char *v = ((client_options *)options)->local_schema;
    if (v == NULL || v[0] == '\0' || strcmp(v, "http") == 0 || strcmp(v, "https") == 0)
        return 0;
    snprintf(err, errlen, "must be http, https or empty (detect)");
    return -1;
}

static int validate_url(const cfg_option *opt, void *options, char *err, size_t errlen)
{
    client_url u;
    const char *reason = "";
    const char *v = ((client_options *)options)->server_url;
    if (v != NULL && client_parse_url(v, &u, &reason) == 0)
        return 0;
    snprintf(err, errlen, "invalid URL (%s); expected ws://HOST[:PORT][/PATH] or wss://...", reason);
    return -1;
}

static int validate_level(const cfg_option *opt, void *options, char *err, size_t errlen)
{
    log_level l;
    const char *v = ((client_options *)options)->log_level;
    if (v != NULL && log_parse_level(v, &l) == 0)
        return 0;
    snprintf(err, errlen, "must be error, warn, info or debug");
    return -1;
}

static int validate_format(const cfg_option *opt, void *options, char *err, size_t errlen)
{
    log_format f;
    const char *v = ((client_options *)options)->log_format;
    if (v != NULL && log_parse_format(v, &f) == 0)
        return 0;
    snprintf(err, errlen, "must be text or json");
    return -1;
}

static int validate_host_header(const cfg_option *opt, void *options, char *err, size_t errlen)
{
    const char *v = ((client_options *)options)->host_header;
    if (v != NULL && v[0] != '\0' && http1_is_clean_value(v, strlen(v)) && strchr(v, ' ') == NULL)
        return 0;
    snprintf(err, errlen, "must be preserve, rewrite or a host value");
    return -1;
}

#define O(f) offsetof(client_options, f)
static const cfg_option options_table[] = {
    {"SERVER_URL", "server-url", CFG_STRING, "ws://127.0.0.1:8080", O(server_url), 0, 0,
     "tunnel endpoint ws[s]://HOST[:PORT][/PATH] (path default /_tunnel)", validate_url},
    {"CLIENT_ID", "client-id", CFG_STRING, NULL, O(client_id), 0, 0, "name to register (RFC 1123 label; required)",
     cfg_validate_dns_label},
    {"LOCAL_HOST", "local-host", CFG_STRING, "localhost", O(local_host), 0, 0, "host of the local service", NULL},
    {"LOCAL_PORT", "local-port", CFG_INT, "3000", O(local_port), 1, 65535, "port of the local service", NULL},
    {"LOCAL_SCHEMA", "local-schema", CFG_STRING, "", O(local_schema), 0, 0,
     "http, https, or empty to detect (TLS probe on the first connection)", validate_schema},
    {"MAX_MESSAGE_SIZE", "max-message-size", CFG_SIZE, "10485760", O(max_message_size), 65536, 1073741824,
     "largest WebSocket message accepted", NULL},
    {"READ_TIMEOUT", "read-timeout", CFG_DURATION, "120s", O(read_timeout_ms), 1, 86400000,
     "how long the local service may take to answer", NULL},
    {"WRITE_TIMEOUT", "write-timeout", CFG_DURATION, "30s", O(write_timeout_ms), 1, 86400000, "write timeout", NULL},
    {"RECONNECT_DELAY", "reconnect-delay", CFG_DURATION, "5s", O(reconnect_delay_ms), 0, 86400000,
     "pause before reconnecting to the server", NULL},
    {"MAX_RETRIES", "max-retries", CFG_INT, "-1", O(max_retries), -1, 1000000000,
     "reconnect attempts before giving up (-1 = forever)", NULL},
    {"MAX_STREAMS", "max-streams", CFG_INT, "100", O(max_streams), 1, 100000,
     "most concurrent requests and WebSockets the tunnel accepts (more are refused: the server answers 502)", NULL},
    {"AUTH_TOKEN", "auth-token", CFG_STRING, "", O(auth_token), 0, 0, "token sent in HELLO", NULL},
    {"HOST_HEADER", "host-header", CFG_STRING, "preserve", O(host_header), 0, 0,
     "Host towards the local service: preserve (public host), rewrite (LOCAL_HOST:LOCAL_PORT) or a value", validate_host_header},
    {"TLS_CA_FILE", "tls-ca-file", CFG_STRING, NULL, O(tls_ca_file), 0, 0, "extra CA file to verify a wss:// server", NULL},
    {"TLS_INSECURE", "tls-insecure", CFG_BOOL, "false", O(tls_insecure), 0, 0, "do not verify the wss:// server certificate", NULL},
    {"LOG_LEVEL", "log-level", CFG_STRING, "info", O(log_level), 0, 0, "error, warn, info or debug", validate_level},
    {"LOG_FORMAT", "log-format", CFG_STRING, "text", O(log_format), 0, 0, "text or json", validate_format},
};
#define N_OPTIONS (sizeof(options_table) / sizeof(options_table[0]))

static struct lws_protocols protocols[] = {
    {"tm-tunnel", tunnel_lws_callback, 0, CLIENT_IO_BUF, 0, NULL, CLIENT_IO_BUF},
    {"tm-upstream", upstream_lws_callback, 0, CLIENT_IO_BUF, 0, NULL, CLIENT_IO_BUF},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static int setup(client *c, const client_options *opt)
{
    char err[256];
    const char *reason = "";
    memset(c, 0, sizeof(*c));
    c->opt = opt;
    if (client_parse_url(opt->server_url, &c->url, &reason) != 0) {
        fprintf(stderr, "SERVER_URL: %s\n", reason);
        return -1;
    }
    int v6 = strchr(opt->local_host, ':') != NULL;
    snprintf(c->local_desc, sizeof(c->local_desc), v6 ? "[%s]:%lld" : "%s:%lld", opt->local_host, (long long)opt->local_port);
    if (strcmp(opt->host_header, "preserve") == 0) {
        c->host_mode = HTTP1_HOST_PRESERVE;
        c->host_value = strdup(c->local_desc); /* only when the head has no authority */
    } else if (strcmp(opt->host_header, "rewrite") == 0) {
        c->host_mode = HTTP1_HOST_VALUE;
        c->host_value = strdup(c->local_desc);
    } else {
        c->host_mode = HTTP1_HOST_VALUE;
        c->host_value = strdup(opt->host_header);
    }
    c->schema_fixed = opt->local_schema[0] != '\0';
    c->schema = strcmp(opt->local_schema, "https") == 0  ? LOCAL_SCHEMA_HTTPS
                : strcmp(opt->local_schema, "http") == 0 ? LOCAL_SCHEMA_HTTP
                                                         : LOCAL_SCHEMA_DETECT;
    c->scratch = malloc(CLIENT_SCRATCH);
    if (c->host_value == NULL || c->scratch == NULL) {
        fprintf(stderr, "out of memory\n");
        return -1;
    }
    if (c->url.tls) {
        c->tunnel_tls = tls_membio_ctx_new(!opt->tls_insecure, opt->tls_ca_file, err, sizeof(err));
        if (c->tunnel_tls == NULL) {
            fprintf(stderr, "%s\n", err);
            return -1;
        }
    }
    /* local services use self-signed certificates more often than not: no verification there */
    c->local_tls = tls_membio_ctx_new(0, NULL, err, sizeof(err));
    if (c->local_tls == NULL) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }

    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.pt_serv_buf_size = CLIENT_IO_BUF;
    info.user = c;
    info.timeout_secs = 20;
    info.connect_timeout_secs = 20;
    c->lws = lws_create_context(&info);
    if (c->lws == NULL) {
        fprintf(stderr, "cannot create the libwebsockets context\n");
        return -1;
    }
    return 0;
}

static void teardown(client *c)
{
    lws_sul_cancel(&c->reconnect_sul);
    if (c->lws != NULL)
        lws_context_destroy(c->lws);
    if (c->tunnel_tls != NULL)
        SSL_CTX_free(c->tunnel_tls);
    if (c->local_tls != NULL)
        SSL_CTX_free(c->local_tls);
    free(c->host_value);
    free(c->scratch);
}

int main(int argc, char **argv)
{
    client_options opt;
    char err[512];
    memset(&opt, 0, sizeof(opt));
    int r = cfg_parse(options_table, N_OPTIONS, &opt, argc, argv, "tunnelmux-client",
                      "tunnelmux-client: exposes a local HTTP service through a tunnelmux server", stdout, err, sizeof(err));
    if (r == 1) {
        cfg_free(options_table, N_OPTIONS, &opt);
        return 0;
    }
    if (r != 0) {
        fprintf(stderr, "tunnelmux-client: %s\n", err);
        cfg_free(options_table, N_OPTIONS, &opt);
        return 2;
    }
    if (opt.client_id == NULL || opt.client_id[0] == '\0') {
        fprintf(stderr, "tunnelmux-client: CLIENT_ID: required (a DNS label such as \"demo\")\n");
        cfg_free(options_table, N_OPTIONS, &opt);
        return 2;
    }
    log_level lvl = LOG_LVL_INFO;
    log_format fmt = LOG_FMT_TEXT;
    log_parse_level(opt.log_level, &lvl);
    log_parse_format(opt.log_format, &fmt);
    if (log_init(lvl, fmt, "client", NULL) != 0) {
        fprintf(stderr, "tunnelmux-client: cannot initialise logging\n");
        cfg_free(options_table, N_OPTIONS, &opt);
        return 2;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    client *c = calloc(1, sizeof(*c));
    if (c == NULL || setup(c, &opt) != 0) {
        if (c != NULL)
            teardown(c);
        free(c);
        cfg_free(options_table, N_OPTIONS, &opt);
        return 2;
    }
    LOG_INFO(LOG_EV_CONF, "tunnelmux-client %s: %s -> %s://%s as %s", TUNNELMUX_VERSION, c->url.hostport,
             c->schema == LOCAL_SCHEMA_HTTPS  ? "https"
             : c->schema == LOCAL_SCHEMA_HTTP ? "http"
                                              : "auto",
             c->local_desc, opt.client_id);
    tunnel_connect(c);
    while (!c->done) {
        if (g_stop_signal && !c->stopping) {
            LOG_INFO(LOG_EV_CONF, "signal %d: shutting down", (int)g_stop_signal);
            tunnel_shutdown(c);
            if (c->done)
                break;
        }
        if (c->stopping && client_now_ms() > c->stop_deadline_ms)
            break;
        if (lws_service(c->lws, 0) < 0)
            break;
    }
    int code = c->stopping ? 0 : c->exit_code;
    c->stopping = 1;
    teardown(c);
    free(c);
    cfg_free(options_table, N_OPTIONS, &opt);
    LOG_INFO(LOG_EV_CONF, "exit %d", code);
    return code;
}
