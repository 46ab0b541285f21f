"""``sfllava serve``: the OpenAI-compatible service (:mod:`sfllava_ext.serve`)."""

from __future__ import annotations

import argparse
import os

from ..serve.config import ServeConfig
from .options import add_family_flag, add_model_flags, build_model, dtype_of

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    serve = sub.add_parser("serve", help="an OpenAI-compatible HTTP service (the [serve] extra)")
    which = serve.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="a checkpoint folder (or hub id) of a supported family")
    which.add_argument("--demo", action="store_true", help="the built-in random demo model")
    add_family_flag(serve)
    serve.add_argument(
        "--engine",
        default="sfllava",
        choices=("sfllava", "vllm"),
        help="sfllava: this package's one-worker service; vllm: vLLM's OpenAI server with "
        "the SlowFast plugin (docs/vllm.md)",
    )
    serve.add_argument(
        "--allow-fetch",
        action="store_true",
        help="--engine vllm: let http(s) video URLs through, to --allowed-media-domains",
    )
    serve.add_argument(
        "--allowed-media-domains",
        default=None,
        help="--engine vllm, with --allow-fetch: the hosts videos may come from (comma-separated)",
    )
    serve.add_argument(
        "--allow-embeds",
        action="store_true",
        help="--engine vllm: accept precomputed visual tokens (video_embeds parts)",
    )
    serve.add_argument(
        "--max-model-len", type=int, default=None, help="--engine vllm: vLLM's context length"
    )
    serve.add_argument(
        "--enforce-eager",
        action="store_true",
        help="--engine vllm: no graph capture or compilation (starts in seconds)",
    )
    serve.add_argument("--host", default="127.0.0.1", help="default: this machine only")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--media-dir", default=None, help="the one folder file:// URLs may name")
    serve.add_argument(
        "--api-key", default=None, help="require this key (default: $SFLLAVA_API_KEY if set)"
    )
    serve.add_argument(
        "--allowed-hosts",
        default="",
        help="without --api-key, Host names served besides the bind address and "
        "localhost (comma-separated; '*': any)",
    )
    d = ServeConfig()
    serve.add_argument("--max-video-mb", type=float, default=d.max_video_mb)
    serve.add_argument(
        "--max-uploads", type=int, default=d.max_uploads, help="bodies over 1 MiB read at once"
    )
    serve.add_argument(
        "--max-connections", type=int, default=d.max_connections, help="open at once; then 503"
    )
    serve.add_argument(
        "--read-timeout-s", type=float, default=d.read_timeout_s, help="a silent client's limit"
    )
    serve.add_argument(
        "--job-timeout-s", type=float, default=d.job_timeout_s, help="one job's limit; then 504"
    )
    serve.add_argument("--max-duration-s", type=float, default=d.max_duration_s)
    serve.add_argument(
        "--max-pixels", type=int, default=d.max_pixels, help="of every decoded frame"
    )
    serve.add_argument(
        "--max-decode-mpx",
        type=float,
        default=d.max_decode_mpx,
        help="megapixels decoded for one video, every frame the decoder outputs",
    )
    serve.add_argument("--cache-gb", type=float, default=d.cache_gb, help="sessions kept, LRU")
    serve.add_argument(
        "--max-queue", type=int, default=d.max_queue, help="requests waiting; then 503"
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    add_model_flags(serve)


def run(args: argparse.Namespace) -> None:
    if args.engine == "vllm":
        from ..vllm_plugin.launch import run_vllm

        raise SystemExit(run_vllm(args, dtype_of(args.dtype)))
    vllm_only = {
        "--allow-fetch": args.allow_fetch,
        "--allowed-media-domains": args.allowed_media_domains is not None,
        "--allow-embeds": args.allow_embeds,
        "--max-model-len": args.max_model_len is not None,
        "--enforce-eager": args.enforce_eager,
    }
    given = [flag for flag, set_ in vllm_only.items() if set_]
    if given:
        raise ValueError(f"{', '.join(given)}: for --engine vllm only")
    from ..serve import require_serve_extra, serve

    require_serve_extra()  # before loading any model
    if args.backend == "decord":
        raise ValueError(
            "sfllava serve decodes with pyav, which enforces --max-pixels and "
            "--max-decode-mpx on every frame; decord cannot (--backend decord is refused)"
        )
    sf = build_model(args)
    model_id = sf.name_or_path if args.demo else os.path.basename(os.path.normpath(args.model))
    config = ServeConfig(
        host=args.host,
        port=args.port,
        media_dir=args.media_dir,
        api_key=args.api_key or os.environ.get("SFLLAVA_API_KEY") or None,
        allowed_hosts=tuple(args.allowed_hosts.split(",")),
        max_video_mb=args.max_video_mb,
        max_uploads=args.max_uploads,
        max_connections=args.max_connections,
        read_timeout_s=args.read_timeout_s,
        job_timeout_s=args.job_timeout_s,
        max_duration_s=args.max_duration_s,
        max_pixels=args.max_pixels,
        max_decode_mpx=args.max_decode_mpx,
        cache_gb=args.cache_gb,
        max_queue=args.max_queue,
        model_id=model_id,
    )
    serve(sf, config, log_level=args.log_level)
