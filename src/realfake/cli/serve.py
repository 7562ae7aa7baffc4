"""``realfake serve``: the HTTP service and web page of a trained model."""

from __future__ import annotations

import argparse
import os

from realfake.cli._common import add_model_argument, device, positive_int


def _port(text: str) -> int:
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: a port is 1 to 65535")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve a model over HTTP: /predict, /explain, /metrics and a page at /",
        description="FastAPI on uvicorn: POST /predict (images in multipart field 'files'), "
        "POST /predict/ (field 'data', the MLOps write-up's contract), POST /explain (Grad-CAM "
        "PNG), GET /health, /ready, /metadata, /metrics, /docs, and a page at / to drop images "
        "on. Listens on loopback unless --host says otherwise. Set REALFAKE_API_KEY to require "
        "that key in the X-API-Key header. The port and the model are checked before anything "
        "answers: a port in use or a model that does not load is one sentence and exit code 2. "
        "SIGTERM or Ctrl-C stops accepting connections, lets in-flight requests finish (up to "
        "10 s) and exits 0, with one worker or several; workers never outlive the command.",
    )
    add_model_argument(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=8000, help="port (default 8000)")
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="processes, each with its own model, under one supervisor (default 1)",
    )
    parser.add_argument(
        "--backend",
        choices=("auto", "torch", "onnx"),
        default="auto",
        help="auto (default): ONNX Runtime for .onnx files, torch otherwise",
    )
    parser.add_argument("--device", type=device, default="cpu", help="cpu, cuda, cuda:1 ...")
    parser.add_argument(
        "--max-body-mb", type=float, default=10.0, help="request body limit in MB (default 10)"
    )
    parser.add_argument(
        "--max-files", type=positive_int, default=16, help="images per request (default 16)"
    )
    parser.add_argument(
        "--max-pixels",
        type=positive_int,
        default=40_000_000,
        help="pixels an image may declare, checked before decoding (default 40000000)",
    )
    parser.add_argument(
        "--batch-wait-ms",
        type=float,
        default=2.0,
        help="how long a request waits for others to share its forward pass (default 2)",
    )
    parser.add_argument(
        "--max-batch", type=positive_int, default=64, help="images per forward pass (default 64)"
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="model threads per worker (default: the CPU count divided by --workers, at least 1)",
    )
    parser.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allow browser pages of ORIGIN to call the API (repeatable; default: CORS off)",
    )
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from realfake.serve.server import serve
    from realfake.serve.settings import MB, ServeSettings

    settings = ServeSettings(
        host=args.host,
        port=args.port,
        workers=args.workers,
        backend=args.backend,
        device=args.device,
        max_body_bytes=int(args.max_body_mb * MB),
        max_files=args.max_files,
        max_pixels=args.max_pixels,
        batch_wait_ms=args.batch_wait_ms,
        max_batch=args.max_batch,
        # From the environment, not a flag: a key on the command line is visible in `ps`.
        api_key=os.environ.get("REALFAKE_API_KEY") or None,
        cors_origins=tuple(args.cors_origin),
        threads=args.threads,
    )
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {args.host}: reachable from other machines")
    serve(args.model, settings)
    return 0
