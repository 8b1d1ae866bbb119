/*
 * tunnelmux server — admission decisions (see admission.h). The order and the statuses are the
 * ones proxy_handle_request had inline before issue 17.
 */
#include "server/admission.h"

#include "mux/mux.h"

admission_verdict admission_check_request(const admission_request *r)
{
    if (r->shutting_down)
        return ADMIT_SHUTTING_DOWN;
    if (!r->route_ok)
        return ADMIT_HOST_NOT_SERVED;
    if (r->is_connect)
        return ADMIT_CONNECT;
    if (r->http2 && r->has_upgrade)
        return ADMIT_H2_UPGRADE;
    return ADMIT_OK;
}

admission_verdict admission_check_tunnel(int usable, int known)
{
    if (usable)
        return ADMIT_OK;
    return known ? ADMIT_TUNNEL_NOT_CONNECTED : ADMIT_NO_SUCH_TUNNEL;
}

admission_verdict admission_check_open(int32_t id)
{
    if (id > 0)
        return ADMIT_OK;
    if (id == 0)
        return ADMIT_OUT_OF_MEMORY;
    if (id == MUX_ERR_TOO_MANY_STREAMS)
        return ADMIT_TUNNEL_BUSY;
    if (id == MUX_ERR_HEADER_LIMIT)
        return ADMIT_HEADERS_TOO_LARGE;
    return ADMIT_TUNNEL_REFUSED;
}

int admission_status(admission_verdict v)
{
    switch (v) {
    case ADMIT_OK:
        return 0;
    case ADMIT_SHUTTING_DOWN:
    case ADMIT_OUT_OF_MEMORY:
    case ADMIT_TUNNEL_BUSY:
        return 503;
    case ADMIT_HOST_NOT_SERVED:
    case ADMIT_NO_SUCH_TUNNEL:
        return 404;
    case ADMIT_CONNECT:
        return 501;
    case ADMIT_H2_UPGRADE:
        return 400;
    case ADMIT_TUNNEL_NOT_CONNECTED:
    case ADMIT_TUNNEL_REFUSED:
        return 502;
    case ADMIT_HEADERS_TOO_LARGE:
        return 431;
    }
    return 500;
}

const char *admission_reason(admission_verdict v)
{
    switch (admission_status(v)) {
    case 0:
        return "";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 431:
        return "Request Header Fields Too Large";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    }
    return "Internal Server Error";
}

const char *admission_verdict_to_str(admission_verdict v)
{
    switch (v) {
    case ADMIT_OK:
        return "ok";
    case ADMIT_SHUTTING_DOWN:
        return "shutting_down";
    case ADMIT_HOST_NOT_SERVED:
        return "host_not_served";
    case ADMIT_CONNECT:
        return "connect";
    case ADMIT_H2_UPGRADE:
        return "h2_upgrade";
    case ADMIT_TUNNEL_NOT_CONNECTED:
        return "tunnel_not_connected";
    case ADMIT_NO_SUCH_TUNNEL:
        return "no_such_tunnel";
    case ADMIT_OUT_OF_MEMORY:
        return "out_of_memory";
    case ADMIT_TUNNEL_BUSY:
        return "tunnel_busy";
    case ADMIT_HEADERS_TOO_LARGE:
        return "headers_too_large";
    case ADMIT_TUNNEL_REFUSED:
        return "tunnel_refused";
    }
    return "unknown";
}
