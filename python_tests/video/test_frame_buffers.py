"""FrameBuffers: decoding into reused memory gives the same frames as a plain load,
reuses the memory once released, never lends one buffer twice, and keeps at most
``max_idle_bytes`` while idle."""

from __future__ import annotations

import copy
import os
import pickle
import threading

import numpy as np
import pytest
import torch
from support import DATA
from support.videos import write_test_video

from sfllava_ext import FrameBuffers, VideoDecodeError, load_video
from sfllava_ext.video import VideoClip, Yuv420Frames
from sfllava_ext.video.pyav import decode


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("pooled")
    return {
        "moving": write_test_video(d / "moving.mp4", 96, 64, 60, gop=12),
        "noise": write_test_video(d / "noise.mp4", 96, 64, 60, pattern="noise"),
        "small": write_test_video(d / "small.mp4", 48, 32, 30),
        "short": write_test_video(d / "short.mp4", 32, 24, 7),
        "rotated": write_test_video(d / "rotated.mp4", 64, 36, 20, rotation=90),
    }


def test_pooled_loads_match_plain_loads_and_reuse_the_memory(clips) -> None:
    pool = FrameBuffers()
    first = load_video(clips["moving"], 16, buffers=pool)
    assert torch.equal(first.frames, load_video(clips["moving"], 16).frames)
    address = first.frames.data_ptr()
    pool.release(first)
    assert pool.idle_bytes == first.frames.numel()
    # another video of the same size lands in the same memory, with its own pixels
    second = load_video(clips["noise"], 16, buffers=pool)
    assert second.frames.data_ptr() == address
    assert pool.idle_bytes == 0
    assert torch.equal(second.frames, load_video(clips["noise"], 16).frames)
    # fewer frames reuse it too, as long as they fill at least half of it
    pool.release(second)
    third = load_video(clips["moving"], 12, buffers=pool)
    assert third.frames.data_ptr() == address
    assert torch.equal(third.frames, load_video(clips["moving"], 12).frames)
    # much smaller frames get their own buffer: a clip never pins far more than it holds
    pool.release(third)
    small = load_video(clips["small"], 8, buffers=pool)
    assert small.frames.data_ptr() != address
    assert torch.equal(small.frames, load_video(clips["small"], 8).frames)


def test_pooled_yuv420_planes(clips) -> None:
    """Planes decode into a pooled buffer of their own size (half of RGB's) and give it
    back on release; frames that come out as RGB or copied (rotated, repeated) give
    their buffer back at once."""
    pool = FrameBuffers()
    clip = load_video(clips["moving"], 16, buffers=pool, yuv420=True)
    assert torch.equal(clip.frames.to_rgb(), load_video(clips["moving"], 16).frames)
    address = clip.frames.y.data_ptr()
    pool.release(clip)
    assert pool.idle_bytes == 16 * (64 * 96 + 2 * 32 * 48)
    again = load_video(clips["noise"], 16, buffers=pool, yuv420=True)
    assert again.frames.y.data_ptr() == address
    assert torch.equal(again.frames.to_rgb(), load_video(clips["noise"], 16).frames)
    pool.release(again)
    pool.clear()
    for name in ("rotated", "short"):
        clip = load_video(clips[name], 50, buffers=pool, yuv420=True)
        assert clip.buffer is None and pool.idle_bytes > 0, name
        pool.clear()


def test_a_buffer_is_never_lent_twice(clips) -> None:
    pool = FrameBuffers()
    a = load_video(clips["moving"], 16, buffers=pool)
    b = load_video(clips["noise"], 16, buffers=pool)  # a is not released: new memory
    assert a.frames.data_ptr() != b.frames.data_ptr()
    assert torch.equal(a.frames, load_video(clips["moving"], 16).frames)


