/*
 * tunnelmux client — getting an upstream its local connection (upstream_connect.c).
 */
#ifndef TM_CLIENT_UPSTREAM_CONNECT_H
#define TM_CLIENT_UPSTREAM_CONNECT_H

#include "upstream_stream.h"

/* Connecting failed for good: forget the detected schema (unless LOCAL_SCHEMA), reset the stream
 * with CONNECT_ERROR and |why|. */
void connect_failed(upstream *u, const char *why);

/* The connection to the current address failed before it was established (refused, unreachable):
 * try the next address of LOCAL_HOST, or fail the stream with CONNECT_ERROR when all were tried.
 * A refusal is final for that address: it is never retried with the other schema. */
void connect_next(upstream *u);

/* Gets |u| a local connection: an idle keep-alive one of the current schema, or a fresh one to the
 * address |u->attempt| (resolving LOCAL_HOST again when its list is older than
 * UPSTREAM_RESOLVE_TTL_MS), as a schema probe while the schema is not known. */
void u_connect(upstream *u);

/* The schema probe has its answer (|https| or not): remember it and open the real connection. */
void probe_decided(upstream *u, int https, const char *why);

/* A reused keep-alive connection closed before any response byte (the local service closed it
 * while it was idle): the request goes once more on a fresh connection. */
void retry_fresh(upstream *u);

#endif
