"""SF-LLaVA as an lmms-eval model: ``lmms-eval --model sfllava`` (docs/lmms_eval.md).

lmms-eval finds it through the ``lmms_eval.models`` entry point ``sfllava`` of this
package (``pyproject.toml``), whose value, :func:`manifest`, names
:class:`SlowFastLlavaLMMS` as the model's *simple* implementation.

**Why the simple interface.** lmms-eval 0.7 has two: "simple" models get the task's
prompt as a string with the visuals beside it; "chat" models get the task's messages.
A model that declares a chat implementation has every task built as a
``ConfigurableMessagesTask``, whose ``construct_requests`` asserts that the task
generates ("Currently messages is used for generation only"): no ``multiple_choice``
or ``loglikelihood`` task can run on a chat model. SF-LLaVA has its own prompts (the
published templates, docs/method.md#prompts), into which the task's prompt goes as
the question; chat messages would buy nothing.

**What it answers.** One request is one task prompt about one video (or image folder),
given by the task's ``doc_to_visual``. Requests about the same video share one
:meth:`~sfllava_ext.SlowFastLlava.session`: the video is decoded and encoded once for
all its questions (and options). A video that cannot be read (missing, not a video)
does not stop the run: its generations are ``""`` and its log-likelihoods ``-inf``,
with a warning; lmms-eval scores them as it would any answer.

- ``generate_until``: the task prompt as the ``{question}`` of the ``prompt`` template
  (published ``image_seq_v3`` by default), greedy unless ``temperature`` > 0,
  at most ``max_new_tokens`` (256 when the task gives none), the text cut at the first
  of the task's ``until`` strings.
- ``loglikelihood``: the summed log-probability of the continuation's tokens after the
  same prompt (context tokenized alone; the continuation's tokens are those the whole
  text adds, as lm-evaluation-harness splits them), from one forward pass of the
  language model over the prompt, the video's visual tokens and the continuation:
  :meth:`SlowFastLlavaLMMS.log_likelihood`.
- ``generate_until_multi_round``: not supported (SF-LLaVA's prompts hold one question).

**Two lmms-eval 0.7.3 bugs, worked around here.**

1. *Results mangled into strings.* The evaluator passes every response through
   ``unwrap_generation_output``, which turns a ``(logprob, is_greedy)`` tuple into its
   ``str()``; scoring a ``multiple_choice`` task then fails on the string (its own
   ``dummy`` model too). A ``GenerationResult`` is passed through unchanged, so each
   log-likelihood result is returned as ``GenerationResult(text=(score, is_greedy))``.
2. *Multiple choice takes the lowest score* (``np.argmin`` in ``process_results``,
   upstream issue EvolvingLMMs-Lab/lmms-eval#370: lmms-eval's own models return a loss).
   Its ``perplexity`` aggregation, ``exp(-mean)``, expects log-probabilities instead.
   0.7.3 tells the two apart in the request: a ``multiple_choice`` option is a string
   continuation, a ``loglikelihood`` task's target is its ``doc_to_target``, a callable.
   So an option is scored with its negative log-likelihood (the most likely option
   has the lowest score, and is chosen), a target with its log-likelihood.
   ``acc_mutual_info`` (text-only requests without a video) is refused.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

try:
    from lmms_eval.api.instance import GenerationResult, Instance
    from lmms_eval.api.model import lmms
except ImportError as error:  # only lmms-eval imports this module (its entry point)
    raise ImportError(
        f"sfllava_ext.eval.lmms_model needs lmms-eval 0.7.3 ({error}). Install it with "
        "--no-deps, its `av<16` pin clashes with ours: "
        "pip install --no-deps lmms-eval==0.7.3, then what docs/lmms_eval.md lists: "
        'pip install accelerate loguru sacrebleu evaluate datasets pytz "transformers>=5.17,<5.25" '
        'pillow tenacity pytablewriter "filelock<4" "av>=18" "httpx>=0.27" "tqdm>=4.60" safetensors'
    ) from error

import torch
from tqdm import tqdm

from ..constants import DEFAULT_BACKEND, DEFAULT_NUM_FRAMES, DEFAULT_RESIZE_MODE
from ..llm.kv_cache import reset_dynamic_rope
from ..llm.prompts import IMAGE_PLACEHOLDER, build_prompt
from ..models.spec import DEMO, ModelSpec
from ..video.frames import VideoDecodeError

__all__ = ["MODEL_ID", "SlowFastLlavaLMMS", "manifest"]

logger = logging.getLogger(__name__)

#: The name lmms-eval knows the model by (``--model sfllava``).
MODEL_ID = "sfllava"
#: ``max_new_tokens`` when a task's generation_kwargs give none (the published limit).
DEFAULT_MAX_NEW_TOKENS = 256
#: The ``dtype`` values taken (None: the device's default).
DTYPES = ("float32", "float16", "bfloat16")
#: What an unreadable video's option or target gets: nothing is likely.
UNREADABLE_LOGPROB = -math.inf


def manifest() -> Any:
    """The ``lmms_eval.models`` entry point's value, a ``ModelManifest``: lmms-eval 0.7
    calls it while ``lmms_eval.models`` builds its registry, on that package's import
    (``ModelRegistryV2.load_entrypoint_manifests``)."""
    # imported here, in the call lmms-eval makes, and not with the module: importing
    # lmms_eval.models is what builds the registry, which imports this module
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(
        model_id=MODEL_ID, simple_class_path=f"{__name__}.{SlowFastLlavaLMMS.__name__}"
    )


@dataclass
class _Item:
    """One request, resolved: its place in the batch, the task prompt, what follows
    (generation settings, or the continuation) and the video's path."""

    index: int
    context: str
    extra: Any
    video: str | None


