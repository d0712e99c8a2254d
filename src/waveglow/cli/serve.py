"""``waveglow serve``: an HTTP vocoder service with a demo page (:func:`waveglow.serve.serve`)."""

from __future__ import annotations

import argparse

from ..backends import PRECISIONS
from .options import (
    Subparsers,
    add_count,
    add_shared,
    device,
    non_negative,
    passed_on,
    positive_number,
    subparser,
)

DESCRIPTION = """Serve a checkpoint over HTTP (needs the serve extra: pip install 'waveglow[serve]'):
POST /v1/synthesize (a mel: .npy/.pt bytes, a form upload or JSON {"mel": [[...]]}),
POST /v1/copy-synthesis and /v1/griffin-lim (an audio file), each returning a 16-bit wav
(stream=true: chunk by chunk as synthesized); GET / (demo page), /healthz, /metrics, /docs.
Concurrent requests are batched on one worker; SIGTERM finishes the requests in flight."""
EXAMPLES = """examples:
  waveglow serve -c demo
  waveglow serve -c waveglow.pt --port 8080 --max-batch 16 --max-seconds 30"""
# The options that are ServeConfig fields of the same name and unit.
SAME_AS_CONFIG = (
    "checkpoint", "host", "port", "precision", "device", "max_batch", "max_seconds", "queue",
    "chunk_frames", "threads", "stream_min_frames",
)  # fmt: skip


def add_serve_parser(subparsers: Subparsers) -> None:
    parser = subparser(
        subparsers, "serve", "an HTTP vocoder service with a demo page", DESCRIPTION, EXAMPLES, run
    )
    add_shared(parser, "checkpoint", help="checkpoint")
    parser.add_argument("--host", default="127.0.0.1", help="address (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="(default: %(default)s)")
    parser.add_argument(
        "--precision", choices=tuple(PRECISIONS), default="auto", help="(default: auto)"
    )
    add_shared(parser, "device", help="cpu, cuda... (default: cpu)")
    add_count(parser, "--max-batch", "(default: 8)", default=8)
    parser.add_argument(
        "--max-seconds", type=positive_number, default=60.0, help="longest audio (default: 60)"
    )
    add_count(parser, "--queue", "(default: 64)", default=64)
    parser.add_argument(
        "--max-body-mb", type=positive_number, default=32.0, help="body size limit (default: 32)"
    )
    help = "synthesis and streaming unit in mel frames (default: %(default)s, about 1.5 s)"
    add_count(parser, "--chunk-frames", help, default=128)
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        metavar="N",
        help="torch threads of the synthesis worker; 1 makes a batched request bit-exact with "
        "the same request alone (default: 0, torch's choice)",
    )
    help = "WebSocket streams: the fewest final frames synthesized at once (default: 16)"
    add_count(parser, "--stream-min-frames", help, default=16)
    parser.add_argument(
        "--api-key",
        default=None,
        metavar="KEY",
        help="require this key on every endpoint but /healthz (Authorization: Bearer KEY, "
        "X-API-Key or Basic); visible to other users in the process list: prefer "
        "--api-key-file or $WAVEGLOW_API_KEY. Keep a TLS proxy in front of a reachable service",
    )
    parser.add_argument(
        "--api-key-file", default=None, metavar="FILE", help="the key: the file's first line"
    )
    parser.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="let pages of this origin call the service from a browser (repeatable; default: none)",
    )
    parser.add_argument(
        "--debug-batch-delay", type=non_negative, default=0.0, help=argparse.SUPPRESS
    )


def run(args: argparse.Namespace) -> int:
    try:
        from ..serve import ServeConfig, serve
        from ..serve.app import create_app  # noqa: F401 - fails early without the serve extra
        from ..serve.auth import resolve_api_key
    except ImportError as missing:
        raise ValueError(
            f"serve needs the serve extra: pip install 'waveglow[serve]' ({missing})"
        ) from None
    device(args.device)
    config = ServeConfig(
        **passed_on(args, *SAME_AS_CONFIG),
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        batch_delay_s=args.debug_batch_delay,
        api_key=resolve_api_key(args.api_key, args.api_key_file),
        cors_origins=tuple(args.cors_origin),
    )
    return serve(config)
