"""Connection-state flood: CONNS connections each send PER_CONN pipelined
HTTP requests of about 1 KiB to a server that reads everything and never
answers, so every request stays pending in the agent. Holds the
connections open for HOLD seconds, then closes them. Prints JSON.

usage: state_flood.py PORT CONNS PER_CONN HOLD"""
import json
import resource
import selectors
import socket
import sys
import threading
import time

port, conns, per_conn, hold = (int(a) for a in sys.argv[1:5])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * conns + 256)), hard))

server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", port))
server.listen(4096)
server.setblocking(False)
received = 0
stop = threading.Event()


def serve():
    """Accepts and reads every byte; never writes."""
    global received
    sel = selectors.DefaultSelector()
    sel.register(server, selectors.EVENT_READ)
    while not stop.is_set():
        for key, _ in sel.select(timeout=0.1):
            if key.fileobj is server:
                try:
                    conn, _ = server.accept()
                except BlockingIOError:
                    continue
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ)
            else:
                try:
                    data = key.fileobj.recv(1 << 16)
                except BlockingIOError:
                    continue
                if data:
                    received += len(data)
                else:
                    sel.unregister(key.fileobj)
                    key.fileobj.close()


thread = threading.Thread(target=serve, daemon=True)
thread.start()
pad = "p" * 960
request = f"GET /state-flood HTTP/1.1\r\nHost: flood\r\nX-Pad: {pad}\r\n\r\n".encode()
burst = request * per_conn
clients = []
for _ in range(conns):
    c = socket.create_connection(("127.0.0.1", port))
    c.sendall(burst)
    clients.append(c)
deadline = time.time() + 30
while received < conns * len(burst) and time.time() < deadline:
    time.sleep(0.05)
time.sleep(hold)
for c in clients:
    c.close()
time.sleep(0.5)
stop.set()
print(json.dumps({"conns": conns, "requests": conns * per_conn, "bytes_sent": conns * len(burst),
                  "bytes_received": received}))
