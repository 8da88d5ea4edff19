"""Exact-count HTTP/1.1 keep-alive load generator (loopback only).

Sends exactly COUNT requests to http://127.0.0.1:PORT/PATH over CONNS
connections spread across PROCS processes, paced to RATE req/s in total, and
waits for every response. Prints JSON: sent, ok, errors, seconds, rate.
Bounded: stops sending (and reports it) after MAX_SECONDS.
"""
import json
import multiprocessing as mp
import socket
import sys
import time


def worker(port, path, count, conns, rate, max_seconds, out):
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: sonde-bench\r\n\r\n".encode()
    socks = []
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        socks.append(s)
    bufs = [b""] * conns
    sent = ok = errors = 0
    start = time.perf_counter()
    interval = 1.0 / rate if rate > 0 else 0.0
    for i in range(count):
        now = time.perf_counter()
        if now - start > max_seconds:
            break
        due = start + i * interval
        if due > now:
            time.sleep(due - now)
        j = i % conns
        s = socks[j]
        try:
            s.sendall(request)
            sent += 1
            buf = bufs[j]
            while True:
                head_end = buf.find(b"\r\n\r\n")
                if head_end >= 0:
                    head = buf[:head_end].decode("latin-1")
                    length = 0
                    for line in head.split("\r\n")[1:]:
                        name, _, value = line.partition(":")
                        if name.strip().lower() == "content-length":
                            length = int(value)
                    total = head_end + 4 + length
                    if len(buf) >= total:
                        if head.startswith("HTTP/1.1 200"):
                            ok += 1
                        else:
                            errors += 1
                        bufs[j] = buf[total:]
                        break
                chunk = s.recv(65536)
                if not chunk:
                    raise ConnectionError("closed")
                buf += chunk
        except OSError:
            errors += 1
            socks[j] = socket.create_connection(("127.0.0.1", port))
            bufs[j] = b""
    elapsed = time.perf_counter() - start
    for s in socks:
        s.close()
    out.put((sent, ok, errors, elapsed))


def main():
    port, path, count, conns, procs, rate, max_seconds = sys.argv[1:8]
    port, count, conns, procs = int(port), int(count), int(conns), int(procs)
    rate, max_seconds = float(rate), float(max_seconds)
    out = mp.Queue()
    share = [count // procs + (1 if k < count % procs else 0) for k in range(procs)]
    ps = [
        mp.Process(target=worker, args=(port, path, share[k], max(1, conns // procs), rate / procs, max_seconds, out))
        for k in range(procs)
    ]
    for p in ps:
        p.start()
    results = [out.get() for _ in ps]
    for p in ps:
        p.join()
    sent = sum(r[0] for r in results)
    seconds = max(r[3] for r in results)
    print(json.dumps({
        "sent": sent,
        "ok": sum(r[1] for r in results),
        "errors": sum(r[2] for r in results),
        "seconds": seconds,
        "rate": sent / seconds if seconds else 0,
    }))


if __name__ == "__main__":
    main()
