"""SlowFastLlava: SF-LLaVA on a Hugging Face LLaVA-NeXT model, as a short facade.

The data path, top to bottom, one module per job (docs/method.md gives every number):

    video ----------- video_input.frames_of --> uint8 frames (T, H, W, 3) or YUV planes
      --------------- encoding.VideoEncoder ---> normalise, vision tower, projector,
                                                 slow/fast pooling
      --------------- assembly.assemble -------> inputs_embeds, visual tokens written
                                                 in place by the pooling kernel
      --------------- generation (generate) ---> text, whole or streamed

Loading lives in :mod:`sfllava_ext.loading`, the prompts in :mod:`sfllava_ext.prompts`,
many questions about one video in :mod:`sfllava_ext.session`.

Thread safety: one SlowFastLlava may serve several threads. Decoding and the vision
tower run concurrently; the language model runs one call at a time (``_lm_lock``: its
dynamic RoPE frequencies are module state), the tokenizer too (``_tokenizer_lock``:
fast tokenizers are not safe to share), and the frame-buffer pool has its own lock.
``last_timings`` is per thread.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from . import kv_cache
from .assembly import PromptItem, assemble
from .constants import DEFAULT_BACKEND, DEFAULT_NUM_FRAMES, DEFAULT_RESIZE_MODE
from .encoding import VideoEncoder
from .families import family_of
from .frames import VideoClip
from .generation import generation_kwargs, timed_generate
from .loading import (
    NotLlavaNextError,
    apply_rope_scaling,
    as_llava_next,
    load_pretrained,
)
from .ops._checks import check_resize_mode
from .prompts import (
    PromptError,
    build_prompt,
    parse_choice,
    resolve_template,
    tokenize_around_image,
)
from .session import VideoSession
from .slowfast import SlowFastConfig, parse_aggregation
from .streaming import TextStream, stream_generation
from .timing import StageTimer
from .video import FrameBuffers
from .video_input import VideoInput, frames_of, load_for_device
from .vision import TruncatedVisionTower

logger = logging.getLogger(__name__)

__all__ = ["NotLlavaNextError", "PromptError", "SlowFastLlava", "apply_rope_scaling"]


class SlowFastLlava:
    """Training-free video QA and video embedding with SF-LLaVA.

    Wrap a model already in memory with ``SlowFastLlava(model, tokenizer,
    image_processor)`` or load one with :meth:`from_pretrained`.

    Args:
        model: a model of a supported family (:mod:`sfllava_ext.families`:
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
    its own timings: ``last_timings`` is the :class:`~sfllava_ext.timing.StageTimer` of
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
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.profile = profile
        self.name_or_path: str | None = None  # set by from_pretrained
        self._timings = threading.local()
        self._lm_lock = threading.RLock()
        self._tokenizer_lock = threading.Lock()
        self.frame_buffers = FrameBuffers()
        self._chat: tuple[Any, str] | None = None  # (tokenizer, its chat format)

        self.encoder = VideoEncoder.from_llava(
            model,
            image_processor,
            self.aggregation,
            resize_mode,
            micro_batch,
            self.family.pre_projector(model, self.aggregation),
        )
        self.language_model = model.model.language_model
        self.rope_limit = kv_cache.dynamic_rope_limit(self.model)

    @property
    def last_timings(self) -> StageTimer:
        """The calling thread's latest call's timings (empty before its first call)."""
        timer = getattr(self._timings, "value", None)
        if timer is None:
            timer = self._timings.value = StageTimer(self.device, enabled=False)
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
        (:func:`sfllava_ext.loading.load_pretrained`).

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
        return self._encode(video, self._new_timings())[0]

    @torch.inference_mode()
    def session(self, video: VideoInput) -> VideoSession:
        """Decodes and encodes ``video`` once (as :meth:`encode`) and returns a
        :class:`~sfllava_ext.VideoSession` that answers any number of questions about
        it, reusing a cached prompt prefix (see :mod:`sfllava_ext.session`).

        Raises:
            as :meth:`encode`.
        """
        tokens, clip = self._encode(video, self._new_timings())
        info = {"frame_indices": [], "total_frames": None, "fps": None, "video": None}
        if clip is not None:
            info.update(
                frame_indices=list(clip.indices),
                total_frames=clip.total_frames,
                fps=clip.fps,
                video=clip.path or None,
            )
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
        timer = self._new_timings()
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
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
        tokenizer = self._require_tokenizer()
        # chat_format reads the whole vocabulary: once per tokenizer, not per call
        chat = self._chat
        if chat is None or chat[0] is not tokenizer:
            with self._tokenizer_lock:
                chat = self._chat = (tokenizer, self.family.chat_format(self.config, tokenizer))
        return resolve_template(prompt, chat[1])

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
        return self._build_inputs(videos, texts, self._new_timings())

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
        timer = self._new_timings()
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
        kwargs = generation_kwargs(self._require_tokenizer(), max_new_tokens, generate_kwargs)
        timer = self._new_timings()
        embeds, mask = self._build_inputs([video], [text], timer)

        def run(streamer, stopping):
            extra = list(kwargs.pop("stopping_criteria", None) or [])
            with self._lm_lock, torch.inference_mode():
                kv_cache.reset_dynamic_rope(self.model)
                return timed_generate(
                    lambda clock: self.model.generate(
                        inputs_embeds=embeds,
                        attention_mask=mask,
                        streamer=clock,
                        stopping_criteria=type(stopping)([*extra, *stopping]),
                        **kwargs,
                    ),
                    timer,
                    then=streamer,
                )

        return stream_generation(run, self._decode)

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
        timer = self._new_timings()
        embeds, mask = self._build_inputs([video], [text], timer)
        generated = self._generate(embeds, mask, max_new_tokens, generate_kwargs, timer)[0]
        letter = parse_choice(generated, len(options))
        if letter is None:
            logger.warning("no option letter in the generated text %r", generated)
        return letter

    # ------------------------------------------------------------ internals

    def _new_timings(self) -> StageTimer:
        """A fresh timer for one public call; it becomes this thread's ``last_timings``."""
        timer = self._timings.value = StageTimer(self.device, enabled=self.profile)
        return timer

    def _generate(self, embeds, mask, max_new_tokens, overrides, timer) -> list[str]:
        """Greedy ``generate()`` (unless ``overrides`` say otherwise) from assembled
        inputs, one language-model call at a time; the decoded new text of each row."""
        kwargs = generation_kwargs(self._require_tokenizer(), max_new_tokens, overrides)
        with self._lm_lock, torch.inference_mode():
            kv_cache.reset_dynamic_rope(self.model)
            ids = timed_generate(
                lambda clock: self.model.generate(
                    inputs_embeds=embeds, attention_mask=mask, streamer=clock, **kwargs
                ),
                timer,
            )
        return [self._decode(row) for row in ids]

    def _tokenize(self, text: str) -> tuple[list[int], list[int]]:
        """Ids before and after ``<image>`` (LLaVA's rule), under the tokenizer lock."""
        tokenizer = self._require_tokenizer()
        with self._tokenizer_lock:
            ids = tokenize_around_image(tokenizer, text)
        return ids.before, ids.after

    def _tokenize_text(self, text: str) -> list[int]:
        with self._tokenizer_lock:
            return list(self._require_tokenizer()(text).input_ids)

    def _decode(self, ids) -> str:
        """New token ids -> text, special tokens skipped, white space stripped."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        with self._tokenizer_lock:
            return self._require_tokenizer().decode(ids, skip_special_tokens=True).strip()

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
        self._require_tokenizer()
        items: list[PromptItem] = []
        try:
            for video, text in zip(videos, texts, strict=True):
                before, after = self._tokenize(text)  # a bad prompt fails before decoding
                frames, clip = self._frames(video, timer)
                count = self.encoder.num_tokens(frames.shape[0])
                items.append(PromptItem(frames, clip, before, after, count))
            embed = self.language_model.get_input_embeddings()
            return assemble(items, self.encoder, embed, self.frame_buffers, timer)
        finally:
            for item in items:  # on every path; a no-op for clips already released
                self.frame_buffers.release(item.clip)

    def _require_tokenizer(self):
        if self.tokenizer is None:
            raise ValueError("a tokenizer is needed to answer questions; pass tokenizer=")
        return self.tokenizer


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
