#!/usr/bin/env python3
"""A recording TCP relay: clients connect to --listen, each connection is
relayed to --upstream on loopback, and every chunk read from either side is
written to --out as it passes, one line per chunk:

    <conn> <C|S> <microseconds since the relay started> <hex bytes>

`conn` numbers connections in accept order; `C` is client to server, `S`
server to client. Lines starting with '#' are comments; `# closed <conn>`
is written when both sides of a connection have closed. The relay runs
until SIGTERM or SIGINT. Used to record the golden PostgreSQL streams under
protocols/tests/data/pgsql/ (see tests/tests/pgsql_record.rs).
"""

import argparse
import selectors
import signal
import socket
import sys
import threading
import time

START = time.monotonic_ns()
LOCK = threading.Lock()


def record(out, conn, direction, data):
    micros = (time.monotonic_ns() - START) // 1000
    with LOCK:
        out.write(f"{conn} {direction} {micros} {data.hex()}\n")
        out.flush()


def relay(out, conn, client, upstream_port):
    server = socket.create_connection(("127.0.0.1", upstream_port))
    for s in (client, server):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sel = selectors.DefaultSelector()
    sel.register(client, selectors.EVENT_READ, ("C", server))
    sel.register(server, selectors.EVENT_READ, ("S", client))
    open_sides = 2
    try:
        while open_sides:
            for key, _ in sel.select():
                direction, peer = key.data
                data = key.fileobj.recv(65536)
                if not data:
                    sel.unregister(key.fileobj)
                    open_sides -= 1
                    try:
                        peer.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    continue
                record(out, conn, direction, data)
                peer.sendall(data)
    except OSError:
        pass
    finally:
        client.close()
        server.close()
        with LOCK:
            out.write(f"# closed {conn}\n")
            out.flush()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--upstream", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.listen))
    listener.listen(16)
    with open(args.out, "w") as out:
        out.write("# conn dir micros hex (C: client to server, S: server to client)\n")
        out.flush()
        conn = 0
        while True:
            client, _ = listener.accept()
            threading.Thread(
                target=relay, args=(out, conn, client, args.upstream), daemon=True
            ).start()
            conn += 1


if __name__ == "__main__":
    main()
