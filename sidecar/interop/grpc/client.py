"""A gRPC client (grpcio) for the sidecar's interop tests; prints one JSON
line: answers per server name (unary), the streamed answers, and the status
of an error call.

    python3 client.py <host:port> <n> [service]

With WEFT_TAG set, every call carries the `weft-tag` metadata (pins a tagged
revision).
"""
import os
import json
import sys

import grpc

import stubs

pb, rpc = stubs.load()
target, n = sys.argv[1], int(sys.argv[2])
metadata = [("weft-tag", os.environ["WEFT_TAG"])] if os.environ.get("WEFT_TAG") else None
out = {"counts": {}, "errors": []}
with grpc.insecure_channel(target) as channel:
    if len(sys.argv) > 3:
        # A service nobody serves: call it by its full method name.
        call = channel.unary_unary(f"/{sys.argv[3]}/Say", request_serializer=pb.Text.SerializeToString,
                                   response_deserializer=pb.Text.FromString)
        try:
            call(pb.Text(text="x"), timeout=10)
        except grpc.RpcError as e:
            out["errors"].append({"code": e.code().name, "details": e.details()})
        print(json.dumps(out))
        sys.exit(0)
    stub = rpc.EchoStub(channel)
    for i in range(n):
        try:
            who = stub.Say(pb.Text(text=f"x{i}"), timeout=10, metadata=metadata).text.split(":")[0]
            out["counts"][who] = out["counts"].get(who, 0) + 1
        except grpc.RpcError as e:
            out["errors"].append({"code": e.code().name, "details": e.details()})
    out["stream"] = [t.text.split(":", 1)[1] for t in stub.Repeat(pb.RepeatRequest(text="s", count=5), timeout=10)]
    try:
        stub.Fail(pb.Text(text="thing"), timeout=10)
    except grpc.RpcError as e:
        out["fail"] = {"code": e.code().name, "details": e.details()}
print(json.dumps(out))