def test_concurrent_pooled_loads_get_their_own_frames(clips) -> None:
    pool = FrameBuffers()
    expected = {name: load_video(clips[name], 16).frames for name in ("moving", "noise")}
    failures: list[str] = []

    def work(name: str) -> None:
        try:
            for _ in range(4):
                clip = load_video(clips[name], 16, buffers=pool)
                if not torch.equal(clip.frames, expected[name]):
                    failures.append(f"{name}: other frames")
                pool.release(clip)
        except Exception as exc:  # an exception in a thread would not fail the test
            failures.append(f"{name}: {exc!r}")

    threads = [threading.Thread(target=work, args=(n,)) for n in ("moving", "noise") * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


@pytest.mark.parametrize("name", ["short", "rotated"])
def test_copied_frames_give_the_buffer_back_at_once(clips, name: str) -> None:
    # repeated frames (7 frames, 50 wanted) and rotated ones are copied out of the buffer
    pool = FrameBuffers()
    clip = load_video(clips[name], 50, buffers=pool)
    assert torch.equal(clip.frames, load_video(clips[name], 50).frames)
    assert pool.idle_bytes > 0
    assert not np.may_share_memory(clip.frames.numpy(), pool.take(1))
    pool.release(clip)  # nothing to give back: a no-op


def test_release_is_idempotent_and_ignores_other_clips(clips) -> None:
    pool = FrameBuffers()
    pool.release(None)
    pool.release(load_video(clips["small"], 4))  # not from a pool
    assert pool.idle_bytes == 0
    clip = load_video(clips["small"], 4, buffers=pool)
    pool.release(clip)
    pool.release(clip)
    assert pool.idle_bytes == clip.frames.numel()
    decoded = load_video(clips["moving"], 4, backend="decord", buffers=pool)  # not pooled
    assert decoded.buffer is None and pool.idle_bytes == clip.frames.numel()


def test_failed_decode_gives_the_buffer_back(clips, monkeypatch) -> None:
    pool = FrameBuffers()

    def fail(*args, **kwargs):
        raise VideoDecodeError(clips["moving"], "injected failure")

    monkeypatch.setattr(decode, "decode_into", fail)
    with pytest.raises(VideoDecodeError, match="injected failure"):
        load_video(clips["moving"], 16, buffers=pool)
    assert pool.idle_bytes == 16 * 64 * 96 * 3


def test_take_picks_the_smallest_fit_and_idle_memory_is_capped() -> None:
    pool = FrameBuffers(max_idle_bytes=1000)
    small, large = np.empty(300, np.uint8), np.empty(600, np.uint8)
    pool.give(large)
    pool.give(small)
    pool.give(small)  # given twice: kept once
    assert pool.idle_bytes == 900
    assert pool.take(200) is small
    # the large one is more than twice the size asked: a new buffer instead
    fresh = pool.take(200)
    assert fresh.nbytes == 200 and fresh is not large
    assert pool.take(300) is large
    for _ in range(4):
        pool.give(np.empty(400, np.uint8))
    assert pool.idle_bytes == 800  # oldest dropped beyond 1000 bytes
    pool.clear()
    assert pool.idle_bytes == 0
    keep_nothing = FrameBuffers(max_idle_bytes=0)
    keep_nothing.give(np.empty(10, np.uint8))
    assert keep_nothing.idle_bytes == 0


def test_copies_and_pickles_of_a_pooled_clip_own_their_frames(clips) -> None:
    pool = FrameBuffers()
    clip = load_video(clips["moving"], 16, buffers=pool)
    twin = copy.copy(clip)
    restored = pickle.loads(pickle.dumps(clip))
    assert torch.equal(restored.frames, clip.frames)
    assert len(pickle.dumps(clip)) < 1.5 * clip.frames.numel()  # the buffer is not pickled
    pool.release(twin)  # a copy holds no buffer: nothing to give back
    assert pool.idle_bytes == 0
    pool.release(clip)
    pool.release(clip)
    assert pool.idle_bytes == clip.frames.numel()


def test_bad_arguments(clips) -> None:
    with pytest.raises(TypeError, match="buffers"):
        load_video(clips["small"], 4, buffers="pool")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_idle_bytes"):
        FrameBuffers(-1)
    with pytest.raises(TypeError, match="max_idle_bytes"):
        FrameBuffers(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="1-D uint8"):
        FrameBuffers().give(np.empty((2, 2), np.float32))


def test_pickles_made_by_0_1_0_still_load() -> None:
    """A pickle made by version 0.1.0 names ``sfllava_ext.video.VideoClip`` and
    ``sfllava_ext.yuv_to_rgb.Yuv420Frames``, both moved since (to sfllava_ext.video.frames):
    the old names still resolve, and the clips come back whole, with no pooled buffer."""
    fixture = str(DATA)
    with open(os.path.join(fixture, "videoclips_0.1.0.pkl"), "rb") as f:
        saved = pickle.load(f)
    rgb, planes = saved["rgb"], saved["planes"]
    assert isinstance(rgb, VideoClip) and isinstance(planes, VideoClip)
    assert isinstance(rgb.frames, torch.Tensor) and rgb.frames.dtype == torch.uint8
    assert rgb.frames.numpy().tobytes() == saved["rgb_bytes"]
    assert (rgb.indices, rgb.total_frames, rgb.fps, rgb.path) == ([0, 3], 5, 25.0, "clip.mp4")
    assert isinstance(planes.frames, Yuv420Frames)
    got = [p.numpy().tobytes() for p in (planes.frames.y, planes.frames.u, planes.frames.v)]
    assert got == list(saved["planes_bytes"])
    assert (planes.indices, planes.total_frames, planes.fps) == ([1, 2], 3, None)
    assert rgb.buffer is None and planes.buffer is None
