#!/usr/bin/python3
"""A tiny SOCKS5 forwarder (stdlib): every CONNECT, whatever its destination (kubectl sends the
host name NAME.DOMAIN unresolved), goes to 127.0.0.1:--to. It lets kubectl use a server URL of
http://NAME.DOMAIN:PORT (so the Host header routes through tunnelmux) without DNS. No auth."""
import argparse
import asyncio
import os
import struct
import sys


async def pipe(r, w):
    try:
        while True:
            b = await r.read(1 << 16)
            if not b:
                break
            w.write(b)
            await w.drain()
        if w.can_write_eof():
            w.write_eof()
    except (ConnectionError, OSError):
        w.close()


async def handle(r, w, to):
    try:
        ver, n = await r.readexactly(2)
        await r.readexactly(n)
        if ver != 5:
            w.close()
            return
        w.write(b"\x05\x00")
        ver, cmd, _, atyp = await r.readexactly(4)
        if atyp == 1:
            await r.readexactly(4)
        elif atyp == 3:
            await r.readexactly((await r.readexactly(1))[0])
        elif atyp == 4:
            await r.readexactly(16)
        await r.readexactly(2)
        if cmd != 1:
            w.write(b"\x05\x07\x00\x01" + bytes(6))
            w.close()
            return
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", to)
        except OSError:
            w.write(b"\x05\x05\x00\x01" + bytes(6))
            w.close()
            return
        w.write(b"\x05\x00\x00\x01" + bytes(4) + struct.pack("!H", 0))
        await w.drain()
        await asyncio.gather(pipe(r, uw), pipe(ur, w))
        uw.close()
        w.close()
    except (asyncio.IncompleteReadError, ConnectionError, OSError):
        w.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--to", type=int, required=True)
    ap.add_argument("--port-file", required=True)
    a = ap.parse_args()
    srv = await asyncio.start_server(lambda r, w: handle(r, w, a.to), "127.0.0.1", 0)
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.sockets[0].getsockname()[1])
    os.rename(tmp, a.port_file)
    await asyncio.Future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
