"""SlowFastLlava: SF-LLaVA on a Hugging Face LLaVA-NeXT model.

The data path, top to bottom (SPEC steps 1-8):

    video file --load_video--> uint8 frames (T, H, W, 3)
      --normalize_frames--> pixels (micro-batch, 3, 336, 336)
      --vision tower up to layer -2, CLS dropped--> (micro-batch, 576, 1024)
      --projector--> features (T, 576, D)
      --slowfast_pool(out=...)--> visual tokens written into the LLM's input embeddings
      --language model, greedy--> text
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .prompts import (
    PromptError,
    build_prompt,
    is_chatml,
    parse_choice,
    resolve_template,
    tokenize_around_image,
)
from .slowfast import (
    DEFAULT_SLOWFAST,
    SlowFastConfig,
    aggregate,
    num_visual_tokens,
    parse_aggregation,
)
from .timing import StageTimer
from .video import FrameBuffers, VideoClip, load_video
from .vision import TruncatedVisionTower, project_frames
from .yuv_to_rgb import Yuv420Frames

logger = logging.getLogger(__name__)

VideoInput = str | os.PathLike | VideoClip | torch.Tensor | np.ndarray
RESIZE_MODES = ("squash", "crop", "pad")


class NotLlavaNextError(TypeError):
    """The model (or checkpoint) is not a LLaVA-NeXT model."""


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    """fp16 on CUDA as published; bf16 on the CPU (a 7B model in fp32 does not
    fit a 24 GiB machine, and CPUs have fast bf16 matmuls)."""
    return torch.float16 if device.type == "cuda" else torch.bfloat16


def available_memory(device: torch.device) -> int:
    """Bytes free for weights on ``device``."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import psutil

    return psutil.virtual_memory().available


def apply_rope_scaling(text_config, factor: float) -> None:
    """Dynamic NTK RoPE scaling (SPEC step 8: factor 2, 4096 -> 8192 context),
    on a config before the model is built."""
    if factor is None or factor <= 1:
        return
    params = dict(getattr(text_config, "rope_parameters", None) or {})
    theta = params.get("rope_theta", getattr(text_config, "rope_theta", 10000.0))
    params.update({"rope_type": "dynamic", "factor": float(factor), "rope_theta": theta})
    text_config.rope_parameters = params


def _as_llava_next(model: Any) -> nn.Module:
    inner = getattr(model, "model", None)
    parts = ("vision_tower", "multi_modal_projector", "language_model")
    if (
        not isinstance(model, nn.Module)
        or inner is None
        or not all(hasattr(inner, p) for p in parts)
        or not hasattr(model, "lm_head")
    ):
        raise NotLlavaNextError(
            f"model must be a LlavaNextForConditionalGeneration (with model.vision_tower, "
            f".multi_modal_projector, .language_model and lm_head), got {type(model).__name__}"
        )
    return model


@dataclass(frozen=True)
class _Item:
    """One (video, prompt) of a batch, tokenized."""

    frames: torch.Tensor | Yuv420Frames
    clip: VideoClip | None  # loaded here from a path: its buffer goes back to the pool
    before: list[int]
    after: list[int]
    num_visual: int

    @property
    def length(self) -> int:
        return len(self.before) + self.num_visual + len(self.after)


