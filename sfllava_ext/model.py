"""SlowFastLlava: SF-LLaVA on a Hugging Face LLaVA-style model, as a short facade.

The data path, top to bottom, one owner per arrow (docs/method.md gives every number):

    video ----------- video.input.frames_of ---> uint8 frames (T, H, W, 3) or YUV planes
      --------------- encoder.VideoEncoder -----> normalise, vision tower, projector,
                                                  slow/fast pooling
      --------------- llm.assembly.assemble ----> inputs_embeds, visual tokens written
                                                  in place by the pooling kernel
      --------------- llm.runtime.LanguageModel -> text, whole or streamed

Loading lives in :mod:`sfllava_ext.models`, the prompts in :mod:`sfllava_ext.llm.prompts`,
many questions about one video in :mod:`sfllava_ext.session`.

Thread safety: one SlowFastLlava may serve several threads. Decoding and the vision
tower run concurrently; the language model runs one call at a time and the tokenizer
is shared under its own lock (:class:`~sfllava_ext.llm.runtime.LanguageModel` owns
both), and the frame-buffer pool has its own lock. ``last_timings`` is per thread.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .constants import DEFAULT_BACKEND, DEFAULT_NUM_FRAMES, DEFAULT_RESIZE_MODE
from .encoder.aggregation import SlowFastConfig, parse_aggregation
from .encoder.encoder import VideoEncoder
from .encoder.tower import TruncatedVisionTower
from .llm.assembly import PromptItem, assemble
from .llm.prompts import PromptError, build_prompt, parse_choice
from .llm.runtime import LanguageModel
from .llm.streaming import TextStream
from .models.families import family_of
from .models.loading import (
    NotLlavaNextError,
    apply_rope_scaling,
    as_llava_next,
    load_pretrained,
)
from .ops.checks import check_resize_mode
from .session.info import VideoInfo
from .session.session import VideoSession
from .utils.timing import StageTimer
from .video import FrameBuffers
from .video.frames import VideoClip
from .video.input import VideoInput, frames_of, load_for_device

logger = logging.getLogger(__name__)

__all__ = ["NotLlavaNextError", "PromptError", "SlowFastLlava", "apply_rope_scaling"]


class SlowFastLlava:
    """Training-free video QA and video embedding with SF-LLaVA.

    Wrap a model already in memory with ``SlowFastLlava(model, tokenizer,
    image_processor)`` or load one with :meth:`from_pretrained`.

    Args:
        model: a model of a supported family (:mod:`sfllava_ext.models.families`:
            ``llava_next``, ``llava_next_video``, ``llava_onevision``), picked by
            ``config.model_type``.
        tokenizer: its tokenizer (needed for ``answer``/``choose``).
        image_processor: its image processor; without one, the size comes from
            the vision config and mean/std are CLIP's.
        slowfast: any published aggregation string or a
            :class:`~sfllava_ext.SlowFastConfig`; None (the default) takes the
            family's (LLaVA-NeXT: the published
            ``slowfast-slow_10frms_spatial_1d_max_pool-fast_4x4``). The families' own
            poolings are ``onevision_video_pool`` and, for LLaVA-NeXT-Video only,
            ``next_video_pool`` (its ``vision_resampler`` before the projector).
        num_frames: frames sampled from a video file (published: 50).
        resize_mode: ``squash`` (published), ``crop`` or ``pad``.
        backend: video decoding backend for paths (``auto``, ``pyav``, ``decord``).
        device: where to run; must be where the model is (default: the model's device).
        micro_batch: frames per vision-tower forward (bounds memory on long clips).
        profile: record per-stage latencies in ``last_timings`` (synchronises CUDA).

    Raises:
        UnsupportedModelError: ``model`` is of no supported family, or lacks the
            LLaVA parts (``NotLlavaNextError`` is the same class).
        ValueError: a device other than the model's, an unknown aggregation or
            resize mode, ``next_video_pool`` on a model without a ``vision_resampler``,
            a num_frames or micro_batch below 1.

    Every public call (:meth:`encode`, :meth:`encode_pixels`, :meth:`build_inputs`,
    :meth:`answer`, :meth:`choose`, :meth:`stream`, and a session's questions) starts
    its own timings: ``last_timings`` is the :class:`~sfllava_ext.utils.timing.StageTimer` of
    the calling thread's latest call. Thread-safe (see the module's docstring). Videos
    given as paths are decoded into memory reused from call to call (``frame_buffers``, a
    :class:`~sfllava_ext.video.FrameBuffers` that keeps at most 1 GiB while idle;
    ``frame_buffers.clear()`` frees it).
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any = None,
        image_processor: Any = None,
        *,
        slowfast: str | SlowFastConfig | None = None,
        num_frames: int = DEFAULT_NUM_FRAMES,
        resize_mode: str = DEFAULT_RESIZE_MODE,
        backend: str = DEFAULT_BACKEND,
        device: str | torch.device | None = None,
        micro_batch: int = 16,
        profile: bool = False,
    ):
        self.model = as_llava_next(model)
        self.config = model.config
        self.family = family_of(self.config)
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
        check_resize_mode("SlowFastLlava", resize_mode)
        if not isinstance(num_frames, int) or num_frames < 1:
            raise ValueError(f"num_frames must be a positive int, got {num_frames!r}")
        if not isinstance(micro_batch, int) or micro_batch < 1:
            raise ValueError(f"micro_batch must be a positive int, got {micro_batch!r}")
        self.device = param.device
        self.dtype = param.dtype
        self.aggregation = parse_aggregation(
            self.family.default_slowfast if slowfast is None else slowfast
        )
        self.num_frames = num_frames
        self.resize_mode = resize_mode
        self.backend = backend
        self.micro_batch = micro_batch
        self.image_processor = image_processor
        self.profile = profile
        self.name_or_path: str | None = None  # set by from_pretrained
        self._timings = threading.local()
        self.frame_buffers = FrameBuffers()
        # the language model's side: tokenizer, lock, stop set, generation
        self.llm = LanguageModel(
            model, tokenizer, chat_format=functools.partial(self.family.chat_format, self.config)
        )

        self.encoder = VideoEncoder.from_llava(
            model,
            image_processor,
            self.aggregation,
            resize_mode,
            micro_batch,
            self.family.pre_projector(model, self.aggregation),
        )
        self.language_model = model.model.language_model

    @property
    def tokenizer(self) -> Any:
        """The tokenizer (``self.llm.tokenizer``; None: no questions, only encoding)."""
        return self.llm.tokenizer

    @tokenizer.setter
    def tokenizer(self, tokenizer: Any) -> None:
        self.llm.tokenizer = tokenizer

    @property
    def rope_limit(self) -> int | None:
        """The original context of the model's dynamic RoPE (None: no dynamic RoPE)."""
        return self.llm.rope_limit

    @property
    def last_timings(self) -> StageTimer:
        """The calling thread's latest call's timings (empty before its first call)."""
        timer = getattr(self._timings, "value", None)
        if timer is None:
            timer = self._timings.value = StageTimer(self.device, enabled=False)
        return timer

    def new_timings(self) -> StageTimer:
        """A fresh timer for one public call (on if ``profile`` is); it becomes the
        calling thread's :attr:`last_timings`."""
        timer = self._timings.value = StageTimer(self.device, enabled=self.profile)
        return timer

    # the encoder's parts, as attributes of the facade
    @property
    def tower(self) -> TruncatedVisionTower:
        """The vision tower, run up to its feature layer."""
        return self.encoder.tower

    @property
    def projector(self) -> nn.Module:
        return self.encoder.projector

    @property
    def grid(self) -> tuple[int, int]:
        """(H, W) of the tower's token grid."""
        return self.encoder.grid

    @property
    def hidden_size(self) -> int:
        """The language model's hidden size D."""
        return self.encoder.hidden_size

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        slowfast: str | SlowFastConfig | None = None,
        num_frames: int = DEFAULT_NUM_FRAMES,
        resize_mode: str = DEFAULT_RESIZE_MODE,
        rope_scaling_factor: float | None = None,
        backend: str = DEFAULT_BACKEND,
        micro_batch: int = 16,
        profile: bool = False,
        **model_kwargs: Any,
    ) -> SlowFastLlava:
        """Loads model, tokenizer and image processor from a local folder (or a
        hub id where a network exists) with its family's class, and dynamic RoPE
        scaling where its context calls for it, or as ``rope_scaling_factor`` says
        (:func:`sfllava_ext.models.loading.load_pretrained`).

        Defaults: CUDA when available, fp16 there and bf16 on the CPU. A model
        that will not fit the device's free memory fails before loading, with a
        MemoryError saying how much it needs; a checkpoint of another model type
        raises UnsupportedModelError, which lists the supported ones.
        """
        model, tokenizer, image_processor = load_pretrained(
            name_or_path,
            device=device,
            dtype=dtype,
            rope_scaling_factor=rope_scaling_factor,
            **model_kwargs,
        )
        sf = cls(
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
        sf.name_or_path = os.fspath(name_or_path)
        return sf

    # ----------------------------------------------------------------- encoding

    def load_video(self, path: str | os.PathLike) -> VideoClip:
        """Decode a video as :meth:`encode` does for a path: ``num_frames`` frames,
        into ``frame_buffers``, as YUV planes when the model is on the CPU. Give the
        memory back with ``frame_buffers.release(clip)`` once the clip is encoded."""
        return load_for_device(
            path, self.device, self.num_frames, backend=self.backend, buffers=self.frame_buffers
        )

    @torch.inference_mode()
    def encode(self, video: VideoInput) -> torch.Tensor:
        """LLM-ready visual tokens of a video: ``(num_visual_tokens, hidden)``
        in the model's dtype, on its device.

        ``video``: a path (sampled with ``num_frames``), a VideoClip, or uint8
        frames (T, H, W, 3) used as given (tensor or numpy array).

        Raises:
            FileNotFoundError, VideoDecodeError: an unreadable path.
            TypeError, ValueError: frames that are not uint8 (T, H, W, 3).
        """
        return self._encode(video, self.new_timings())[0]

    def fingerprint(self) -> dict[str, Any]:
        """What this model's visual tokens depend on, and nothing else
        (:meth:`~sfllava_ext.encoder.VideoEncoder.fingerprint` at ``num_frames``): a
        session file made under another fingerprint is refused."""
        return self.encoder.fingerprint(self.num_frames)

    @torch.inference_mode()
    def session(self, video: VideoInput) -> VideoSession:
        """Decodes and encodes ``video`` once (as :meth:`encode`) and returns a
        :class:`~sfllava_ext.VideoSession` that answers any number of questions about
        it, reusing a cached prompt prefix (see :mod:`sfllava_ext.session`).

        Raises:
            as :meth:`encode`.
        """
        tokens, clip = self._encode(video, self.new_timings())
        info = VideoInfo() if clip is None else VideoInfo.of_clip(clip, video=clip.path or None)
        return VideoSession(self, tokens, info)

    def _encode(self, video: VideoInput, timer: StageTimer):
        """Visual tokens of any video input, and its clip when it is a path or clip."""
        frames, loaded = self._frames(video, timer)
        try:
            features = self.encoder.features(frames, timer)
        finally:
            self.frame_buffers.release(loaded)
        clip = loaded if loaded is not None else video if isinstance(video, VideoClip) else None
        return self.encoder.pool(features, timer), clip

    @torch.inference_mode()
    def encode_pixels(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`encode` from normalised pixels ``(T, 3, h, w)`` (floating
        point; moved to the model's device and dtype)."""
        timer = self.new_timings()
        return self.encoder.pool(self.encoder.pixel_features(pixel_values, timer), timer)

    def num_visual_tokens(self, num_frames: int) -> int:
        """Visual tokens that ``num_frames`` frames make with this aggregation."""
        return self.encoder.num_tokens(num_frames)

    # ------------------------------------------------------------ prompting

    def prompt_template(self, prompt: str = "image_seq_v3") -> str:
        """The template ``prompt`` names for this model: a published prompt name, in
        its language model's chat format (Vicuna, the 34B's ChatML, Qwen2, Mistral or
        Llama-3: docs/method.md#family-prompts), or a user template with one
        ``{question}`` and one ``<image>``, returned as given.

        Raises:
            TypeError: ``prompt`` is not a str. ValueError: no tokenizer.
            PromptError: a user template without its placeholders.
        """
        return self.llm.template(prompt)

    @torch.inference_mode()
    def build_inputs(
        self, videos: Sequence[VideoInput], texts: Sequence[str]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The LLM input of a left-padded batch: ``inputs_embeds`` (B, L, hidden) in
        the model's dtype, allocated once, text embeddings gathered into their
        positions and the visual tokens written into theirs by the pooling kernel;
        and the attention mask (B, L), int64. Each text holds one ``<image>``.

        Raises:
            ValueError: videos and texts of different lengths, no tokenizer.
            PromptError: a text without exactly one ``<image>``.
        """
        return self._build_inputs(videos, texts, self.new_timings())

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
        return a list. The prompt is not part of the returned text.

        Raises:
            TypeError, PromptError: a question that is not a non-empty str.
            ValueError: a batch of unequal or empty lists.
        """
        videos, questions, single = _batch(video, question)
        template = self.prompt_template(prompt)
        texts = [build_prompt(template, q) for q in questions]
        timer = self.new_timings()
        embeds, mask = self._build_inputs(videos, texts, timer)
        answers = self._generate(embeds, mask, max_new_tokens, generate_kwargs, timer)
        return answers[0] if single else answers

    def stream(
        self,
        video: VideoInput,
        question: str,
        *,
        prompt: str = "image_seq_v3",
        max_new_tokens: int = 256,
        **generate_kwargs: Any,
    ) -> TextStream:
        """:meth:`answer`'s text as it is generated, piece by piece: the pieces joined
        are :meth:`answer`'s text. The video is decoded and encoded, and bad arguments
        raise, here, before any piece; closing the iterator early stops the generation."""
        template = self.prompt_template(prompt)
        text = build_prompt(template, question)
        settings = self.llm.generation_kwargs(max_new_tokens, generate_kwargs)
        timer = self.new_timings()
        embeds, mask = self._build_inputs([video], [text], timer)
        return self.llm.stream(embeds, settings, mask=mask, timer=timer)

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
        names no option.

        Raises:
            PromptError: fewer than two options, more than 26, an empty option.
        """
        template = self.prompt_template("multiple_choice_allvideo_v4")
        text = build_prompt(template, question, options)
        timer = self.new_timings()
        embeds, mask = self._build_inputs([video], [text], timer)
        generated = self._generate(embeds, mask, max_new_tokens, generate_kwargs, timer)[0]
        letter = parse_choice(generated, len(options))
        if letter is None:
            logger.warning("no option letter in the generated text %r", generated)
        return letter

    # ------------------------------------------------------------ internals

    def _generate(self, embeds, mask, max_new_tokens, overrides, timer) -> list[str]:
        """Greedy ``generate()`` (unless ``overrides`` say otherwise) from assembled
        inputs; the decoded new text of each row."""
        settings = self.llm.generation_kwargs(max_new_tokens, overrides)
        ids = self.llm.generate(embeds, settings, mask=mask, timer=timer)
        return [self.llm.decode(row) for row in ids]

    def _frames(self, video: VideoInput, timer: StageTimer):
        return frames_of(
            video,
            self.device,
            self.num_frames,
            backend=self.backend,
            buffers=self.frame_buffers,
            timer=timer,
        )

    def _build_inputs(
        self, videos: Sequence[VideoInput], texts: Sequence[str], timer: StageTimer
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self.llm.require_tokenizer()
        items: list[PromptItem] = []
        try:
            for video, text in zip(videos, texts, strict=True):
                ids = self.llm.tokenize(text)  # a bad prompt fails before decoding
                frames, clip = self._frames(video, timer)
                count = self.encoder.num_tokens(frames.shape[0])
                items.append(PromptItem(frames, clip, ids.before, ids.after, count))
            embed = self.llm.input_embeddings()
            return assemble(items, self.encoder, embed, self.frame_buffers, timer)
        finally:
            for item in items:  # on every path; a no-op for clips already released
                self.frame_buffers.release(item.clip)


def _batch(videos, questions) -> tuple[list, list, bool]:
    """(videos, questions, single) of one question or of a batch."""
    single = not isinstance(questions, (list, tuple))
    if single:
        return [videos], [questions], True
    if not isinstance(videos, (list, tuple)) or len(videos) != len(questions):
        raise ValueError("for a batch, pass equally long lists of videos and questions")
    if not questions:
        raise ValueError("the batch is empty")
    return list(videos), list(questions), False
