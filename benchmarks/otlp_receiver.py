"""A loopback OTLP/HTTP trace receiver for the peers (runs in its own process).

``POST /v1/traces`` decodes the protobuf request with ``opentelemetry-proto``
(so a malformed export is noticed) and counts spans; ``GET /stats`` returns
``{"requests": n, "spans": n, "bytes": n}``. Nothing is stored.

Run: ``python -m benchmarks.otlp_receiver`` prints ``LISTENING http://127.0.0.1:PORT``.
"""

from __future__ import annotations

import gzip

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

_stats = {"requests": 0, "spans": 0, "bytes": 0, "errors": 0}
_OK = ExportTraceServiceResponse().SerializeToString()


async def traces(request: Request) -> Response:
    body = await request.body()
    if request.headers.get("content-encoding") == "gzip":
        body = gzip.decompress(body)
    message = ExportTraceServiceRequest()
    try:
        message.ParseFromString(body)
    except Exception:
        _stats["errors"] += 1
        return Response(b"", status_code=400)
    _stats["requests"] += 1
    _stats["bytes"] += len(body)
    _stats["spans"] += sum(len(ss.spans) for rs in message.resource_spans for ss in rs.scope_spans)
    return Response(_OK, media_type="application/x-protobuf")


async def stats(request: Request) -> Response:
    return JSONResponse(_stats)


def create_app() -> Starlette:
    return Starlette(routes=[
        Route("/v1/traces", traces, methods=["POST"]),
        Route("/stats", stats, methods=["GET"]),
    ])


if __name__ == "__main__":
    from benchmarks.servers import serve_forever

    serve_forever(create_app())