class SlowFastLlava:
    """Training-free video QA and video embedding with SF-LLaVA.

    Wrap a model already in memory with ``SlowFastLlava(model, tokenizer,
    image_processor)`` or load one with :meth:`from_pretrained`.

    Args:
        model: a ``LlavaNextForConditionalGeneration``.
        tokenizer: its tokenizer (needed for ``answer``/``choose``).
        image_processor: its image processor; without one, the size comes from
            the vision config and mean/std are CLIP's.
        slowfast: any published aggregation string (default the published
            ``slowfast-slow_10frms_spatial_1d_max_pool-fast_4x4``).
        num_frames: frames sampled from a video file (published: 50).
        resize_mode: ``squash`` (published), ``crop`` or ``pad``.
        backend: video decoding backend for paths (``auto``, ``pyav``, ``decord``).
        device: where to run; must be where the model is (default: the model's device).
        micro_batch: frames per vision-tower forward (bounds memory on long clips).
        profile: record per-stage latencies in ``last_timings`` (synchronises CUDA).

    Videos given as paths are decoded into memory reused from call to call
    (``frame_buffers``, a :class:`~sfllava_ext.video.FrameBuffers` that keeps at most
    1 GiB while idle; ``frame_buffers.clear()`` frees it).
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any = None,
        image_processor: Any = None,
        *,
        slowfast: str | SlowFastConfig = DEFAULT_SLOWFAST,
        num_frames: int = 50,
        resize_mode: str = "squash",
        backend: str = "auto",
        device: str | torch.device | None = None,
        micro_batch: int = 16,
        profile: bool = False,
    ):
        self.model = _as_llava_next(model)
        self.config = model.config
        param = next(model.parameters())
        if device is not None:
            wanted = torch.device(device)
            if wanted.type != param.device.type or (
                wanted.index is not None and wanted.index != param.device.index
            ):
                raise ValueError(
                    f"device {wanted} was requested but the model is on {param.device}; "
                    "move the model first (model.to(device))"
                )
        self.device = param.device
        self.dtype = param.dtype
        if resize_mode not in RESIZE_MODES:
            raise ValueError(
                f"resize_mode must be one of {', '.join(RESIZE_MODES)}, got {resize_mode!r}"
            )
        if not isinstance(num_frames, int) or num_frames < 1:
            raise ValueError(f"num_frames must be a positive int, got {num_frames!r}")
        if not isinstance(micro_batch, int) or micro_batch < 1:
            raise ValueError(f"micro_batch must be a positive int, got {micro_batch!r}")
        self.aggregation = parse_aggregation(slowfast)
        self.num_frames = num_frames
        self.resize_mode = resize_mode
        self.backend = backend
        self.micro_batch = micro_batch
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.profile = profile
        self.last_timings = StageTimer(self.device, enabled=False)
        self.frame_buffers = FrameBuffers()
        self._chatml: tuple[Any, bool] | None = None  # (tokenizer, is it ChatML)

        inner = model.model
        vc = self.config.vision_config
        self.tower = TruncatedVisionTower(
            inner.vision_tower,
            self.config.vision_feature_layer,
            self.config.vision_feature_select_strategy,
        )
        self.projector = inner.multi_modal_projector
        self.language_model = inner.language_model
        side = vc.image_size // vc.patch_size
        self.grid = (side, side)
        self.hidden_size = self.config.text_config.hidden_size
        self._normalize = self._make_normalizer(image_processor, (vc.image_size, vc.image_size))

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        slowfast: str | SlowFastConfig = DEFAULT_SLOWFAST,
        num_frames: int = 50,
        resize_mode: str = "squash",
        rope_scaling_factor: float = 2,
        backend: str = "auto",
        micro_batch: int = 16,
        profile: bool = False,
        **model_kwargs: Any,
    ) -> SlowFastLlava:
        """Loads model, tokenizer and image processor from a local folder (or a
        hub id where a network exists) and applies dynamic RoPE scaling.

        Defaults: CUDA when available, fp16 there and bf16 on the CPU. A model
        that will not fit the device's free memory fails before loading, with a
        MemoryError saying how much it needs.
        """
        from transformers import (
            AutoConfig,
            AutoImageProcessor,
            AutoTokenizer,
            LlavaNextForConditionalGeneration,
        )

        device = torch.device(device) if device is not None else default_device()
        dtype = dtype or default_dtype(device)
        config = AutoConfig.from_pretrained(name_or_path)
        if getattr(config, "model_type", None) != "llava_next":
            raise NotLlavaNextError(
                f"{name_or_path} is a '{getattr(config, 'model_type', '?')}' model, not llava_next"
            )
        apply_rope_scaling(config.text_config, rope_scaling_factor)
        check_fits(config, dtype, device)
        model = LlavaNextForConditionalGeneration.from_pretrained(
            name_or_path, config=config, dtype=dtype, **model_kwargs
        )
        model = model.to(device).eval()
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        try:
            image_processor = AutoImageProcessor.from_pretrained(name_or_path)
        except (OSError, ValueError) as exc:
            logger.warning(
                "no image processor in %s (%s); using the vision config", name_or_path, exc
            )
            image_processor = None
        return cls(
            model,
            tokenizer,
            image_processor,
            slowfast=slowfast,
            num_frames=num_frames,
            resize_mode=resize_mode,
            backend=backend,
            micro_batch=micro_batch,
            profile=profile,
        )

    def _make_normalizer(self, image_processor, default_size):
        from .preprocess import FrameNormalizer, frame_normalizer

        if image_processor is not None:
            return frame_normalizer(image_processor, resize_mode=self.resize_mode, dtype=self.dtype)
        # CLIP's mean and std are FrameNormalizer's defaults
        return FrameNormalizer(default_size, resize_mode=self.resize_mode, dtype=self.dtype)

    # ----------------------------------------------------------------- encoding

    def _frames(
        self, video: VideoInput, timer: StageTimer
    ) -> tuple[torch.Tensor | Yuv420Frames, VideoClip | None]:
        """uint8 (T, H, W, 3) frames of a path, a VideoClip or given frames; and, for a
        path, the clip loaded, whose buffer goes back to ``frame_buffers`` once the
        frames are normalised. On the CPU a path's frames stay YUV 4:2:0 planes where
        the video allows it (no RGB frames: normalisation converts rows in cache)."""
        if isinstance(video, (str, os.PathLike)):
            with timer("decode"):
                clip = load_video(
                    video,
                    self.num_frames,
                    backend=self.backend,
                    buffers=self.frame_buffers,
                    yuv420=self.device.type == "cpu",
                )
            return clip.frames, clip
        if isinstance(video, VideoClip):
            return video.frames, None
        if isinstance(video, np.ndarray):
            video = torch.from_numpy(video)
        if not isinstance(video, torch.Tensor):
            raise TypeError(
                "video must be a path, a VideoClip or uint8 frames (T, H, W, 3), "
                f"got {type(video).__name__}"
            )
        if video.dtype != torch.uint8:
            raise TypeError(f"video frames must be uint8 (T, H, W, 3), got dtype {video.dtype}")
        if video.dim() != 4 or video.shape[-1] != 3 or video.shape[0] == 0:
            raise ValueError(
                f"video frames must be (T, H, W, 3) with T >= 1, got {list(video.shape)}"
            )
        return video, None

    def _features_of(self, video: VideoInput, timer: StageTimer) -> torch.Tensor:
        """Projected features (T, N, D) of any video input."""
        frames, clip = self._frames(video, timer)
        try:
            return self._features(frames, timer)
        finally:
            self.frame_buffers.release(clip)

    @torch.inference_mode()
    def _features(self, frames: torch.Tensor | Yuv420Frames, timer: StageTimer) -> torch.Tensor:
        """uint8 frames -> projected features (T, N, D) on the model's device;
        frames cross to the GPU as uint8 (through pinned memory)."""
        if isinstance(frames, Yuv420Frames) and self.device.type != "cpu":
            frames = frames.to_rgb()  # YUV input is normalised on the CPU only
        if frames.device != self.device:
            if self.device.type == "cuda" and frames.device.type == "cpu":
                frames = frames.pin_memory().to(self.device, non_blocking=True)
            else:
                frames = frames.to(self.device)
        return self._project(lambda a, b: self._normalize(frames[a:b]), frames.shape[0], timer)

    @torch.inference_mode()
    def _pixel_features(self, pixel_values: torch.Tensor, timer: StageTimer) -> torch.Tensor:
        if (
            not isinstance(pixel_values, torch.Tensor)
            or pixel_values.dim() != 4
            or pixel_values.shape[1] != 3
        ):
            raise ValueError(
                "pixel_values must be a (T, 3, h, w) tensor, got "
                f"{getattr(pixel_values, 'shape', type(pixel_values).__name__)}"
            )
        if not pixel_values.is_floating_point():
            raise TypeError(f"pixel_values must be floating point, got {pixel_values.dtype}")
        pixels = pixel_values.to(self.device, self.dtype)
        return self._project(lambda a, b: pixels[a:b], pixels.shape[0], timer)

    def _project(self, pixels_of, num_frames: int, timer: StageTimer) -> torch.Tensor:
        """Features (T, N, D) of the pixels ``pixels_of(start, stop)`` returns."""
        features = torch.empty(
            (num_frames, self.grid[0] * self.grid[1], self.hidden_size),
            dtype=self.dtype,
            device=self.device,
        )
        return project_frames(
            pixels_of, num_frames, self.tower, self.projector, features, self.micro_batch, timer
        )

    def _pool(self, features: torch.Tensor, timer: StageTimer, out: torch.Tensor | None = None):
        with timer("pooling"):
            return aggregate(features, self.aggregation, grid=self.grid, out=out)

    def _timer(self) -> StageTimer:
        self.last_timings = StageTimer(self.device, enabled=self.profile)
        return self.last_timings

    @torch.inference_mode()
    def encode(self, video: VideoInput) -> torch.Tensor:
        """LLM-ready visual tokens of a video: ``(num_visual_tokens, hidden)``
        in the model's dtype, on its device.

        ``video``: a path (sampled with ``num_frames``), a VideoClip, or uint8
        frames (T, H, W, 3) used as given.
        """
        timer = self._timer()
        return self._pool(self._features_of(video, timer), timer)

    @torch.inference_mode()
    def encode_pixels(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`encode` from normalised pixels ``(T, 3, h, w)``."""
        timer = self._timer()
        return self._pool(self._pixel_features(pixel_values, timer), timer)

    def num_visual_tokens(self, num_frames: int) -> int:
        return num_visual_tokens(num_frames, self.grid, self.aggregation)

    # ------------------------------------------------------------ prompting

    def _require_tokenizer(self):
        if self.tokenizer is None:
            raise ValueError("a tokenizer is needed to answer questions; pass tokenizer=")
        return self.tokenizer

    def _template(self, prompt: str) -> str:
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
        tokenizer = self._require_tokenizer()
        # is_chatml reads the whole vocabulary: once per tokenizer, not per call
        if self._chatml is None or self._chatml[0] is not tokenizer:
            self._chatml = (tokenizer, is_chatml(tokenizer))
        return resolve_template(prompt, self._chatml[1])

    def _item(self, video: VideoInput, text: str, timer: StageTimer) -> _Item:
        ids = tokenize_around_image(self._require_tokenizer(), text)
        frames, clip = self._frames(video, timer)
        return _Item(frames, clip, ids.before, ids.after, self.num_visual_tokens(frames.shape[0]))

    @torch.inference_mode()
    def build_inputs(
        self, videos: Sequence[VideoInput], texts: Sequence[str]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The LLM input of a left-padded batch: ``inputs_embeds`` (B, L, hidden)
        allocated once, text embeddings gathered into their positions and the
        visual tokens written into theirs by the pooling kernel; and the
        attention mask (B, L)."""
        timer = self.last_timings
        items: list[_Item] = []
        try:
            for video, text in zip(videos, texts, strict=True):
                items.append(self._item(video, text, timer))
            return self._assemble(items, timer)
        finally:
            for item in items:  # on every path; a no-op for clips already released
                self.frame_buffers.release(item.clip)

    def _assemble(self, items: list[_Item], timer: StageTimer) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings and mask of tokenized items (see :meth:`build_inputs`)."""
        length = max(item.length for item in items)
        embed = self.language_model.get_input_embeddings()
        embeds = torch.zeros(
            (len(items), length, self.hidden_size), dtype=self.dtype, device=self.device
        )
        mask = torch.zeros((len(items), length), dtype=torch.long, device=self.device)
        for b, item in enumerate(items):
            start = length - item.length  # left padding
            mask[b, start:] = 1
            vis = start + len(item.before)
            self._embed_text(embed, item.before, embeds[b, start:vis])
            self._embed_text(embed, item.after, embeds[b, vis + item.num_visual :])
            features = self._features(item.frames, timer)
            self.frame_buffers.release(item.clip)  # its frames are normalised
            self._pool(features, timer, out=embeds[b, vis : vis + item.num_visual])
        return embeds, mask

    def _embed_text(self, embed: nn.Module, ids: list[int], out: torch.Tensor) -> None:
        if not ids:
            return
        index = torch.tensor(ids, dtype=torch.long, device=self.device)
        if type(embed) is nn.Embedding:  # gather straight into place
            torch.index_select(embed.weight, 0, index, out=out)
        else:  # scaled embeddings and the like
            out.copy_(embed(index))

    def _generate(self, embeds, mask, max_new_tokens: int, **generate_kwargs) -> list[str]:
        tokenizer = self._require_tokenizer()
        timer = self.last_timings
        streamer = _FirstTokenClock(timer)
        kwargs = dict(do_sample=False, num_beams=1, max_new_tokens=max_new_tokens)
        if tokenizer.pad_token_id is not None:
            kwargs["pad_token_id"] = tokenizer.pad_token_id
        elif tokenizer.eos_token_id is not None:
            kwargs["pad_token_id"] = tokenizer.eos_token_id
        kwargs.update(generate_kwargs)
        with timer("prefill+generation"):
            streamer.start()
            ids = self.model.generate(
                inputs_embeds=embeds, attention_mask=mask, streamer=streamer, **kwargs
            )
        streamer.split()
        return [text.strip() for text in tokenizer.batch_decode(ids, skip_special_tokens=True)]

    def _batch(self, videos, questions) -> tuple[list, list, bool]:
        single = not isinstance(questions, (list, tuple))
        if single:
            return [videos], [questions], True
        if not isinstance(videos, (list, tuple)) or len(videos) != len(questions):
            raise ValueError("for a batch, pass equally long lists of videos and questions")
        if not questions:
            raise ValueError("the batch is empty")
        return list(videos), list(questions), False

    @torch.inference_mode()
    def answer(
        self,
        video: VideoInput | Sequence[VideoInput],
        question: str | Sequence[str],
        *,
        prompt: str = "image_seq_v3",
        max_new_tokens: int = 256,
        **generate_kwargs: Any,
    ) -> str | list[str]:
        """Open-ended answer (greedy, the published ``image_seq_v3`` prompt or its
        ChatML variant; ``prompt=`` also takes a template with one ``{question}``
        and one ``<image>``). Lists of videos and questions run as one batch and
        return a list. The prompt is not part of the returned text."""
        videos, questions, single = self._batch(video, question)
        template = self._template(prompt)
        texts = [build_prompt(template, q) for q in questions]
        self._timer()
        embeds, mask = self.build_inputs(videos, texts)
        answers = self._generate(embeds, mask, max_new_tokens, **generate_kwargs)
        return answers[0] if single else answers

    @torch.inference_mode()
    def choose(
        self,
        video: VideoInput,
        question: str,
        options: Sequence[str],
        *,
        max_new_tokens: int = 16,
        **generate_kwargs: Any,
    ) -> str | None:
        """Multiple choice with the published ``multiple_choice_allvideo_v4``
        prompt: returns the letter of the chosen option (``"A"``, ``"B"``, ...)
        parsed from the text after ``Best option:(``, or None when the model
        names no option."""
        template = self._template("multiple_choice_allvideo_v4")
        text = build_prompt(template, question, options)
        self._timer()
        embeds, mask = self.build_inputs([video], [text])
        generated = self._generate(embeds, mask, max_new_tokens, **generate_kwargs)[0]
        letter = parse_choice(generated, len(options))
        if letter is None:
            logger.warning("no option letter in the generated text %r", generated)
        return letter


class _FirstTokenClock:
    """A generate() streamer that splits prefill (up to the first new token)
    from the rest of generation in the stage timer."""

    def __init__(self, timer: StageTimer):
        import time

        self._now = time.perf_counter
        self.timer = timer
        self.t0 = self.first = None
        self._puts = 0

    def start(self) -> None:
        self.t0 = self._now()

    def put(self, value) -> None:
        # generate() first puts the prompt ids (empty with inputs_embeds), then
        # each new token: the second put is the first generated token.
        self._puts += 1
        if self._puts == 2:
            self.first = self._now()

    def end(self) -> None:
        pass

    def split(self) -> None:
        if not self.timer.enabled or self.t0 is None:
            return
        total = self.timer.seconds.pop("prefill+generation", 0.0)
        prefill = (self.first - self.t0) if self.first is not None else total
        self.timer.add("prefill", prefill)
        self.timer.add("generation", max(0.0, total - prefill))

    @property
    def time_to_first_token(self) -> float | None:
        return None if self.first is None else self.first - self.t0


def check_fits(config, dtype: torch.dtype, device: torch.device) -> None:
    """MemoryError before loading when the weights alone exceed free memory."""
    from transformers import LlavaNextForConditionalGeneration

    with torch.device("meta"):
        skeleton = LlavaNextForConditionalGeneration._from_config(config)
    needed = (
        sum(p.numel() for p in skeleton.parameters()) * torch.empty((), dtype=dtype).element_size()
    )
    free = available_memory(device)
    if needed > free:
        raise MemoryError(
            f"the model needs {needed / 2**30:.1f} GiB for its weights in {dtype} but only "
            f"{free / 2**30:.1f} GiB is free on {device}; use a smaller dtype or another device"
        )


__all__ = ["SlowFastLlava", "NotLlavaNextError", "PromptError", "apply_rope_scaling"]
