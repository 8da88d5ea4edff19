#!/usr/bin/env python3
"""A grpcio server and client for the HTTP/2 recordings (raw-bytes messages,
no generated code). Every size below is asserted by protocols/tests/http2.rs.

    grpc_demo.py server PORT
    grpc_demo.py client PORT
"""

import sys
import time
from concurrent import futures

import grpc


def unary(request, context):
    return request[::-1]


def server_stream(request, context):
    # request[0] messages of 10, 11, ... bytes.
    for i in range(request[0]):
        yield bytes([65 + i]) * (10 + i)


def client_stream(requests, context):
    total = sum(len(r) for r in requests)
    return total.to_bytes(4, "big")


def fail(request, context):
    context.abort(grpc.StatusCode.NOT_FOUND, "no such item: café 100%")


def endless(request, context):
    for _ in range(2000):
        yield b"x" * 100
        time.sleep(0.005)


def serve(port):
    handlers = grpc.method_handlers_generic_handler(
        "demo.Echo",
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
            "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
            "Fail": grpc.unary_unary_rpc_method_handler(fail),
            "Endless": grpc.unary_stream_rpc_method_handler(endless),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handlers,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("serving", flush=True)
    server.wait_for_termination()


def client(port):
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        assert channel.unary_unary("/demo.Echo/Unary")(b"hello grpc") == b"cprg olleh"
        got = list(channel.unary_stream("/demo.Echo/ServerStream")(bytes([5])))
        assert [len(m) for m in got] == [10, 11, 12, 13, 14], got
        total = channel.stream_unary("/demo.Echo/ClientStream")(
            iter([b"a" * 100, b"b" * 200, b"c" * 300])
        )
        assert total == (600).to_bytes(4, "big")
        try:
            channel.unary_unary("/demo.Echo/Fail")(b"item-42")
            raise AssertionError("Fail did not fail")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND, e
        call = channel.unary_stream("/demo.Echo/Endless")(b"")
        for i, _ in enumerate(call):
            if i == 2:
                call.cancel()
                break
        # Let the cancellation reach the server before the channel closes.
        time.sleep(0.3)


if __name__ == "__main__":
    {"server": serve, "client": client}[sys.argv[1]](int(sys.argv[2]))