class SlowFastLlavaLMMS(lmms):
    """An lmms-eval model (simple interface) around :class:`~sfllava_ext.SlowFastLlava`.

    ``model_args`` (``--model_args pretrained=...,num_frames=50``):

    Args:
        pretrained: a checkpoint folder (or hub id where a network exists), or
            ``demo`` for the built-in random-weight demo model.
        slowfast: an aggregation string (docs/method.md#pathways); default: the
            family's published one.
        num_frames: frames sampled from each video (published: 50).
        resize_mode: ``squash`` (published), ``crop`` or ``pad``.
        device: ``cpu``, ``cuda`` or ``cuda:N`` (default: CUDA when available); lmms-eval's
            ``--device`` arrives here too.
        dtype: ``float32``, ``float16`` or ``bfloat16`` (default: float16 on CUDA,
            bfloat16 on the CPU).
        family: the demo model's family (``next``, ``next_video``, ``onevision``);
            a checkpoint's comes from its config.
        backend: the video decoder (``auto``, ``pyav``, ``decord``).
        prompt: the template a task prompt goes into: a published prompt name
            (``image_seq_v3``) or a template with one ``{question}`` and one ``<image>``
            (without commas: lmms-eval splits ``model_args`` at commas).
        batch_size, max_batch_size: lmms-eval's; requests run one at a time, the
            video's encoding shared by all its requests.

    Raises:
        ValueError: an unknown dtype, ``family`` beside a checkpoint, any setting
            :class:`~sfllava_ext.SlowFastLlava` refuses.
    """

    is_simple = True

    def __init__(
        self,
        pretrained: str = DEMO,
        slowfast: str | None = None,
        num_frames: int = DEFAULT_NUM_FRAMES,
        resize_mode: str = DEFAULT_RESIZE_MODE,
        device: str | None = None,
        dtype: str | None = None,
        family: str = "next",
        backend: str = DEFAULT_BACKEND,
        prompt: str = "image_seq_v3",
        batch_size: int | str = 1,
        max_batch_size: int | None = None,
        **unused: Any,
    ) -> None:
        super().__init__()
        if unused:
            raise TypeError(f"sfllava: unknown model_args {', '.join(sorted(unused))}")
        if pretrained != DEMO and family != "next":
            raise ValueError("sfllava: family is for pretrained=demo; a checkpoint's is its own")
        if dtype is not None and dtype not in DTYPES:
            raise ValueError(f"sfllava: dtype must be float32, float16 or bfloat16, got {dtype!r}")
        spec = ModelSpec(
            model=str(pretrained),
            device=device,
            dtype=dtype,
            slowfast=slowfast,
            family=family,
            num_frames=int(num_frames),
            resize_mode=resize_mode,
            backend=backend,
        )
        self.model = spec.build()
        self.prompt = prompt
        self.template = self.model.prompt_template(prompt)  # a bad template fails here
        self.batch_size_per_gpu = batch_size

    # ------------------------------------------------------------- lmms-eval's calls

    def generate_until(self, requests: list[Instance]) -> list[str]:
        """The answer to each request, in order (``""`` where the video is unreadable)."""
        items = [self._item(i, request, generating=True) for i, request in enumerate(requests)]
        answers = [""] * len(items)
        for session, group, bar in self._by_video(items, "generate_until"):
            for item in group:
                if session is not None:
                    answers[item.index] = self._answer(session, item.context, item.extra)
                self.cache_hook.add_partial(
                    "generate_until", (item.context, item.extra), answers[item.index]
                )
                bar.update(1)
        return answers

    def loglikelihood(self, requests: list[Instance]) -> list[GenerationResult]:
        """``GenerationResult(text=(score, is_greedy))`` per request, in order: the
        score is the continuation's log-likelihood for a ``loglikelihood`` task's
        target, its negative for a ``multiple_choice`` option (the module's docstring
        says why both, and why wrapped).

        Raises:
            NotImplementedError: a request without a video (``acc_mutual_info``).
        """
        items = [self._item(i, request, generating=False) for i, request in enumerate(requests)]
        results: list[GenerationResult] = [None] * len(items)  # type: ignore[list-item]
        for session, group, bar in self._by_video(items, "loglikelihood"):
            for item in group:
                continuation, sign = item.extra
                logprob, greedy = UNREADABLE_LOGPROB, False
                if session is not None:
                    logprob, greedy = self.log_likelihood(session, item.context, continuation)
                score = (sign * logprob, greedy)
                self.cache_hook.add_partial("loglikelihood", (item.context, continuation), score)
                results[item.index] = GenerationResult(text=score)
                bar.update(1)
        return results

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        raise NotImplementedError(
            "sfllava: generate_until_multi_round tasks are not supported; SF-LLaVA's "
            "prompts hold one question about one video"
        )

    # ----------------------------------------------------------------- the model's side

    @torch.inference_mode()
    def log_likelihood(self, session: Any, context: str, continuation: str) -> tuple[float, bool]:
        """(summed log-probability of ``continuation``'s tokens, whether greedy decoding
        would produce them) after the prompt ``context`` makes, for a
        :class:`~sfllava_ext.VideoSession`'s video. A one-token continuation's value is
        ``log_softmax(session.next_token_logits(context, prompt=...))[token]``.

        Raises:
            ValueError: a continuation that adds no token to the prompt.
        """
        sf = self.model
        text = build_prompt(self.template, context)
        prompt = sf.llm.tokenize(text)
        whole = sf.llm.tokenize(text + continuation)
        target = whole.after[len(prompt.after) :]
        if whole.before != prompt.before or not target:
            raise ValueError(f"sfllava: the continuation {continuation!r} adds no token")
        after = prompt.after + target[:-1]  # the last target token is only predicted
        # the layout VideoSession gives a prompt: text, visual tokens, text
        before, count = len(prompt.before), session.num_visual_tokens
        embeds = torch.empty(
            (1, before + count + len(after), sf.hidden_size), dtype=sf.dtype, device=sf.device
        )
        sf.llm.embed_text(prompt.before, embeds[0, :before])
        embeds[0, before : before + count] = session.tokens
        sf.llm.embed_text(after, embeds[0, before + count :])
        mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=sf.device)
        with sf.llm.lock:  # a fresh prefill, as a first question's
            reset_dynamic_rope(sf.llm.model)
            out = sf.llm.model(
                inputs_embeds=embeds, attention_mask=mask, logits_to_keep=len(target)
            )
        logprobs = torch.log_softmax(out.logits[0].float(), dim=-1)  # (len(target), vocab)
        ids = torch.tensor(target, device=logprobs.device)
        total = float(logprobs.gather(-1, ids[:, None]).sum())
        return total, bool((logprobs.argmax(-1) == ids).all())

    def _answer(self, session: Any, context: str, settings: dict) -> str:
        """One generation, as the task's generation_kwargs ask."""
        settings = dict(settings)
        until = settings.pop("until", None) or []
        until = [until] if isinstance(until, str) else list(until)
        new_tokens = int(settings.pop("max_new_tokens", DEFAULT_MAX_NEW_TOKENS))
        temperature = float(settings.pop("temperature", 0) or 0)
        overrides: dict[str, Any] = {"do_sample": False}
        if temperature > 0 and settings.pop("do_sample", True):
            overrides = {"do_sample": True, "temperature": temperature}
            if settings.get("top_p") is not None:
                overrides["top_p"] = float(settings["top_p"])
        text = session.answer(context, prompt=self.template, max_new_tokens=new_tokens, **overrides)
        for stop in until:
            if stop:
                text = text.split(stop, 1)[0]
        return text

    # --------------------------------------------------------------------- requests

    def _item(self, index: int, request: Instance, *, generating: bool) -> _Item:
        """A request's prompt, settings or (continuation, sign), and video path."""
        args = request.args
        if generating:  # (context, generation_kwargs, doc_to_visual, doc_id, task, split)
            context, extra, doc_to_visual, doc_id, task, split = args
        else:  # (context, continuation, doc_to_visual, doc_id, task, split)
            if len(args) < 6:
                raise NotImplementedError(
                    "sfllava: log-likelihoods without a video (acc_mutual_info) are not "
                    "supported; SF-LLaVA's prompts hold a video"
                )
            context, continuation, doc_to_visual, doc_id, task, split = args[:6]
            if callable(continuation):  # a loglikelihood task's doc_to_target
                doc = self.task_dict[task][split][doc_id]
                extra = (continuation(doc), 1.0)
            else:  # a multiple_choice option: lmms-eval 0.7.3 picks the lowest score
                extra = (continuation, -1.0)
        visuals = doc_to_visual(self.task_dict[task][split][doc_id]) if doc_to_visual else []
        return _Item(index, _clean(context), extra, _video_of(visuals, task, doc_id))

    def _by_video(self, items: list[_Item], what: str):
        """(session or None where unreadable, the items about that video, a progress
        bar), one video at a time: each video is decoded and encoded once."""
        groups: dict[str | None, list[_Item]] = {}
        for item in items:
            groups.setdefault(item.video, []).append(item)
        with tqdm(total=len(items), desc=f"sfllava {what}", disable=self.rank != 0) as bar:
            for video, group in groups.items():
                yield self._session(video), group, bar

    def _session(self, video: str | None):
        if video is None:
            return None
        try:
            return self.model.session(video)
        except (OSError, VideoDecodeError) as error:
            logger.warning("sfllava: unreadable video, its requests get empty answers: %s", error)
            return None


def _clean(context: str) -> str:
    """The task prompt as a question: the video has its own place in the template."""
    return context.replace(IMAGE_PLACEHOLDER, "").strip()


def _video_of(visuals: Any, task: str, doc_id: int) -> str | None:
    """The one video path of a request's visuals (None: none, so no answer)."""
    found = _flatten(visuals)
    paths = [v for v in found if isinstance(v, str)]
    if len(paths) != 1 or len(found) != 1:
        logger.warning(
            "sfllava: %s doc %s gives %d visuals (%d paths); one video path is needed, "
            "so it gets an empty answer",
            task,
            doc_id,
            len(found),
            len(paths),
        )
        return None
    return paths[0]


def _flatten(visuals: Any) -> list:
    if visuals is None:
        return []
    if isinstance(visuals, (list, tuple)):
        return [v for part in visuals for v in _flatten(part)]
    return [visuals]
