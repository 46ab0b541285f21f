"""How far Hugging Face's torchvision-backed processors are from ours, per family.

``normalize_frames`` (through ``frame_normalizer(settings, resize_mode=...,
dtype=torch.float32)``) reproduces Hugging Face's PIL image processors bit for bit.
The default image processors of transformers 5.x are torchvision-backed, and the
video processors (``LlavaNextVideoVideoProcessor``, ``LlavaOnevisionVideoProcessor``)
are torchvision only: they resize with ``torch.nn.functional.interpolate`` (bicubic,
antialias) and fuse the rescale into the mean and std, so they cannot match Pillow
exactly. This measures by how much, on decoded frames.

Stage A (this process, the environment of sfllava_ext): libx264 test videos at 640x360
and 1280x720 (moving gradients and boxes plus noise, so that every level appears),
decoded with ``load_video(path, num_frames=16)``; for each family the PIL processors'
base image (checked bit for bit against ours) and ours. The frames and the settings go
to a safetensors file in a temporary folder.

Stage B (a subprocess, ``--stage torchvision``, under ``--torchvision-python`` or the
``SFLLAVA_TORCHVISION_PYTHON`` environment variable, default this Python): the
torchvision image processors (base image only: the any-res tiles are out of scope)
and the video processors, built with the same settings, on the same frames; it
records the settings each processor used and its class defaults. sfllava_ext is not
imported there (it may be built for another torch).

Families, with the published checkpoints' base-image settings:
  next       CLIP-L/14 336: shortest edge 336, centre crop 336 x 336, CLIP mean and
             std, bicubic, 1/255. ``CLIPImageProcessor`` and the video processor
             crop (ours ``crop``); LLaVA-NeXT's base image is a resize to 336 x 336
             (ours ``squash``, SF-LLaVA's default).
  onevision  SigLIP 384: a resize to 384 x 384, mean and std 0.5, bicubic, 1/255
             (ours ``squash``; ``crop`` is the same there).

Per family x processor x resolution: max |ours - theirs| in normalised units and in
8-bit levels (the difference x std x 255), the mean in levels, the share of elements
that differ at all, whose 8-bit level differs, and by more than 1 and 2 levels; and
(unless ``--no-features``) the relative difference, max |a - b| / max |b|, of the demo
models' pooled vision features (random weights, ``SlowFastLlava.encode_pixels``) from
ours and from their pixels, beside what rounding ours to float16 moves them by.

    python benchmarks/processor_diff.py [--torchvision-python PY] [--frames 16] [--no-features]

Prints a table and writes benchmarks/results/processor_diff_cpu.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from _common import RESULTS, ROOT, machine_info, provenance, table, write_json

if TYPE_CHECKING:
    import torch

#: the committed result in benchmarks/results/, which report.py renders
RESULT = "processor_diff_cpu"
RESOLUTIONS = {"360p": (360, 640), "720p": (720, 1280)}
SETTING_KEYS = (
    "size",
    "crop_size",
    "do_center_crop",
    "image_mean",
    "image_std",
    "resample",
    "do_resize",
    "do_rescale",
    "rescale_factor",
    "do_normalize",
    "do_convert_rgb",
)
# name: (family, backend, kind, ours resize mode, index of the base image or None)
PROCESSORS: dict[str, tuple[str, str, str, str, int | None]] = {
    "CLIPImageProcessorPil": ("next", "pil", "image", "crop", None),
    "LlavaNextImageProcessorPil": ("next", "pil", "image", "squash", 0),
    "CLIPImageProcessor": ("next", "torchvision", "image", "crop", None),
    "LlavaNextImageProcessor": ("next", "torchvision", "image", "squash", 0),
    "LlavaNextVideoVideoProcessor": ("next", "torchvision", "video", "crop", None),
    "LlavaOnevisionImageProcessorPil": ("onevision", "pil", "image", "squash", 0),
    "LlavaOnevisionImageProcessor": ("onevision", "torchvision", "image", "squash", 0),
    "LlavaOnevisionVideoProcessor": ("onevision", "torchvision", "video", "squash", None),
}


def family_settings() -> dict[str, dict[str, Any]]:
    """The published checkpoints' base-image settings, from sfllava_ext's constants."""
    from sfllava_ext.constants import CLIP_MEAN, CLIP_STD
    from sfllava_ext.models.demo import ONEVISION_PROCESSOR

    common = {"do_resize": True, "do_rescale": True, "do_normalize": True}
    return {
        "next": {
            "size": {"shortest_edge": 336},
            "crop_size": {"height": 336, "width": 336},
            "do_center_crop": True,
            "image_mean": list(CLIP_MEAN),
            "image_std": list(CLIP_STD),
            "resample": 3,
            "rescale_factor": 1 / 255,
            "do_convert_rgb": True,
            **common,
        },
        "onevision": {**dict(ONEVISION_PROCESSOR), "do_center_crop": False, **common},
    }


# --------------------------------------------------------------------- test videos


def make_frame(width: int, height: int, t: int, rng: np.random.Generator) -> np.ndarray:
    """Frame ``t``: panning gradients over the full range in each channel, two moving
    boxes and a moving disc, plus uniform noise of +-40 levels; uint8 (H, W, 3)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = 4.0 * t
    r = 255.0 * ((xx + phase) % width) / width
    g = 255.0 * ((yy + 0.5 * phase) % height) / height
    b = 127.5 + 127.5 * np.sin((xx + yy + phase) / 37.0)
    img = np.stack([r, g, b], axis=-1)
    box = min(width, height) // 5
    for k, colour in enumerate(((250, 20, 20), (20, 20, 250))):
        x0 = int((7 + 5 * k) * t + k * width // 3) % (width - box)
        y0 = int((3 + 2 * k) * t + k * height // 4) % (height - box)
        img[y0 : y0 + box, x0 : x0 + box] = colour
    cx, cy = (width // 2 + 6 * t) % width, height // 2
    img[(xx - cx) ** 2 + (yy - cy) ** 2 < (box // 2) ** 2] = (240, 240, 240)
    img += rng.uniform(-40, 40, img.shape).astype(np.float32)
    return np.ascontiguousarray(np.clip(img, 0, 255).astype(np.uint8))


def write_video(path: Path, width: int, height: int, num_frames: int, fps: int = 30) -> Path:
    """H.264 (libx264, yuv420p, CRF 18) of :func:`make_frame`, seeded."""
    import av

    rng = np.random.default_rng(width * height)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        for t in range(num_frames):
            frame = av.VideoFrame.from_ndarray(make_frame(width, height, t, rng), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


# ------------------------------------------------------------------------ processors


def processor_class(name: str):
    """The transformers class ``name`` (torchvision-backed or ``...Pil``)."""
    import transformers

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(transformers, name)


def _plain(value: Any) -> Any:
    """A processor attribute as JSON (SizeDicts to dicts of their set keys)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "__dataclass_fields__") or hasattr(value, "keys"):  # SizeDict
        keys = getattr(value, "keys", None)
        names = list(keys()) if callable(keys) else list(value.__dataclass_fields__)
        return {k: _plain(getattr(value, k)) for k in names if getattr(value, k) is not None}
    try:
        return int(value)  # enums (PILImageResampling)
    except (TypeError, ValueError):
        return repr(value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(float(a) - float(b)) < 1e-9
    return a == b or (not a and not b)  # None and False are both "off"


def run_processor(name: str, settings: dict[str, Any], frames: np.ndarray):
    """Float32 (T, 3, h, w) base images of ``frames`` (uint8 (T, H, W, 3)) through the
    processor ``name`` built with ``settings``, and a record of its settings."""
    _, backend, kind, _, index = PROCESSORS[name]
    cls = processor_class(name)
    proc = cls(**settings)
    if getattr(proc, "backend", "torchvision") != backend:  # e.g. a fallback to PIL
        raise RuntimeError(f"{name} runs on {proc.backend!r}, not {backend!r}: no torchvision?")
    if kind == "video":
        out = proc(videos=[frames], return_tensors="pt", do_sample_frames=False)
        pixels = out["pixel_values_videos"][0]
    else:
        pixels = proc(images=list(frames), return_tensors="pt")["pixel_values"]
        if index is not None:
            pixels = pixels[:, index]  # the base image; any-res tiles follow it
    used = {k: _plain(getattr(proc, k, None)) for k in SETTING_KEYS}
    defaults = {k: _plain(getattr(cls, k, None)) for k in SETTING_KEYS}
    record = {
        "class": f"{cls.__module__}.{cls.__name__}",
        "backend": getattr(proc, "backend", None),
        "used": used,
        "used_equals_passed": all(_same(used[k], settings.get(k)) for k in SETTING_KEYS),
        "class_defaults": defaults,
        "class_defaults_differing_from_checkpoint": {
            k: {"class": defaults[k], "checkpoint": settings.get(k)}
            for k in SETTING_KEYS
            if not _same(defaults[k], settings.get(k))
        },
    }
    return pixels.float().contiguous(), record


# -------------------------------------------------------------------- stage B (torchvision)


def stage_torchvision(args: argparse.Namespace) -> None:
    """Runs the torchvision processors on the frames of ``--input``, writes ``--output``."""
    import PIL
    import torch
    import torchvision
    import transformers
    from safetensors import safe_open
    from safetensors.torch import save_file

    torch.set_num_threads(args.threads)
    with safe_open(str(args.input), "pt") as f:
        meta = json.loads(f.metadata()["meta"])
        frames = {res: f.get_tensor(f"frames/{res}") for res in meta["resolutions"]}
    tensors, records, seconds = {}, {}, {}
    for name in meta["processors"]:
        family = PROCESSORS[name][0]
        start = time.perf_counter()
        for res, clip in frames.items():
            pixels, record = run_processor(name, meta["settings"][family], clip.numpy())
            tensors[f"{name}/{res}"] = pixels
        seconds[name] = round(time.perf_counter() - start, 3)
        records[name] = record
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "transformers": transformers.__version__,
        "pillow": PIL.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "seconds": seconds,
    }
    save_file(tensors, str(args.output), metadata={"meta": json.dumps({"env": info, **records})})


# ---------------------------------------------------------------------------- stage A


def compare(ours: torch.Tensor, theirs: torch.Tensor, mean, std) -> dict[str, Any]:
    """Differences of two normalised (T, 3, h, w) tensors, in normalised units and in
    8-bit levels; each side's levels are recovered as round(x * std * 255 + mean * 255)."""
    import torch

    scale = torch.tensor(std, dtype=torch.float64).view(1, 3, 1, 1) * 255
    offset = torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1) * 255
    a, b = ours.double(), theirs.double()
    diff = (a - b).abs()
    levels = diff * scale
    la, lb = a * scale + offset, b * scale + offset
    ia, ib = la.round(), lb.round()
    level_diff = (ia - ib).abs()
    same_level = level_diff == 0
    n = diff.numel()
    return {
        "shape": list(theirs.shape),
        "identical": bool(torch.equal(ours, theirs)),
        "max_abs": diff.max().item(),
        "max_levels": levels.max().item(),
        "mean_levels": levels.mean().item(),
        "pct_differ": 100.0 * (diff > 0).sum().item() / n,
        "pct_level_differs": 100.0 * (~same_level).sum().item() / n,
        "pct_over_1_level": 100.0 * (level_diff > 1).sum().item() / n,
        "pct_over_2_levels": 100.0 * (level_diff > 2).sum().item() / n,
        "max_level_diff": int(level_diff.max().item()),
        "max_abs_where_level_same": diff[same_level].max().item() if same_level.any() else 0.0,
        "max_off_level": max((la - ia).abs().max().item(), (lb - ib).abs().max().item()),
    }


def feature_models(threads: int) -> dict[str, Any]:
    """The demo model of each family, wrapped (random weights, float32)."""
    import torch

    from sfllava_ext import SlowFastLlava
    from sfllava_ext.models.demo import demo_parts

    torch.set_num_threads(threads)
    models = {}
    for family, demo in (("next", "next"), ("onevision", "onevision")):
        model, tokenizer, processor = demo_parts(demo, dtype=torch.float32)
        models[family] = SlowFastLlava(model.eval(), tokenizer, processor)
    return models


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b|."""
    return ((a - b).abs().max() / b.abs().max()).item()


def stage_main(args: argparse.Namespace) -> None:
    """Stage A: the videos, ours and the PIL processors here, stage B in a subprocess;
    prints the table and writes ``--output``."""
    import PIL
    import torch
    import transformers
    from safetensors.torch import load_file, save_file

    import sfllava_ext  # stage A only: stage B may run where it was built for another torch

    torch.set_num_threads(args.threads)
    settings = family_settings()
    python = (
        args.torchvision_python or os.environ.get("SFLLAVA_TORCHVISION_PYTHON") or sys.executable
    )
    tv_names = [n for n, p in PROCESSORS.items() if p[1] == "torchvision"]
    pil_names = [n for n, p in PROCESSORS.items() if p[1] == "pil"]

    with tempfile.TemporaryDirectory(prefix="processor_diff_") as tmp:
        tmp_dir = Path(tmp)
        frames, videos = {}, {}
        for res, (h, w) in RESOLUTIONS.items():
            path = write_video(tmp_dir / f"{res}.mp4", w, h, num_frames=args.video_frames)
            clip = sfllava_ext.load_video(path, num_frames=args.frames)
            frames[res] = clip.frames.contiguous()
            present = [int(torch.unique(frames[res][..., c]).numel()) for c in range(3)]
            videos[res] = {
                "size": [h, w],
                "encoded_frames": args.video_frames,
                "indices": list(clip.indices),
                "levels_present_per_channel": present,
            }

        # ours and the PIL processors, in this process
        ours: dict[tuple[str, str, str], torch.Tensor] = {}
        theirs: dict[tuple[str, str], torch.Tensor] = {}
        records: dict[str, Any] = {}
        for family, cfg in settings.items():
            for mode in ("crop", "squash"):
                norm = sfllava_ext.frame_normalizer(cfg, resize_mode=mode, dtype=torch.float32)
                for res, clip in frames.items():
                    ours[family, mode, res] = norm(clip)
        pil_seconds = {}
        for name in pil_names:
            start = time.perf_counter()
            for res, clip in frames.items():
                pixels, records[name] = run_processor(
                    name, settings[PROCESSORS[name][0]], clip.numpy()
                )
                theirs[name, res] = pixels
            pil_seconds[name] = round(time.perf_counter() - start, 3)

        # the torchvision processors, in a subprocess
        inp, outp = tmp_dir / "frames.safetensors", tmp_dir / "torchvision.safetensors"
        meta = {"resolutions": list(frames), "settings": settings, "processors": tv_names}
        save_file(
            {f"frames/{res}": clip for res, clip in frames.items()},
            str(inp),
            metadata={"meta": json.dumps(meta)},
        )
        cmd = [python, str(Path(__file__).resolve()), "--stage", "torchvision"]
        cmd += ["--input", str(inp), "--output", str(outp), "--threads", str(args.threads)]
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        subprocess.run(cmd, check=True, env=env, cwd=str(ROOT))
        from safetensors import safe_open

        with safe_open(str(outp), "pt") as f:
            tv_meta = json.loads(f.metadata()["meta"])
        tv_env = tv_meta.pop("env")
        records.update(tv_meta)
        for key, pixels in load_file(str(outp)).items():
            name, res = key.split("/")
            theirs[name, res] = pixels

    models = None if args.no_features else feature_models(args.threads)
    feats: dict[Any, torch.Tensor] = {}

    def features(family: str, key: Any, pixels: torch.Tensor) -> torch.Tensor:
        if key not in feats:
            with torch.no_grad():
                feats[key] = models[family].encode_pixels(pixels).float()
        return feats[key]

    rows = []
    for name, (family, backend, kind, mode, _) in PROCESSORS.items():
        cfg = settings[family]
        for res in frames:
            row = {
                "family": family,
                "processor": name,
                "backend": backend,
                "kind": kind,
                "ours_mode": mode,
                "resolution": res,
                **compare(
                    ours[family, mode, res], theirs[name, res], cfg["image_mean"], cfg["image_std"]
                ),
            }
            if models is not None:
                a = features(family, (family, mode, res), ours[family, mode, res])
                b = features(family, (name, res), theirs[name, res])
                row["feature_shape"] = list(b.shape)
                row["feature_rel_diff"] = rel_diff(a, b)
            row["same_output_as"] = [
                other
                for other, spec in PROCESSORS.items()
                if other != name
                and spec[0] == family
                and torch.equal(theirs[other, res], theirs[name, res])
            ]
            rows.append(row)

    # for scale: the features of ours rounded to float16 (the pipeline's default dtype)
    fp16_reference = {}
    if models is not None:
        for family in settings:
            mode = "squash"
            for res in frames:
                a = features(family, (family, mode, res), ours[family, mode, res])
                with torch.no_grad():
                    b = models[family].encode_pixels(ours[family, mode, res].half().float())
                fp16_reference[f"{family}/{res}"] = rel_diff(b.float(), a)

    processors = {}
    for name, (family, backend, kind, mode, index) in PROCESSORS.items():
        base = "pixel_values" if index is None else f"pixel_values[:, {index}]"
        if kind == "video":
            base = "pixel_values_videos[0]"
        processors[name] = {
            "family": family,
            "backend": backend,
            "kind": kind,
            "ours_mode": mode,
            "compared": base,
            **records[name],
        }
    pil_exact = all(r["identical"] for r in rows if r["backend"] == "pil")

    print(
        f"processor differences from ours (float32), {args.frames} decoded frames per video; "
        "levels = |diff| x std x 255"
    )
    print(
        f"{'family':9} {'processor':31} {'ours':6} {'video':5} {'max|d|':>9} {'max lv':>7} "
        f"{'mean lv':>8} {'%differ':>8} {'%lv!=':>7} {'%>1lv':>8} {'%>2lv':>7}"
        + (f" {'feat rel':>9}" if models is not None else "")
    )
    for r in rows:
        line = (
            f"{r['family']:9} {r['processor']:31} {r['ours_mode']:6} {r['resolution']:5} "
            f"{r['max_abs']:9.2e} {r['max_levels']:7.3f} {r['mean_levels']:8.4f} "
            f"{r['pct_differ']:8.3g} {r['pct_level_differs']:7.3g} {r['pct_over_1_level']:8.3g} "
            f"{r['pct_over_2_levels']:7.3g}"
        )
        if models is not None:
            line += f" {r['feature_rel_diff']:9.2e}"
        print(line)
    print(f"ours == every PIL processor bit for bit: {pil_exact}")
    for r in rows:
        if r["kind"] == "video":
            same = ", ".join(r["same_output_as"]) or "none"
            print(f"{r['processor']} {r['resolution']}: the same output as {same}")
    if fp16_reference:
        print(
            "for scale, ours rounded to float16 moves the features by: "
            + ", ".join(f"{k} {v:.2e}" for k, v in fp16_reference.items())
        )
    print(
        f"stage B: torch {tv_env['torch']}, torchvision {tv_env['torchvision']}, "
        f"transformers {tv_env['transformers']}, Pillow {tv_env['pillow']}"
    )
    for name, p in processors.items():
        if p["class_defaults_differing_from_checkpoint"]:
            print(f"{name} class defaults differ from the checkpoint's settings:")
            for k, v in p["class_defaults_differing_from_checkpoint"].items():
                print(f"    {k}: class {v['class']!r}, checkpoint {v['checkpoint']!r}")
        if not p["used_equals_passed"]:
            print(f"{name} did NOT use the settings passed: {p['used']}")

    output = args.output or RESULTS / f"{RESULT}.json"
    path = write_json(
        output,
        {
            "benchmark": "processor_diff",
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_info(),
            "threads": args.threads,
            "frames": args.frames,
            "stage_a": {
                "transformers": transformers.__version__,
                "pillow": PIL.__version__,
                "pil_seconds": pil_seconds,
            },
            "stage_b": tv_env,
            "videos": videos,
            "settings": settings,
            "features": None
            if models is None
            else "demo models (random weights), SlowFastLlava.encode_pixels, float32; "
            "max |ours - theirs| / max |theirs|",
            "feature_rel_diff_fp16_pixels": fp16_reference,
            "processors": processors,
            "ours_equals_pil": pil_exact,
            "rows": rows,
        },
    )
    print(f"wrote {path}")


# ------------------------------------------------------------------ presentation
# What report.py collects from this module: ``render``, its section of
# docs/benchmarks.md (its plots, later, go here too). README.md's summary has no row
# of it.


def _pct(value: float) -> str:
    """A percentage in three significant digits, ``0`` for none."""
    return "0" if value == 0 else f"{value:.3g}%"


def _value(value) -> str:
    """A setting in words: sizes as ``h x w`` / ``shortest_edge S``, triples as a/b/c."""
    if isinstance(value, dict):
        if {"height", "width"} <= value.keys():
            return f"{value['height']} x {value['width']}"
        return ", ".join(f"{k} {v}" for k, v in value.items())
    if isinstance(value, list):
        return "/".join(f"{v:g}" for v in value)
    return str(value)


def _settings(used: dict) -> str:
    """A processor's settings in one line: size, crop, mean / std, resample, rescale."""
    size = _value(used.get("size") or {})
    crop = f"crop {_value(used['crop_size'])}" if used.get("do_center_crop") else "no crop"
    mean, std = _value(used["image_mean"]), _value(used["image_std"])
    rescale = f"1/{1 / used['rescale_factor']:.0f}" if used.get("do_rescale") else "no rescale"
    return f"size {size}; {crop}; mean {mean}; std {std}; resample {used['resample']}; {rescale}"


def render(result: dict) -> list[str]:
    """The section of docs/benchmarks.md (markdown lines, heading included)."""
    b = result["stage_b"]
    features = any("feature_rel_diff" in r for r in result["rows"])
    out = [
        '<a id="processor-diff"></a>',
        "## Preprocessing against Hugging Face's processors: PIL and torchvision",
        "",
        *provenance(result),
        f"{result['frames']} decoded frames of libx264 clips (moving gradients, boxes and "
        "noise: all 256 levels in every channel), normalised to float32 by ours "
        "(`frame_normalizer(settings, resize_mode=...)`) and by Hugging Face's processors "
        "with the checkpoints' settings (below). The PIL processors ran in the same "
        f"process (transformers {result['stage_a']['transformers']}, Pillow "
        f"{result['stage_a']['pillow']}); the torchvision ones, the default classes of "
        "transformers 5 and the only video processors, in a second environment (torch "
        f"{b['torch']}, torchvision {b['torchvision']}, transformers {b['transformers']}, "
        f"on the CPU: {b['cpu_capability']}). Image processors with any-res tiles are "
        "compared on their base image: LLaVA-NeXT's is a resize to 336 x 336, which is "
        "SF-LLaVA's `squash`; CLIP's processor and LLaVA-NeXT-Video's video processor take "
        "the shortest edge to 336 and crop (ours `crop`). *Levels*: the difference x std "
        "x 255; each side's 8-bit level is recovered as `round(value * std * 255 + mean * "
        "255)`. *Differ*: elements not "
        "bit for bit equal; *level differs*: a different 8-bit level; *> 1* / *> 2*: by "
        "more than 1 or 2 levels. Ours equals every PIL processor bit for bit: "
        f"{'yes' if result['ours_equals_pil'] else '**no**'}.",
        "",
    ]
    rows = []
    for r in result["rows"]:
        row = [
            r["family"],
            f"`{r['processor']}`",
            r["backend"],
            f"`{r['ours_mode']}`",
            r["resolution"],
            f"{r['max_abs']:.3g}",
            f"{r['max_levels']:.3g}",
            f"{r['mean_levels']:.3g}",
            _pct(r["pct_differ"]),
            _pct(r["pct_level_differs"]),
            _pct(r["pct_over_1_level"]),
            _pct(r["pct_over_2_levels"]),
        ]
        if features:
            row.append(f"{r['feature_rel_diff']:.2g}")
        rows.append(row)
    header = ["family", "processor", "backend", "ours", "video", "max diff", "max levels"]
    header += ["mean levels", "differ", "level differs", "> 1", "> 2"]
    out += table(header + ["features"] * features, rows)
    same = {r["processor"]: r["same_output_as"] for r in result["rows"] if r["kind"] == "video"}
    arithmetic = max(
        r["max_abs_where_level_same"] for r in result["rows"] if r["backend"] == "torchvision"
    )
    out += [
        "Where the 8-bit levels agree the torchvision processors still differ by up to "
        f"{arithmetic:.2g} (their rescale is fused into the mean and std): that is most of "
        "*differ*; the rest is their resize (`interpolate`, bicubic, antialias, on uint8). "
        + " ".join(
            f"`{name}` gave the same output as `{', '.join(others)}`."
            for name, others in same.items()
            if others
        ),
        "",
    ]
    if features:
        ref = ", ".join(f"{k} {v:.2g}" for k, v in result["feature_rel_diff_fp16_pixels"].items())
        out += [
            "*Features*: the relative difference, max |a - b| / max |b|, of the pooled "
            "vision features of the demo models (random weights, float32, "
            "`SlowFastLlava.encode_pixels`) from ours and from the processor's pixels; for "
            f"scale, rounding ours to float16 moves them by {ref}.",
            "",
        ]
    rows = []
    for name, p in result["processors"].items():
        differ = p["class_defaults_differing_from_checkpoint"]
        defaults = "; ".join(
            f"{k} {_value(v['class'])} (checkpoint {_value(v['checkpoint'])})"
            for k, v in differ.items()
        )
        rows.append(
            [
                f"`{name}`",
                p["compared"],
                _settings(p["used"]),
                "yes" if p["used_equals_passed"] else "**no**",
                defaults or "-",
            ]
        )
    out += ["The settings each processor used, and its class defaults where they differ:", ""]
    out += table(["processor", "compared", "settings used", "as passed", "class defaults"], rows)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", default="main", choices=["main", "torchvision"])
    parser.add_argument(
        "--torchvision-python",
        default=None,
        help="the Python of stage B (default: $SFLLAVA_TORCHVISION_PYTHON, else this one)",
    )
    parser.add_argument("--input", type=Path, help="stage torchvision: the frames")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--video-frames", type=int, default=48)
    parser.add_argument("--no-features", action="store_true")
    args = parser.parse_args()
    if args.stage == "torchvision":
        stage_torchvision(args)
    else:
        stage_main(args)


if __name__ == "__main__":
    main()
