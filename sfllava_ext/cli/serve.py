"""``sfllava serve``: the OpenAI-compatible service (:mod:`sfllava_ext.serve`)."""

from __future__ import annotations

import argparse
import os

from .options import add_family_flag, add_model_flags, build_model

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    serve = sub.add_parser("serve", help="an OpenAI-compatible HTTP service (the [serve] extra)")
    which = serve.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="a checkpoint folder (or hub id) of a supported family")
    which.add_argument("--demo", action="store_true", help="the built-in random demo model")
    add_family_flag(serve)
    serve.add_argument("--host", default="127.0.0.1", help="default: this machine only")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--media-dir", default=None, help="the one folder file:// URLs may name")
    serve.add_argument(
        "--api-key", default=None, help="require this key (default: $SFLLAVA_API_KEY if set)"
    )
    serve.add_argument("--max-video-mb", type=float, default=256)
    serve.add_argument("--max-duration-s", type=float, default=3600)
    serve.add_argument("--max-pixels", type=int, default=3840 * 2160)
    serve.add_argument("--cache-gb", type=float, default=4, help="sessions kept, LRU")
    serve.add_argument("--max-queue", type=int, default=64, help="requests waiting; then 503")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    add_model_flags(serve)


def run(args: argparse.Namespace) -> None:
    from ..serve import require_serve_extra, serve
    from ..serve.config import ServeConfig

    require_serve_extra()  # before loading any model
    sf = build_model(args)
    model_id = sf.name_or_path if args.demo else os.path.basename(os.path.normpath(args.model))
    config = ServeConfig(
        host=args.host,
        port=args.port,
        media_dir=args.media_dir,
        api_key=args.api_key or os.environ.get("SFLLAVA_API_KEY") or None,
        max_video_mb=args.max_video_mb,
        max_duration_s=args.max_duration_s,
        max_pixels=args.max_pixels,
        cache_gb=args.cache_gb,
        max_queue=args.max_queue,
        model_id=model_id,
    )
    serve(sf, config, log_level=args.log_level)
