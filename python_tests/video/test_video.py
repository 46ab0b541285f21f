"""Video loading (issue 3): frame sampling, both backends bit-identical, image folders,
``fps=``, bad files (each in a subprocess, both backends), threads, memory."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import warnings
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

# Where the imported sfllava_ext lives (site-packages when installed, else the
# checkout), so that child interpreters import the very package under test.
from support import PACKAGE_ROOT, TESTS
from support.videos import (
    make_frame,
    read_frame_counter,
    silent_audio_frame,
    write_test_images,
    write_test_video,
)

import sfllava_ext
from sfllava_ext.video import (
    VideoClip,
    VideoDecodeError,
    Yuv420Frames,
    decode_threads,
    fps_frame_indices,
    load_video,
    sample_frame_indices,
)
from sfllava_ext.video.pyav import h264, planning, sinks, workers

try:
    import decord  # noqa: F401

    HAVE_DECORD = True
except ImportError:  # decord has no wheels off x86-64 Linux
    HAVE_DECORD = False

needs_decord = pytest.mark.skipif(not HAVE_DECORD, reason="decord is not installed")
BACKENDS = ["pyav", pytest.param("decord", marks=needs_decord)]


# --------------------------------------------------------------------------- references


def reference_indices(total: int, wanted: int) -> list[int]:
    """docs/method.md#sampling in plain Python: builtin round() is round-half-to-even on floats."""
    n = min(total, wanted)
    if n == 0:
        return []
    step = (total - 1) / n
    out = []
    for i in range(n):
        start = round(step * i)
        end = round(step * (i + 1))
        out.append((start + end) // 2)
    return out


def reference_frames(path: str, indices: list[int]) -> np.ndarray:
    """Decode every frame in order with plain PyAV and pick ``indices``."""
    wanted = set(indices)
    picked = {}
    with av.open(path) as container:
        for position, frame in enumerate(container.decode(video=0)):
            if position in wanted:
                picked[position] = frame.to_ndarray(format="rgb24")
    return np.stack([picked[i] for i in indices])


def reference_fps_indices(total: int, video_fps: Fraction, fps: Fraction) -> list[int]:
    """Frame shown at t = k / fps for k = 0, 1, ...: the largest i with i / video_fps <= t."""
    out = []
    k = 0
    while True:
        t = Fraction(k) / fps
        # start at the first frame of the whole second, then walk frame by frame
        i = int(math.floor(t) * video_fps)
        while Fraction(i + 1) / video_fps <= t:
            i += 1
        while Fraction(i) / video_fps > t:
            i -= 1
        if i >= total:
            return out
        out.append(i)
        k += 1


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A set of small test videos covering sizes, GOPs, containers and pixel formats."""
    d = tmp_path_factory.mktemp("videos")
    specs = {
        "66x50_default_gop": dict(width=66, height=50, num_frames=120),
        "64x48_gop10": dict(width=64, height=48, num_frames=90, gop=10),
        "320x240_gop30": dict(width=320, height=240, num_frames=75, gop=30, preset="veryfast"),
        "98x58_no_bframes": dict(width=98, height=58, num_frames=40, bframes=0),
        "64x48_long_gop12": dict(width=64, height=48, num_frames=700, gop=12, preset="veryfast"),
        "96x64_open_gop": dict(
            width=96, height=64, num_frames=150, gop=24, x264_params={"open-gop": "1"}
        ),
        "65x49_yuv444p": dict(width=65, height=49, num_frames=40, pix_fmt="yuv444p"),
        "80x48_yuvj420p": dict(width=80, height=48, num_frames=40, pix_fmt="yuvj420p"),
        "96x64_mpeg4": dict(width=96, height=64, num_frames=60, gop=12, codec="mpeg4"),
        "64x36_rot90": dict(width=64, height=36, num_frames=30, rotation=90),
        "32x24_short": dict(width=32, height=24, num_frames=7),
    }
    exts = {"96x64_mpeg4": ".avi", "96x64_open_gop": ".mkv"}
    paths = {}
    for name, spec in specs.items():
        path = str(d / f"{name}{exts.get(name, '.mp4')}")
        write_test_video(path, **spec)
        paths[name] = path
    return paths


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("bad")
    good = write_test_video(d / "good.mp4", 64, 48, 60, gop=10)
    data = Path(good).read_bytes()
    files = {}
    files["missing"] = str(d / "does_not_exist.mp4")
    files["empty"] = str(d / "empty.mp4")
    open(files["empty"], "wb").close()
    files["text"] = str(d / "notes.mp4")
    with open(files["text"], "w") as f:
        f.write("this is a text file, not a video\n" * 40)
    files["truncated"] = str(d / "truncated.mp4")  # moov at the end: cut off
    with open(files["truncated"], "wb") as f:
        f.write(data[: len(data) // 2])
    files["bad_codec"] = str(d / "bad_codec.mp4")  # sample entry 'avc1' -> unknown fourcc
    with open(files["bad_codec"], "wb") as f:
        f.write(data.replace(b"avc1", b"zzzz"))
    files["audio_only"] = str(d / "audio_only.mp4")
    _write_audio_only(files["audio_only"])
    faststart = write_test_video(
        d / "faststart.mp4", 64, 48, 60, gop=10, container_options={"movflags": "faststart"}
    )
    fs_data = Path(faststart).read_bytes()
    files["truncated_faststart"] = str(d / "truncated_faststart.mp4")  # index intact, data cut
    with open(files["truncated_faststart"], "wb") as f:
        f.write(fs_data[: int(len(fs_data) * 0.6)])
    return files


def _write_audio_only(path: str) -> None:
    with av.open(path, "w") as container:
        stream = container.add_stream("aac", rate=44100)
        for k in range(20):
            for packet in stream.encode(silent_audio_frame(1024, 44100, k * 1024)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


# --------------------------------------------------------------------------- sampling


def test_sample_frame_indices_matches_reference_everywhere() -> None:
    for total in range(1, 2001):
        for wanted in range(1, 65):
            got = sample_frame_indices(total, wanted)
            assert got == reference_indices(total, wanted), (total, wanted)


def test_sample_frame_indices_known_values() -> None:
    assert sample_frame_indices(10, 3) == [1, 4, 7]
    assert sample_frame_indices(1, 50) == [0]
    assert sample_frame_indices(2, 50) == [0, 0]  # round(0.5) == 0: a short video repeats
    assert sample_frame_indices(0, 50) == []
    got = sample_frame_indices(300, 50)
    assert len(got) == 50 and got[0] == 3 and got[-1] == 296
    assert all(b > a for a, b in zip(got, got[1:], strict=False))


def test_sample_frame_indices_properties() -> None:
    rng = np.random.default_rng(0)
    for total, wanted in rng.integers(1, 100_000, size=(200, 2)):
        got = sample_frame_indices(int(total), int(wanted) % 200 + 1)
        assert len(got) == min(int(total), int(wanted) % 200 + 1)
        assert all(0 <= i < total for i in got)
        assert got == sorted(got)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_sample_frame_indices_rejects_bad_counts(bad: object) -> None:
    with pytest.raises(ValueError, match="num_frames"):
        sample_frame_indices(100, bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "total, video_fps, fps",
    [
        (300, Fraction(30), Fraction(1)),
        (300, Fraction(30), Fraction(2)),
        (301, Fraction(30000, 1001), Fraction(1)),
        (100, Fraction(25), Fraction(3)),
        (90, Fraction(24), Fraction(1, 2)),
        (10, Fraction(30), Fraction(60)),  # faster than the video: frames repeat
    ],
)
def test_fps_frame_indices_matches_reference(
    total: int, video_fps: Fraction, fps: Fraction
) -> None:
    grid = reference_fps_indices(total, video_fps, fps)
    assert fps_frame_indices(total, float(video_fps), float(fps), 10_000) == grid
    # capped: num_frames of the grid, spread over the whole grid
    cap = max(1, len(grid) // 3)
    capped = fps_frame_indices(total, float(video_fps), float(fps), cap)
    assert capped == [grid[i] for i in reference_indices(len(grid), cap)]


# --------------------------------------------------------------------------- loading


@pytest.mark.parametrize("backend", BACKENDS)
def test_clip_fields(videos: dict[str, str], backend: str) -> None:
    clip = load_video(videos["320x240_gop30"], 16, backend=backend)
    assert isinstance(clip, VideoClip)
    assert clip.backend == backend
    assert clip.frames.dtype == torch.uint8
    assert clip.frames.shape == (16, 240, 320, 3)
    assert clip.frames.is_contiguous()
    assert clip.indices == reference_indices(75, 16)
    assert clip.total_frames == 75
    assert clip.fps == pytest.approx(30.0)
    assert clip.duration == pytest.approx(2.5)
    assert [read_frame_counter(f) for f in clip.frames.numpy()] == clip.indices


def test_auto_backend_is_pyav(videos: dict[str, str]) -> None:
    assert load_video(videos["64x48_gop10"], 5).backend == "pyav"


# Every video of the `videos` fixture; the planes are kept for all but the 4:4:4 and the
# rotated one (MPEG-4 in AVI also goes through the sequential fallback; the short video
# repeats a frame).
VIDEO_NAMES = [
    "66x50_default_gop",
    "64x48_gop10",
    "320x240_gop30",
    "98x58_no_bframes",
    "64x48_long_gop12",
    "96x64_open_gop",
    "65x49_yuv444p",
    "80x48_yuvj420p",
    "96x64_mpeg4",
    "64x36_rot90",
    "32x24_short",
]
NOT_PLANAR = {"65x49_yuv444p", "64x36_rot90"}


@pytest.mark.parametrize("name", VIDEO_NAMES)
@pytest.mark.parametrize("num_frames", [50, 6])
def test_pyav_equals_reference_and_decord(
    videos: dict[str, str], name: str, num_frames: int
) -> None:
    """The pyav plan (seeks, skipped frames, parallel GOPs) picks exactly the frames a
    plain decode-everything pass gives, and decord returns the same bits."""
    path = videos[name]
    clip = load_video(path, num_frames, backend="pyav")
    with av.open(path) as container:
        total = sum(1 for p in container.demux(video=0) if p.size)
    assert clip.total_frames == total
    assert clip.indices == reference_indices(total, num_frames)
    frames = clip.frames.numpy()
    if name != "64x36_rot90":
        assert np.array_equal(frames, reference_frames(path, clip.indices))
    else:
        assert np.array_equal(frames, np.rot90(reference_frames(path, clip.indices), 1, (1, 2)))
        assert frames.shape[1:] == (64, 36, 3)  # displayed upright: portrait
    # the counter drawn into each frame says which frame it is
    counters = [read_frame_counter(np.rot90(f, -1) if "rot" in name else f) for f in frames]
    assert counters == clip.indices
    if HAVE_DECORD:
        theirs = load_video(path, num_frames, backend="decord")
        assert theirs.indices == clip.indices
        assert theirs.total_frames == clip.total_frames
        assert theirs.fps == pytest.approx(clip.fps)
        assert np.array_equal(theirs.frames.numpy(), frames)


@pytest.mark.parametrize("name", VIDEO_NAMES)
def test_yuv420_planes_make_the_rgb_frames(videos: dict[str, str], name: str) -> None:
    """load_video(yuv420=True) keeps 4:2:0 frames as decoded planes whose conversion
    gives exactly the RGB frames; other frames (4:4:4, rotated) come as RGB frames."""
    rgb = load_video(videos[name], 50)
    clip = load_video(videos[name], 50, yuv420=True)
    assert clip.indices == rgb.indices and clip.total_frames == rgb.total_frames
    if name not in NOT_PLANAR:
        assert isinstance(clip.frames, Yuv420Frames)
        assert clip.frames.shape == rgb.frames.shape
        assert torch.equal(clip.frames.to_rgb(), rgb.frames)
    else:
        assert isinstance(clip.frames, torch.Tensor)
        assert torch.equal(clip.frames, rgb.frames)


def test_yuv420_planes_from_a_long_gop_with_threads(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The long GOP on decoder threads and the other GOP on its own worker fill one
    buffer of planes; the decord backend ignores yuv420."""
    path = write_test_video(tmp_path / "long.mp4", 128, 72, 300, preset="veryfast")
    rgb = load_video(path, 50)
    for threads in ("1", "2", "3"):
        monkeypatch.setenv("SFLLAVA_DECODE_THREADS", threads)
        clip = load_video(path, 50, yuv420=True)
        assert torch.equal(clip.frames.to_rgb(), rgb.frames), threads
    if HAVE_DECORD:
        assert isinstance(load_video(path, 8, backend="decord", yuv420=True).frames, torch.Tensor)


def test_yuv420_is_not_tried_where_the_stream_says_no(
    videos: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 4:4:4 stream goes straight to RGB; a rotation shows only in the decoded frames,
    so a rotated video is tried as planes, found out and decoded again to RGB."""
    made: list[str] = []
    original = sinks.Yuv420Sink.__init__

    def counting(self, *args, **kwargs):
        made.append("planes")
        original(self, *args, **kwargs)

    monkeypatch.setattr(sinks.Yuv420Sink, "__init__", counting)
    assert isinstance(load_video(videos["65x49_yuv444p"], 8, yuv420=True).frames, torch.Tensor)
    assert made == []
    assert isinstance(load_video(videos["64x36_rot90"], 8, yuv420=True).frames, torch.Tensor)
    assert made == ["planes"]


def test_yuv420_must_be_a_bool(videos: dict[str, str]) -> None:
    with pytest.raises(TypeError, match="yuv420 must be a bool"):
        load_video(videos["64x48_gop10"], 4, yuv420="yes")


@pytest.mark.parametrize("threads", ["1", "2", "3", "5"])
@pytest.mark.parametrize("name", ["66x50_default_gop", "64x48_long_gop12", "96x64_open_gop"])
def test_decode_thread_counts_do_not_change_frames(
    videos: dict[str, str], name: str, threads: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers x frame threads layouts (1x1, 2x1, 2x2, 3x1, 5x1, ...) give the same bits."""
    monkeypatch.setenv("SFLLAVA_DECODE_THREADS", threads)
    path = videos[name]
    for num_frames in (50, 5):
        clip = load_video(path, num_frames, backend="pyav")
        assert np.array_equal(clip.frames.numpy(), reference_frames(path, clip.indices))


@pytest.fixture(scope="module")
def sliced_videos(tmp_path_factory: pytest.TempPathFactory) -> dict[int, str]:
    """One long GOP (libx264's default) with 1 and with 4 slices per picture."""
    d = tmp_path_factory.mktemp("sliced")
    params = {1: {"sliced-threads": "0", "threads": "1"}, 4: {"slices": "4"}}
    return {
        n: write_test_video(d / f"slices{n}.mp4", 128, 96, 90, x264_params=p)
        for n, p in params.items()
    }


@pytest.mark.parametrize("threads", ["2", "3", "4", "8"])
@pytest.mark.parametrize("slices", [1, 4])
def test_slice_or_frame_threads_give_the_same_frames(
    sliced_videos: dict[int, str], slices: int, threads: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decoder of a long GOP takes slice threads when every picture has a slice
    per thread, frame threads otherwise; both give the reference decode's bits."""
    monkeypatch.setenv("SFLLAVA_DECODE_THREADS", threads)
    chosen: list[tuple[int, str]] = []
    use = workers.Reader.use  # every reader's container passes here, opened or taken over

    def spy(self, container, fresh: bool) -> None:
        use(self, container, fresh)
        chosen.append((self.decoder_threads, str(self.stream.thread_type)))

    monkeypatch.setattr(workers.Reader, "use", spy)
    path = sliced_videos[slices]
    clip = load_video(path, 30, backend="pyav")
    assert np.array_equal(clip.frames.numpy(), reference_frames(path, clip.indices))
    kind = "SLICE" if slices >= int(threads) else "FRAME"
    assert chosen and all(n == int(threads) and kind in t for n, t in chosen), chosen


@pytest.mark.parametrize("threads", ["2", "8"])
@pytest.mark.parametrize("slices", [1, 4])
def test_sequential_fallback_picks_thread_types_the_same_way(
    sliced_videos: dict[int, str], slices: int, threads: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fallback for files whose timestamps do not give the order decodes from the
    start with the same choice of slice or frame threads, and the same bits."""
    monkeypatch.setenv("SFLLAVA_DECODE_THREADS", threads)
    monkeypatch.setattr(planning, "timestamps_give_order", lambda index, reorders: False)
    thread_type = workers.decoder_thread_type
    chosen: list[tuple[int, str]] = []

    def spy(n: int, counted: int) -> str:
        chosen.append((n, thread_type(n, counted)))
        return chosen[-1][1]

    monkeypatch.setattr(workers, "decoder_thread_type", spy)
    monkeypatch.setattr(workers, "run_chunks", None)  # no chunked decoding at all
    path = sliced_videos[slices]
    clip = load_video(path, 30, backend="pyav")
    assert chosen == [(int(threads), "SLICE" if slices >= int(threads) else "FRAME")]
    assert np.array_equal(clip.frames.numpy(), reference_frames(path, clip.indices))


@pytest.mark.parametrize("threads", ["1", "2", "3"])
@pytest.mark.parametrize("name", ["66x50_default_gop", "64x48_gop10", "96x64_open_gop"])
def test_first_worker_takes_over_the_indexing_container(
    videos: dict[str, str], name: str, threads: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is opened once to index it and once per further worker: the first
    worker decodes from the indexing container (seeking back to its chunk). Every
    container is closed at the end, and the frames are the reference decode's."""
    monkeypatch.setenv("SFLLAVA_DECODE_THREADS", threads)
    opened: list[av.container.InputContainer] = []
    real_open = av.open

    def counting_open(*args, **kwargs):
        container = real_open(*args, **kwargs)
        opened.append(container)
        return container

    monkeypatch.setattr(av, "open", counting_open)
    path = videos[name]
    plan = planning.plan_decode(path, 16, None)
    plan.close()
    worker_count = len(workers.assign_workers(int(threads), plan.chunks))
    opened.clear()
    clip = load_video(path, 16, backend="pyav")
    assert len(opened) == worker_count, (len(opened), worker_count)
    for container in opened:  # every one closed
        with pytest.raises(AssertionError, match="not open"):
            next(container.demux())
    assert np.array_equal(clip.frames.numpy(), reference_frames(path, clip.indices))


@pytest.mark.parametrize("landing", ["second keyframe", "end of file"])
def test_a_seek_that_misses_the_chunk_start_falls_back_to_a_reopened_file(
    videos: dict[str, str], landing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the taken-over container's seek lands after the first chunk's keyframe, or
    where the demuxer gives no packet of the index at all, the worker opens the file
    again and still delivers the reference frames."""
    monkeypatch.setenv("SFLLAVA_DECODE_THREADS", "1")
    path = videos["64x48_gop10"]
    seeks: list[int] = []
    go_to = workers.Reader.go_to

    def missing_go_to(self, index, start) -> None:
        if not self.fresh and start == 0 and not seeks:
            second = [i for i, k in enumerate(index.keyframe) if k][1]
            seeks.append(second)
            self.container.seek(index.pts[second], stream=self.stream)
            if landing == "end of file":
                for _ in self.container.demux(self.stream):
                    pass
            self.fresh = False
            return
        go_to(self, index, start)

    reopens: list[bool] = []
    reopen = workers.Reader.reopen

    def counting_reopen(self) -> None:
        reopens.append(True)
        reopen(self)

    monkeypatch.setattr(workers.Reader, "go_to", missing_go_to)
    monkeypatch.setattr(workers.Reader, "reopen", counting_reopen)
    clip = load_video(path, 20, backend="pyav")
    assert seeks, "the first worker did not take over the indexing container"
    assert reopens == [True], "the overshooting seek was not caught"
    assert clip.indices[0] < seeks[0]  # a frame of the skipped GOP is wanted
    assert np.array_equal(clip.frames.numpy(), reference_frames(path, clip.indices))


def test_slice_counts_and_thread_types() -> None:
    # NAL header bytes: IDR slice 0x65, non-IDR reference slice 0x41, non-reference
    # slice 0x01, SEI 0x06, SPS 0x67, PPS 0x68
    assert h264.slice_count([0x65, 0x65]) == 2
    assert h264.slice_count([0x06, 0x41, 0x01]) == 2
    assert h264.slice_count([0x67, 0x68]) == 0
    assert h264.slice_count(None) == 0
    pick = workers.decoder_thread_type
    assert [pick(1, 0), pick(2, 0), pick(2, 2), pick(4, 2), pick(2, 4)] == [
        "SLICE",  # one thread: no threading
        "FRAME",  # slices unknown
        "SLICE",
        "FRAME",  # fewer slices than threads
        "SLICE",
    ]


def test_decode_threads_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SFLLAVA_DECODE_THREADS", "3")
    assert decode_threads() == 3
    for bad in ("0", "two"):
        monkeypatch.setenv("SFLLAVA_DECODE_THREADS", bad)
        with pytest.raises(ValueError, match="SFLLAVA_DECODE_THREADS"):
            decode_threads()
    monkeypatch.delenv("SFLLAVA_DECODE_THREADS")
    assert 1 <= decode_threads() <= 16
    # an argument comes first (what sfllava embed's decode workers are given)
    monkeypatch.setenv("SFLLAVA_DECODE_THREADS", "two")
    assert decode_threads(5) == 5
    for bad in (0, 1.5, True, "2"):
        with pytest.raises(ValueError, match="threads must be an int >= 1"):
            decode_threads(bad)


@pytest.mark.parametrize("threads", [1, 3])
def test_load_video_threads_argument(
    videos: dict[str, str], threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``load_video(threads=)`` decodes on that many threads, whatever the environment
    says, with the same frames; a bad count names the argument before any decoding."""
    monkeypatch.setenv("SFLLAVA_DECODE_THREADS", "not a number")  # the argument wins
    path = videos["64x48_long_gop12"]
    clip = load_video(path, 20, backend="pyav", threads=threads)
    assert np.array_equal(clip.frames.numpy(), reference_frames(path, clip.indices))
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="load_video: threads"):
            load_video(path, 20, threads=bad)


@pytest.mark.parametrize("backend", BACKENDS)
def test_video_with_audio_track(tmp_path, backend: str) -> None:
    """Audio packets interleaved with the video ones are skipped, not counted."""
    path = str(tmp_path / "with_audio.mp4")
    with av.open(path, "w") as container:
        video = container.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream("aac", rate=48000)
        for t in range(45):
            frame = av.VideoFrame.from_ndarray(make_frame(64, 48, t), format="rgb24")
            for packet in video.encode(frame):
                container.mux(packet)
            for packet in audio.encode(silent_audio_frame(1600, 48000, t * 1600)):
                container.mux(packet)
        for stream in (video, audio):
            for packet in stream.encode():
                container.mux(packet)
    clip = load_video(path, 10, backend=backend)
    assert clip.total_frames == 45
    assert clip.indices == reference_indices(45, 10)
    assert [read_frame_counter(f) for f in clip.frames.numpy()] == clip.indices
    assert np.array_equal(clip.frames.numpy(), reference_frames(path, clip.indices))


@pytest.fixture(scope="module")
def container_videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """H.264 (with B-frames) in containers whose timestamps are awkward, and MPEG-4 Part 2
    with B-frames in AVI."""
    d = tmp_path_factory.mktemp("containers")
    paths = {
        ext: write_test_video(d / f"h264.{ext}", 64, 48, 90, gop=20)
        for ext in ("ts", "avi", "flv", "h264")
    }
    paths["mpeg4_bframes.avi"] = str(d / "mpeg4_bframes.avi")
    with av.open(paths["mpeg4_bframes.avi"], "w") as container:
        stream = container.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.max_b_frames = 2
        stream.codec_context.gop_size = 12
        for t in range(60):
            frame = av.VideoFrame.from_ndarray(make_frame(64, 48, t), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return paths


@pytest.mark.parametrize("name", ["ts", "avi", "flv", "h264", "mpeg4_bframes.avi"])
@pytest.mark.parametrize("num_frames", [50, 6])
def test_pyav_right_frames_in_other_containers(
    container_videos: dict[str, str], name: str, num_frames: int
) -> None:
    """MPEG-TS, AVI (made-up pts for H.264: decode order), FLV and a raw H.264 stream (no
    timestamps at all): pyav still returns the frames at the sampled positions. (decord
    returns other frames for MPEG-TS and AVI with B-frames, and cannot open raw H.264;
    docs/video.md.)"""
    path = container_videos[name]
    clip = load_video(path, num_frames, backend="pyav")
    with av.open(path) as container:
        total = sum(1 for p in container.demux(video=0) if p.size)
    assert clip.indices == reference_indices(total, num_frames)
    assert [read_frame_counter(f) for f in clip.frames.numpy()] == clip.indices
    assert np.array_equal(clip.frames.numpy(), reference_frames(path, clip.indices))
    if HAVE_DECORD and name == "flv":  # the one of these decord gets right
        assert np.array_equal(load_video(path, num_frames, backend="decord").frames, clip.frames)


def test_short_video_repeats_frames(videos: dict[str, str]) -> None:
    clip = load_video(videos["32x24_short"], 50)
    # 7 frames: step = 6/7 < 1, so one frame repeats and the last one is never picked
    assert clip.indices == reference_indices(7, 50) == [0, 1, 2, 3, 3, 4, 5]
    assert torch.equal(clip.frames[3], clip.frames[4])
    clip = load_video(videos["98x58_no_bframes"], 41)  # 40 frames, 41 wanted -> 40
    assert len(clip) == 40


@pytest.mark.parametrize("backend", BACKENDS)
def test_fps_sampling(videos: dict[str, str], backend: str) -> None:
    path = videos["64x48_long_gop12"]  # 700 frames at 30 fps
    clip = load_video(path, 50, backend=backend, fps=2)
    grid = reference_fps_indices(700, Fraction(30), Fraction(2))  # 0, 15, 30, ...
    assert grid[:3] == [0, 15, 30] and len(grid) == 47
    assert clip.indices == grid
    assert [read_frame_counter(f) for f in clip.frames.numpy()] == grid
    capped = load_video(path, 10, backend=backend, fps=2)
    assert capped.indices == [grid[i] for i in reference_indices(len(grid), 10)]
    assert np.array_equal(capped.frames.numpy(), reference_frames(path, capped.indices))


def test_image_folder(tmp_path) -> None:
    folder = tmp_path / "frames"
    write_test_images(folder, 40, 30, 23)
    (folder / ".DS_Store").write_bytes(b"\0junk")
    (folder / "notes.txt").write_text("not an image")
    clip = load_video(folder, 8)
    names = sorted(p for p in os.listdir(folder) if p.endswith(".png"))
    assert clip.backend == "images" and clip.total_frames == 23 and clip.fps is None
    assert clip.indices == reference_indices(23, 8)
    expected = np.stack([np.asarray(Image.open(folder / names[i])) for i in clip.indices])
    assert np.array_equal(clip.frames.numpy(), expected)
    assert clip.frames.shape == (8, 30, 40, 3) and clip.frames.is_contiguous()


def test_image_folder_sorted_by_name_and_converted_to_rgb(tmp_path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    # names whose order differs from creation order; one grey-scale, one RGBA image
    for name, t in [("b.png", 1), ("a.png", 0), ("c.jpg", 2)]:
        Image.fromarray(make_frame(16, 12, t)).save(folder / name)
    Image.fromarray(make_frame(16, 12, 3)).convert("L").save(folder / "d.png")
    Image.fromarray(make_frame(16, 12, 4)).convert("RGBA").save(folder / "e.png")
    Image.fromarray(make_frame(16, 12, 5)).save(folder / "f.bmp")
    clip = load_video(folder, 50)
    assert clip.indices == reference_indices(6, 50) == [0, 1, 2, 2, 3, 4]
    names = ["a.png", "b.png", "c.jpg", "d.png", "e.png", "f.bmp"]
    expected = np.stack(
        [np.asarray(Image.open(folder / names[i]).convert("RGB")) for i in clip.indices]
    )
    assert clip.frames.shape == (6, 12, 16, 3)
    assert np.array_equal(clip.frames.numpy(), expected)


def test_image_folder_errors(tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(VideoDecodeError, match="no image files") as info:
        load_video(empty)
    assert info.value.path == str(empty)
    sizes = tmp_path / "sizes"
    sizes.mkdir()
    Image.new("RGB", (8, 8)).save(sizes / "a.png")
    Image.new("RGB", (9, 8)).save(sizes / "b.png")  # sampled: indices are [0, 1, 1]
    Image.new("RGB", (8, 8)).save(sizes / "c.png")
    with pytest.raises(VideoDecodeError, match="differ in size"):
        load_video(sizes)
    with pytest.raises(ValueError, match="frame rate"):
        load_video(sizes, fps=1)


def test_bad_arguments(videos: dict[str, str]) -> None:
    path = videos["64x48_gop10"]
    with pytest.raises(ValueError, match="backend"):
        load_video(path, backend="opencv")
    with pytest.raises(ValueError, match="num_frames"):
        load_video(path, 0)
    with pytest.raises(ValueError, match="fps"):
        load_video(path, fps=0)


# --------------------------------------------------------------------------- bad files

_CHILD = textwrap.dedent(
    """
    import json, sys, warnings
    sys.path.insert(0, {root!r})
    from sfllava_ext.video import load_video
    path, backend = sys.argv[1], sys.argv[2]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            clip = load_video(path, 50, backend=backend)
            out = {{"ok": True, "frames": len(clip), "total": clip.total_frames,
                   "counters_ok": None}}
        except Exception as exc:
            out = {{"ok": False, "type": type(exc).__name__,
                   "is_value_error": isinstance(exc, ValueError), "message": str(exc),
                   "path": getattr(exc, "path", None) or getattr(exc, "filename", None)}}
    out["warnings"] = [str(w.message) for w in caught]
    print("RESULT " + json.dumps(out))
    """
)


def run_isolated(path: str, backend: str) -> dict:
    """load_video in a fresh interpreter: a crash or a hang is a failure, not a dead suite."""
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD.format(root=PACKAGE_ROOT), path, backend],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=TESTS,
    )
    assert proc.returncode == 0, f"child crashed ({proc.returncode}): {proc.stderr[-2000:]}"
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, f"no result: {proc.stdout[-1000:]} {proc.stderr[-1000:]}"
    return json.loads(lines[-1][len("RESULT ") :])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "case, expected_type, reason",
    [
        ("missing", "FileNotFoundError", "not found"),
        ("empty", "VideoDecodeError", "empty"),
        ("text", "VideoDecodeError", ""),
        ("truncated", "VideoDecodeError", ""),
        ("bad_codec", "VideoDecodeError", ""),
        ("audio_only", "VideoDecodeError", ""),
    ],
)
def test_bad_files_raise_typed_errors(
    bad_files: dict[str, str], backend: str, case: str, expected_type: str, reason: str
) -> None:
    path = bad_files[case]
    out = run_isolated(path, backend)
    assert not out["ok"], out
    assert out["type"] == expected_type, out
    assert path in out["message"] or out["path"] == path, out
    assert reason in out["message"], out
    if expected_type == "VideoDecodeError":
        assert out["is_value_error"] and out["path"] == path


def test_bad_file_reasons_pyav(bad_files: dict[str, str]) -> None:
    for case, words in [("audio_only", "no video stream"), ("bad_codec", "no decoder")]:
        with pytest.raises(VideoDecodeError, match=words):
            load_video(bad_files[case], backend="pyav")


@pytest.mark.parametrize("backend", BACKENDS)
def test_truncated_data_ends_early_or_raises(bad_files: dict[str, str], backend: str) -> None:
    """The index announces 60 frames, the data holds about half: pyav returns the frames
    that exist with a warning; decord refuses with VideoDecodeError. Neither hangs."""
    out = run_isolated(bad_files["truncated_faststart"], backend)
    if backend == "pyav":
        assert out["ok"], out
        assert 0 < out["total"] < 60 and out["frames"] == min(50, out["total"])
        assert any("60 frames" in w and "ends early" in w for w in out["warnings"]), out
    else:
        assert not out["ok"] and out["type"] == "VideoDecodeError", out


@pytest.mark.parametrize("yuv420", [False, True])
def test_truncated_data_frames_are_right(bad_files: dict[str, str], yuv420: bool) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        clip = load_video(bad_files["truncated_faststart"], 10, yuv420=yuv420)
    if yuv420:
        assert isinstance(clip.frames, Yuv420Frames)
        clip.frames = clip.frames.to_rgb()
    # the warnings point at the caller's line, not into the library
    ends_early = [w for w in caught if "ends early" in str(w.message)]
    assert ends_early and all(w.filename == __file__ for w in ends_early), [
        (w.filename, str(w.message)) for w in caught
    ]
    good = [
        (i, f)
        for i, f in zip(clip.indices, clip.frames.numpy(), strict=True)
        if i < clip.total_frames - 1
    ]
    assert [read_frame_counter(f) for _, f in good] == [i for i, _ in good]


@pytest.mark.parametrize("yuv420", [False, True])
def test_missing_frames_warning_points_at_the_caller(
    videos: dict[str, str], yuv420: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Wanted frames the decoder never delivers end the clip early with a warning that,
    like the truncated file's, names the line that called load_video."""
    sink = sinks.Yuv420Sink if yuv420 else sinks.FrameSink
    add = sink.add

    def losing_the_last(self, frame_index, frame, converter) -> None:
        if frame_index != max(self.slots):
            add(self, frame_index, frame, converter)

    monkeypatch.setattr(sink, "add", losing_the_last)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        clip = load_video(videos["64x48_gop10"], 8, yuv420=yuv420)
    missing = [w for w in caught if "could not be decoded" in str(w.message)]
    assert missing and all(w.filename == __file__ for w in missing), [
        (w.filename, str(w.message)) for w in caught
    ]
    assert len(clip) == 7 and isinstance(clip.frames, Yuv420Frames) == yuv420


def test_decord_is_imported_lazily() -> None:
    code = (
        f"import sys; sys.path.insert(0, {PACKAGE_ROOT!r}); import sfllava_ext, sfllava_ext.video; "
        "print('decord' in sys.modules)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=TESTS
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_public_names_keep_their_paths() -> None:
    """sfllava_ext.video is a package now; the names it exported are the same objects
    at the same paths (old pickles name sfllava_ext.video.VideoClip)."""
    from sfllava_ext import constants
    from sfllava_ext.video import frames

    video = sfllava_ext.video
    assert set(video.__all__) == {
        "BACKENDS",
        "SAFE_FORMATS",
        "DecodeLimits",
        "FrameBuffers",
        "VideoClip",
        "VideoDecodeError",
        "VideoLimitError",
        "Yuv420Frames",
        "decode_threads",
        "fps_frame_indices",
        "load_video",
        "sample_frame_indices",
    }
    assert all(hasattr(video, name) for name in video.__all__)
    assert (video.VideoClip, video.VideoDecodeError, video.Yuv420Frames) == (
        frames.VideoClip,
        frames.VideoDecodeError,
        frames.Yuv420Frames,
    )
    assert video.BACKENDS is constants.BACKENDS
    assert video.decode_threads is workers.decode_threads
    assert sfllava_ext.load_video is video.load_video is load_video
    assert sfllava_ext.FrameBuffers is video.FrameBuffers


# --------------------------------------------------------------------------- threads, memory


@pytest.mark.parametrize("backend", BACKENDS)
def test_eight_threads_match_serial(videos: dict[str, str], backend: str) -> None:
    names = ["66x50_default_gop", "64x48_gop10", "320x240_gop30", "64x48_long_gop12"]
    jobs = [(videos[n], k) for n in names for k in (50, 9)]
    serial = [load_video(p, k, backend=backend).frames.numpy() for p, k in jobs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(lambda job: load_video(*job, backend=backend), jobs * 2))
    for i, clip in enumerate(parallel):
        assert np.array_equal(clip.frames.numpy(), serial[i % len(jobs)]), jobs[i % len(jobs)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_repeated_loads_keep_memory_flat(videos: dict[str, str], backend: str) -> None:
    psutil = pytest.importorskip("psutil")
    process = psutil.Process()
    path = videos["320x240_gop30"]
    load_video(path, 50, backend=backend)
    rss = []
    for _ in range(40):
        clip = load_video(path, 50, backend=backend)
        del clip
        rss.append(process.memory_info().rss / 2**20)
    assert max(rss) - rss[0] < 30, f"RSS grew from {rss[0]:.0f} MB to {max(rss):.0f} MB"
