"""Generates the Python stubs of echo.proto (grpcio-tools) next to this file
on first use, so no generated code is committed."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def load():
    out = os.path.join(HERE, "gen")
    if not os.path.exists(os.path.join(out, "echo_pb2_grpc.py")):
        from grpc_tools import protoc

        os.makedirs(out, exist_ok=True)
        rc = protoc.main(["protoc", f"-I{HERE}", f"--python_out={out}", f"--grpc_python_out={out}", "echo.proto"])
        if rc != 0:
            sys.exit(f"protoc failed: {rc}")
    sys.path.insert(0, out)
    import echo_pb2
    import echo_pb2_grpc

    return echo_pb2, echo_pb2_grpc
