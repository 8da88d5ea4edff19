#!/usr/bin/env python3
"""An HTTP/2 client (python-hyper h2, prior knowledge) that resets a stream
mid-response: GET /big.bin, RST_STREAM(CANCEL) after the first DATA frame,
then GET /hello.txt to the end on the same connection.

    h2_reset.py PORT
"""

import socket
import sys

import h2.config
import h2.connection
import h2.events


def main(port):
    sock = socket.create_connection(("127.0.0.1", port))
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    headers = [
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", f"127.0.0.1:{port}"),
        (":path", "/big.bin"),
        ("user-agent", "h2-reset/1"),
    ]
    conn.send_headers(1, headers, end_stream=True)
    sock.sendall(conn.data_to_send())
    reset = False
    done = False
    while not done:
        data = sock.recv(65536)
        if not data:
            break
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.DataReceived):
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                if event.stream_id == 1 and not reset:
                    reset = True
                    conn.reset_stream(1, error_code=8)
                    conn.send_headers(3, [h if h[0] != ":path" else (":path", "/hello.txt") for h in headers], end_stream=True)
            elif isinstance(event, h2.events.StreamEnded) and event.stream_id == 3:
                done = True
        sock.sendall(conn.data_to_send())
    conn.close_connection()
    sock.sendall(conn.data_to_send())
    sock.close()


if __name__ == "__main__":
    main(int(sys.argv[1]))
