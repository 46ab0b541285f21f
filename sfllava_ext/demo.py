"""The built-in default: a small randomly initialised LLaVA-NeXT (or, with
``family``, LLaVA-NeXT-Video or LLaVA-OneVision: :func:`demo_parts`), a tokenizer
made on the spot and a synthetic H.264 video, so the whole pipeline runs with
no download. Its answers come from random weights and mean nothing; its
latencies are real.

Demo model (fixed, so that figures compare across runs): CLIP vision hidden 64,
intermediate 256, 4 layers, 4 heads, 336 px, patch 14 (24x24 tokens); Llama
text hidden 128, intermediate 256, 2 layers, 4 heads.
"""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np
import torch

from .constants import DEFAULT_BACKEND, DEFAULT_NUM_FRAMES, DEFAULT_RESIZE_MODE, DEMO_FAMILIES

DEMO_VISION = dict(
    hidden_size=64,
    intermediate_size=256,
    num_hidden_layers=4,
    num_attention_heads=4,
    image_size=336,
    patch_size=14,
    projection_dim=64,
)
DEMO_TEXT = dict(
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=4096,
)
DEMO_QUESTION = "What is moving across the screen?"

# Text the demo tokenizer learns its pieces from: the published prompts and
# everyday words, enough for a Llama-style (SentencePiece-like) BPE vocabulary.
_CORPUS = """
USER: The input consists of a sequence of key frames from a video. Answer concisely with overall
content and context of the video, highlighting any significant events, characters, or objects
that appear throughout the video. Question: What is happening? ASSISTANT: Answer: In the video,
You are a helpful expert in video analysis. Select the best option to answer the question.
Options: (A) (B) (C) (D) (E) Only give the best option. Best option:(
a person walks across the street while a dog runs after a red ball near the blue car
the camera moves slowly to the left and shows a green tree, a white house and the sky
two people talk in a kitchen, one of them opens the door and the other one sits down
the square moves from left to right, the circle bounces up and down, colors change over time
what who where when why how is are was were do does did can could will would should
one two three four five six seven eight nine ten first second last next before after
""".strip()


