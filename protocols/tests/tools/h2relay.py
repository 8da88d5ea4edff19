#!/usr/bin/env python3
"""Recording relay: a TCP proxy on loopback that saves both directions of
every connection it carries, with capture times, for the golden-stream tests
of sonde-protocols.

    h2relay.py --listen 18080 --upstream 127.0.0.1:18081 --out FILE [--note TEXT]

It stops on SIGTERM/SIGINT (or after --conns connections have closed) and
then writes FILE in the capture format the tests read:

    # sonde-capture v1
    # <note lines>
    <conn> c <ts_ns> <hex>     bytes the client sent, as one read returned them
    <conn> s <ts_ns> <hex>     bytes the server sent
    <conn> end <ts_ns>         both directions closed

`conn` numbers connections from 1 in accept order, `ts_ns` is nanoseconds
since the relay started (monotonic clock). Reads are recorded as they came,
so the recording keeps the real segmentation of each stack's writes.
"""

import argparse
import asyncio
import signal
import time


class Recorder:
    def __init__(self):
        self.t0 = time.monotonic_ns()
        self.lines = []
        self.next_conn = 1
        self.closed = 0

    def record(self, conn, direction, data):
        self.lines.append(f"{conn} {direction} {time.monotonic_ns() - self.t0} {data.hex()}")

    def end(self, conn):
        self.lines.append(f"{conn} end {time.monotonic_ns() - self.t0}")
        self.closed += 1


async def pump(reader, writer, recorder, conn, direction):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            recorder.record(conn, direction, data)
            writer.write(data)
            await writer.drain()
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        try:
            writer.write_eof()
        except (OSError, RuntimeError):
            writer.close()


async def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--note", action="append", default=[])
    ap.add_argument("--conns", type=int, default=0, help="stop after this many connections closed")
    args = ap.parse_args()
    host, port = args.upstream.rsplit(":", 1)
    recorder = Recorder()
    done = asyncio.Event()

    async def handle(client_reader, client_writer):
        conn = recorder.next_conn
        recorder.next_conn += 1
        server_reader, server_writer = await asyncio.open_connection(host, int(port))
        await asyncio.gather(
            pump(client_reader, server_writer, recorder, conn, "c"),
            pump(server_reader, client_writer, recorder, conn, "s"),
        )
        client_writer.close()
        server_writer.close()
        recorder.end(conn)
        if args.conns and recorder.closed >= args.conns:
            done.set()

    server = await asyncio.start_server(handle, "127.0.0.1", args.listen)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    print(f"relay 127.0.0.1:{args.listen} -> {args.upstream}", flush=True)
    async with server:
        await done.wait()
    with open(args.out, "w") as f:
        f.write("# sonde-capture v1\n")
        for note in args.note:
            f.write(f"# {note}\n")
        for line in recorder.lines:
            f.write(line + "\n")


if __name__ == "__main__":
    asyncio.run(main())
