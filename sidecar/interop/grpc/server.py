"""A gRPC server (grpcio) for the sidecar's interop tests: unary, server
streaming and an error method. Listens on $PORT (0: any free port) and
prints "ready <port>".

    PORT=0 python3 server.py <name>
"""
import os
import sys
from concurrent import futures

import grpc

import stubs

pb, rpc = stubs.load()
NAME = sys.argv[1]


class Echo(rpc.EchoServicer):
    def Say(self, request, context):
        return pb.Text(text=f"{NAME}:{request.text}")

    def Repeat(self, request, context):
        for i in range(request.count):
            yield pb.Text(text=f"{NAME}:{request.text}:{i}")

    def Fail(self, request, context):
        context.abort(grpc.StatusCode.NOT_FOUND, f"{NAME} has no {request.text}")


server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
rpc.add_EchoServicer_to_server(Echo(), server)
port = server.add_insecure_port(f"127.0.0.1:{os.environ.get('PORT', '0')}")
server.start()
print(f"ready {port}", flush=True)
server.wait_for_termination()