def demo_tokenizer():
    """A Llama-style tokenizer (BPE over pieces with a ``▁`` word prefix, BOS
    added, byte fallback) trained in a fraction of a second on a built-in text."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<unk>", "<s>", "</s>", "<pad>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tok.decoder = decoders.Sequence(
        [
            decoders.Replace("▁", " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(" ", 1, 0),
        ]
    )
    bytes_ = [f"<0x{i:02X}>" for i in range(256)]
    trainer = trainers.BpeTrainer(
        vocab_size=1024, special_tokens=special + bytes_, show_progress=False
    )
    tok.train_from_iterator(_CORPUS.split("\n"), trainer=trainer)
    from tokenizers import processors

    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
    )


def demo_model(
    tokenizer, *, seed: int = 0, dtype: torch.dtype = torch.float32, video: bool = False
):
    """The fixed demo LLaVA-NeXT with random weights (seeded); ``video``: the same
    parts as a LLaVA-NeXT-Video (its ``vision_resampler`` beside them)."""
    import transformers
    from transformers import CLIPVisionConfig, LlamaConfig

    kind = "LlavaNextVideo" if video else "LlavaNext"
    config_class = getattr(transformers, f"{kind}Config")
    model_class = getattr(transformers, f"{kind}ForConditionalGeneration")

    text = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **DEMO_TEXT,
    )
    config = config_class(
        vision_config=CLIPVisionConfig(**DEMO_VISION),
        text_config=text,
        image_token_index=tokenizer.unk_token_id,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(config)
    return model.to(dtype).eval()


def demo_parts(family: str = "next", *, dtype: torch.dtype = torch.float32):
    """``(model, tokenizer, image_processor)`` of the demo of ``family`` (``next``:
    LLaVA-NeXT; ``next_video``: LLaVA-NeXT-Video; ``onevision``:
    :mod:`sfllava_ext.demo_onevision`); the processor is
    None where the vision config's size and CLIP's mean and std are the model's.

    Raises:
        ValueError: an unknown family.
    """
    if family == "next":
        tokenizer = demo_tokenizer()
        return demo_model(tokenizer, dtype=dtype), tokenizer, None
    if family == "next_video":
        tokenizer = demo_tokenizer()
        return demo_model(tokenizer, dtype=dtype, video=True), tokenizer, None
    if family == "onevision":
        from .demo_onevision import ONEVISION_PROCESSOR, onevision_model, onevision_tokenizer

        tokenizer = onevision_tokenizer()
        return onevision_model(tokenizer, dtype=dtype), tokenizer, dict(ONEVISION_PROCESSOR)
    raise ValueError(f"family must be one of {', '.join(DEMO_FAMILIES)}, got {family!r}")


def write_synthetic_video(
    path: str | os.PathLike,
    *,
    width: int = 640,
    height: int = 360,
    seconds: float = 3.0,
    fps: int = 30,
    gop: int | None = None,
    variant: int = 0,
) -> str:
    """A deterministic H.264 (libx264, yuv420p) clip of a square moving over a
    colour gradient that shifts with time; every frame differs. Another ``variant``
    gives other colours and another path of the square."""
    import av

    num = int(round(seconds * fps))
    yy, xx = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if gop is not None:
            stream.codec_context.gop_size = gop
        side = max(4, min(width, height) // 4)
        for i in range(num):
            frame = np.empty((height, width, 3), dtype=np.uint8)
            frame[..., 0] = (xx * 255 // max(1, width - 1) + 3 * i + 37 * variant) % 256
            frame[..., 1] = (yy * 255 // max(1, height - 1) + 5 * i + 71 * variant) % 256
            frame[..., 2] = (128 + 2 * i + 53 * variant) % 256
            x0 = int((width - side) * i / max(1, num - 1))
            y0 = int((height - side) * (0.5 + 0.4 * np.sin(i / 7 + variant)))
            y0 = min(max(y0, 0), height - side)
            frame[y0 : y0 + side, x0 : x0 + side] = (250, 240, 20)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)


def run_demo(
    *,
    question: str = DEMO_QUESTION,
    device: str | None = None,
    dtype: torch.dtype | None = None,
    num_frames: int = DEFAULT_NUM_FRAMES,
    slowfast: str | None = None,
    resize_mode: str = DEFAULT_RESIZE_MODE,
    backend: str = DEFAULT_BACKEND,
    max_new_tokens: int = 32,
    video: str | None = None,
    workdir: str | None = None,
    family: str = "next",
) -> dict:
    """Writes a synthetic video (unless ``video`` is given), builds the demo
    model of ``family`` (:func:`demo_parts`), answers ``question`` through the whole
    pipeline and returns the answer with per-stage latencies.

    Raises:
        ValueError: an unknown family.
    """
    import tempfile

    from .model_spec import DEMO, ModelSpec

    spec = ModelSpec(
        model=DEMO,
        device=device,
        dtype=None if dtype is None else str(dtype).replace("torch.", ""),
        slowfast=slowfast,
        family=family,
        num_frames=num_frames,
        resize_mode=resize_mode,
        backend=backend,
    )
    sf = spec.build()  # the device's default dtype where none is given
    sf.profile = True
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        path = video or write_synthetic_video(os.path.join(tmp, "demo.mp4"))
        answer = sf.answer(path, question, max_new_tokens=max_new_tokens)
    timings = sf.last_timings
    return {
        "answer": answer,
        "question": question,
        "timings": timings,
        "device": str(torch.device(device)) if device is not None else sf.device.type,
        "dtype": str(sf.dtype).replace("torch.", ""),
        "num_visual_tokens": sf.num_visual_tokens(num_frames),
        "aggregation": str(sf.aggregation),
        "family": family,
    }
