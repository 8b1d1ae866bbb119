/*
 * tunnelmux — the compression-probe policy (compress_policy.h): pure functions of a stream's
 * mux_compress_probe and the sizes the batch builder measured.
 */
#include "compress_policy.h"

mux_compress_verdict mux_compress_before(mux_compress_probe *p)
{
    if (p->incompressible && ++p->probe < (MUX_INCOMPRESSIBLE_PROBE << p->probe_shift))
        return MUX_COMPRESS_SKIP;
    p->probe = 0;
    return MUX_COMPRESS_LOOK;
}

int mux_compress_after_look(mux_compress_probe *p, int flat)
{
    if (!flat)
        return 1;
    mux_compress_note(p, 1);
    return 0;
}

void mux_compress_note(mux_compress_probe *p, int bad)
{
    if (!bad)
        p->probe_shift = 0;
    else if (p->incompressible && p->probe_shift < MUX_INCOMPRESSIBLE_PROBE_MAX_SHIFT)
        p->probe_shift++;
    p->incompressible = (uint8_t)bad;
}

int mux_compress_did_not_pay(size_t clen, size_t plain)
{
    return clen * 10 > plain * 9;
}

int mux_compress_too_small(size_t plain)
{
    return plain < MUX_COMPRESS_MIN_BODY;
}

size_t mux_compress_limit(size_t limit)
{
    return limit - (limit / 256 + 64);
}
