"""``realfake serve``: the HTTP service and web page of a trained model."""

from __future__ import annotations

import argparse

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
    parser.add_argument(
        "--host", action=_Given, default="127.0.0.1", help="address (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", action=_Given, type=_port, default=8000, help="port (default 8000)"
    )
    parser.add_argument(
        "--workers",
        action=_Given,
        type=positive_int,
        default=1,
        help="processes, each with its own model, under one supervisor (default 1)",
    )
    parser.add_argument(
        "--backend",
        action=_Given,
        choices=("auto", "torch", "onnx"),
        default="auto",
        help="auto (default): ONNX Runtime for .onnx files, torch otherwise",
    )
    parser.add_argument(
        "--device", action=_Given, type=device, default="cpu", help="cpu, cuda, cuda:1 ..."
    )
    parser.add_argument(
        "--max-body-mb",
        action=_Given,
        type=float,
        default=10.0,
        help="request body limit in MB (default 10)",
    )
    parser.add_argument(
        "--max-files",
        action=_Given,
        type=positive_int,
        default=16,
        help="images per request (default 16)",
    )
    parser.add_argument(
        "--max-pixels",
        action=_Given,
        type=positive_int,
        default=40_000_000,
        help="pixels an image may declare, checked before decoding (default 40000000)",
    )
    parser.add_argument(
        "--batch-wait-ms",
        action=_Given,
        type=float,
        default=2.0,
        help="how long a request waits for others to share its forward pass (default 2)",
    )
    parser.add_argument(
        "--max-batch",
        action=_Given,
        type=positive_int,
        default=64,
        help="images per forward pass (default 64)",
    )
    parser.add_argument(
        "--threads",
        action=_Given,
        type=positive_int,
        default=None,
        help="model threads per worker (default: the CPU count divided by --workers, at least 1)",
    )
    parser.add_argument(
        "--cors-origin",
        action=_GivenAppend,
        default=[],
        metavar="ORIGIN",
        help="allow browser pages of ORIGIN to call the API (repeatable; default: CORS off)",
    )
    parser.set_defaults(handler=_serve)


class _Given(argparse.Action):
    """Store the value and note that the option was given: options left out come from the
    REALFAKE_SERVE_* variables, then ServeSettings' defaults (what the help shows)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, values)
        namespace.given = {*getattr(namespace, "given", ()), self.dest}


class _GivenAppend(_Given):
    def __call__(self, parser, namespace, values, option_string=None) -> None:
        previous = getattr(namespace, self.dest, None)
        fresh = "given" not in vars(namespace) or self.dest not in namespace.given
        super().__call__(parser, namespace, [*([] if fresh else previous or []), values])


def settings_from(args: argparse.Namespace):
    """ServeSettings from the options given on the command line; the others from the
    environment (REALFAKE_SERVE_*, REALFAKE_API_KEY), then the defaults."""
    from realfake.serve.settings import MB, ServeSettings

    convert = {
        "max_body_mb": ("max_body_bytes", lambda mb: int(mb * MB)),
        "cors_origin": ("cors_origins", tuple),
    }
    given = {}
    for dest in sorted(getattr(args, "given", ())):
        field, to_setting = convert.get(dest, (dest, lambda v: v))
        given[field] = to_setting(getattr(args, dest))
    return ServeSettings(**given)


def _serve(args: argparse.Namespace) -> int:
    from realfake.serve.server import serve

    settings = settings_from(args)
    if settings.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {settings.host}: reachable from other machines")
    serve(args.model, settings)
    return 0
