/*
 * tunnelmux server — is a public connection still taking bytes?
 *
 * h2o 2.2.5 has no write timeout for public connections: a user that stops reading a response
 * (a zero TCP window, kept alive by its ACKs) held the response's stream, buffers and connection
 * for ever. The proxy's watchdog (response.c, WRITE_TIMEOUT) asks the kernel how many bytes the peer
 * has acknowledged; a count that does not move between two checks while h2o holds unwritten
 * response bytes means the reader stalled, and the connection is closed abortively.
 * Progress, not completion, is what counts: a slow reader that keeps acknowledging is never cut.
 */
#ifndef TM_SERVER_SOCKPROGRESS_H
#define TM_SERVER_SOCKPROGRESS_H

#include <stdint.h>

/* Bytes of the TCP socket |fd| the peer has acknowledged (Linux TCP_INFO tcpi_bytes_acked).
 * Returns 0, or -1 when the kernel cannot tell (not TCP, too old): then nothing is judged. */
int sockprogress_acked(int fd, uint64_t *acked);

/* Closes |fd|'s connection abortively without closing the descriptor (its owner, h2o, does that
 * when its pending write fails): RST instead of FIN, unsent bytes dropped, reads and writes end. */
void sockprogress_abort(int fd);

#endif
