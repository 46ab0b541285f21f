"""Limits for files that are not trusted (sfllava_ext/video/limits.py): every frame's
size, the pixels decoded in all and the deadline enforced while decoding, and the
container formats allowed before FFmpeg's demuxer reads the file.

The attacks of the security review, made small: an MPEG-TS that switches from 64x64 to
a larger size mid-stream (two files put end to end), a file of many frames, an HLS
playlist, an ffconcat script, an image2 pattern and an MP4 data reference that name
files elsewhere (FIFOs here, which tell whether anything opened them)."""

from __future__ import annotations

import errno
import os
import pickle
import struct
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from support.videos import make_frame, write_test_images, write_test_video

import sfllava_ext.video
from sfllava_ext.video import (
    SAFE_FORMATS,
    DecodeLimits,
    VideoDecodeError,
    VideoLimitError,
    limits,
    load_video,
)
from sfllava_ext.video.pyav import planning, sinks, workers

SMALL = (64, 64)
LARGE = (1920, 1080)
MAX_PIXELS = 100_000  # 64x64 fits; 1920x1080 is over FFmpeg's bound too (2 * limit + 2**20)


# --------------------------------------------------------------------------- helpers


def write_video(path: Path, width: int, height: int, frames: int, *, fmt=None, codec="libx264",
                gop: int = 10, pattern: str = "moving", start: float = 0) -> Path:  # fmt: skip
    """``frames`` frames of :func:`make_frame` in container ``fmt`` (None: by the
    extension), no B-frames (so that raw streams remux with pts = dts), the first shown
    at ``start`` seconds (so that files put end to end keep their timestamps rising)."""
    options = {"output_ts_offset": str(start)} if start else {}
    with av.open(str(path), "w", format=fmt, options=options) as container:
        stream = container.add_stream(codec, rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = gop
        if codec == "libx264":
            stream.options = {"x264-params": f"keyint={gop}:bframes=0:ref=16"}
        elif codec == "libx265":
            stream.options = {"x265-params": f"log-level=none:keyint={gop}:bframes=0"}
        for t in range(frames):
            image = make_frame(width, height, t, pattern)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def concat(out: Path, *parts: Path) -> Path:
    out.write_bytes(b"".join(p.read_bytes() for p in parts))
    return out


def remux(src: Path, dst: Path) -> Path:
    """The packets of a raw stream in another container, one per frame at 25 fps."""
    with av.open(str(src)) as source, av.open(str(dst), "w") as target:
        stream = target.add_stream_from_template(source.streams.video[0])
        stream.time_base = Fraction(1, 25)
        packets = (p for p in source.demux(source.streams.video[0]) if p.size)
        for i, packet in enumerate(packets):
            packet.stream, packet.time_base, packet.pts, packet.dts = stream, stream.time_base, i, i
            target.mux(packet)
    return dst


class FifoWatch:
    """A FIFO that tells whether anything opened it for reading: a thread keeps trying
    a non-blocking open for writing, which fails (ENXIO) while no reader has it open;
    when one has, the thread closes it again at once (the reader reads an empty file)."""

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.path = path
        self.opened = threading.Event()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)
        self.thread.start()

    def watch(self) -> None:
        while not self.done.is_set():
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise
                time.sleep(0.001)
                continue
            self.opened.set()
            os.close(fd)

    def was_opened(self) -> bool:
        time.sleep(0.05)  # a reader that opened it just now is seen too
        return self.opened.is_set()

    def stop(self) -> None:
        self.done.set()
        self.thread.join()


@pytest.fixture
def fifo(tmp_path: Path):
    made: list[FifoWatch] = []

    def make(path: Path) -> FifoWatch:
        made.append(FifoWatch(path))
        return made[-1]

    yield make
    for watch in made:
        watch.stop()


@pytest.fixture(scope="module")
def size_switches(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Files that start at 64x64 and change size later: MPEG-TS made of two files
    (H.264 with ref=16, MPEG-2), and raw H.264 64x64 -> 1920x1080 -> 64x64 as it is and
    remuxed into MKV and MP4 (whose headers then say 64x64)."""
    d = tmp_path_factory.mktemp("switch")
    made = {}
    for name, codec in (("h264", "libx264"), ("mpeg2", "mpeg2video")):
        small = write_video(d / f"{name}_small.ts", *SMALL, 20, codec=codec)
        large = write_video(
            d / f"{name}_large.ts", *LARGE, 10, codec=codec, pattern="flat", start=1
        )
        made[f"ts_{name}"] = concat(d / f"{name}_switch.ts", small, large)
    small = write_video(d / "small.h264", *SMALL, 20)
    large = write_video(d / "large.h264", *LARGE, 10, pattern="flat")
    made["raw_h264"] = concat(d / "middle.h264", small, large, small)
    made["mkv"] = remux(made["raw_h264"], d / "middle.mkv")
    made["mp4"] = remux(made["raw_h264"], d / "middle.mp4")
    # 640x480: within FFmpeg's bound (2 * 100,000 + 2**20) but over the limit
    made["ts_640x480"] = concat(
        d / "to_640x480.ts",
        write_video(d / "a.ts", *SMALL, 20),
        write_video(d / "b.ts", 640, 480, 20, pattern="flat", start=1),
    )
    return made


def spy_frames(monkeypatch: pytest.MonkeyPatch) -> dict[str, list]:
    """Records the size of every frame the meter checks and every frame a sink takes."""
    seen: dict[str, list] = {"meter": [], "sink": []}
    meter_frame, sink_add = limits.DecodeMeter.frame, sinks.FrameSink.add

    def frame(self, width, height, *args, **kwargs):
        seen["meter"].append((width, height))
        return meter_frame(self, width, height, *args, **kwargs)

    def add(self, index, decoded, converter):
        seen["sink"].append((decoded.width, decoded.height))
        return sink_add(self, index, decoded, converter)

    monkeypatch.setattr(limits.DecodeMeter, "frame", frame)
    monkeypatch.setattr(sinks.FrameSink, "add", add)
    return seen


# --------------------------------------------------------------------------- max_pixels


@pytest.mark.parametrize("name", ["ts_h264", "ts_mpeg2"])
def test_size_switch_mid_stream_is_refused_before_the_frame_exists(
    size_switches: dict[str, Path], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(size_switches[name])
    bounded = DecodeLimits(max_pixels=MAX_PIXELS)
    # What the old check saw: the header says 64x64, within the limit, and a plan
    # under the limits (which checks the header) is made without complaint.
    plan = planning.plan_decode(path, 16, None, bounded)
    assert (plan.width, plan.height) == SMALL
    plan.close()
    assert len(load_video(path, 8)) == 8  # without limits it decodes, large frames too

    seen = spy_frames(monkeypatch)
    with pytest.raises(VideoLimitError) as info:
        load_video(path, 16, limits=bounded, threads=2)
    error = info.value
    assert error.limit == "max_pixels" and error.allowed == MAX_PIXELS
    assert isinstance(error, VideoDecodeError) and error.path == path
    # H.264 shows the size it refused; MPEG-2's decoder resets its size to 0x0
    assert error.seen == (LARGE[0] * LARGE[1] if name == "ts_h264" else None)
    assert "max_pixels" in str(error) and path in str(error)
    # FFmpeg refused the picture before it was made (its decoder failed: the meter
    # never saw the frame), and no oversize frame reached a sink
    assert "the decoder refused" in str(error)
    assert set(seen["meter"]) <= {SMALL}
    assert all(w * h <= MAX_PIXELS for w, h in seen["sink"])


@pytest.mark.parametrize("name", ["mkv", "mp4", "raw_h264"])
def test_largest_frame_in_the_middle_is_refused(
    size_switches: dict[str, Path], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """64x64, then 1920x1080, then 64x64: the container's header says 64x64. Raw H.264
    has no timestamps and goes through the sequential decode."""
    path = str(size_switches[name])
    plan = planning.plan_decode(path, 16)
    assert (plan.width, plan.height) == SMALL
    assert bool(plan.chunks) == (name != "raw_h264")
    plan.close()
    seen = spy_frames(monkeypatch)
    with pytest.raises(VideoLimitError) as info:
        load_video(path, 16, limits=DecodeLimits(max_pixels=MAX_PIXELS))
    assert info.value.limit == "max_pixels" and info.value.seen == LARGE[0] * LARGE[1]
    assert "the decoder refused" in str(info.value) and set(seen["meter"]) <= {SMALL}


def test_frames_within_ffmpegs_margin_are_checked_one_by_one(
    size_switches: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """FFmpeg's decoders get twice the limit plus 2**20 pixels (FFmpeg counts padding
    and alignment too); a frame between that and the limit comes out of the decoder,
    and the meter refuses it before a sink takes it."""
    path = str(size_switches["ts_640x480"])
    with monkeypatch.context() as patch:
        seen = spy_frames(patch)
        with pytest.raises(VideoLimitError) as info:
            load_video(path, 16, limits=DecodeLimits(max_pixels=MAX_PIXELS))
    assert info.value.limit == "max_pixels" and info.value.seen == 640 * 480
    assert "a decoded frame of 640x480" in str(info.value)
    assert (640, 480) in seen["meter"] and set(seen["sink"]) <= {SMALL}
    expected = load_video(path, 16)
    clip = load_video(path, 16, limits=DecodeLimits(max_pixels=640 * 480))
    assert clip.indices == expected.indices
    assert np.array_equal(clip.frames.numpy(), expected.frames.numpy())


def test_header_over_the_limit_is_refused_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(write_test_video(tmp_path / "big.mp4", 640, 480, 5))
    for name in ("run_chunks", "decode_sequential"):
        monkeypatch.setattr(workers, name, lambda *a, **k: pytest.fail("decoded"))
    with pytest.raises(VideoLimitError, match="header says 640x480") as info:
        load_video(path, 4, limits=DecodeLimits(max_pixels=MAX_PIXELS))
    assert (info.value.limit, info.value.seen) == ("max_pixels", 640 * 480)


# --------------------------------------------------------------------------- budget, deadline


@pytest.fixture(scope="module")
def many_frames(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("many") / "many.mp4"
    return write_test_video(path, 96, 64, 600, gop=30, pattern="flat", preset="ultrafast")


def test_budget_stops_a_file_of_many_frames_early(
    many_frames: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame_pixels = 96 * 64
    budget = 50 * frame_pixels
    calls = {"all": 0, "after": 0}
    meter_frame = limits.DecodeMeter.frame

    def frame(self, *args, **kwargs):
        calls["all"] += 1
        calls["after"] += self.breach is not None
        return meter_frame(self, *args, **kwargs)

    monkeypatch.setattr(limits.DecodeMeter, "frame", frame)
    with pytest.raises(VideoLimitError) as info:
        load_video(many_frames, 600, limits=DecodeLimits(max_decoded_pixels=budget), threads=2)
    error = info.value
    assert error.limit == "max_decoded_pixels" and error.allowed == budget
    assert budget < error.seen <= budget + frame_pixels
    # decoding stopped at the budget, far from the 600 frames; the other worker stopped
    # at its next frame
    assert calls["all"] <= 51 + 2 and calls["after"] <= 1
    assert len(load_video(many_frames, 600, limits=DecodeLimits(max_decoded_pixels=10**9))) == 600


def test_deadline_before_opening_and_while_decoding(
    many_frames: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(many_frames)
    with pytest.raises(VideoLimitError, match="before opening") as info:
        load_video(path, 8, limits=DecodeLimits(deadline=time.monotonic() - 1))
    assert info.value.limit == "deadline" and info.value.seen > info.value.allowed

    # a slow sink: 100 wanted frames take 2 s; the deadline comes after 0.1 s
    added = []
    sink_add = sinks.FrameSink.add

    def slow_add(self, *args):
        time.sleep(0.02)
        added.append(1)
        return sink_add(self, *args)

    monkeypatch.setattr(sinks.FrameSink, "add", slow_add)
    start = time.monotonic()
    with pytest.raises(VideoLimitError) as info:
        load_video(path, 100, limits=DecodeLimits(deadline=start + 0.1), threads=1)
    assert info.value.limit == "deadline" and "while decoding" in str(info.value)
    assert time.monotonic() - start < 1.0 and len(added) < 50


def test_deadline_while_indexing_packets(many_frames: Path) -> None:
    bounded = DecodeLimits(deadline=time.monotonic() + 60)
    meter = limits.DecodeMeter(bounded, str(many_frames))
    container = limits.open_container(str(many_frames), bounded)
    try:
        meter.deadline = time.monotonic() - 1  # as if indexing had taken a minute
        with pytest.raises(VideoLimitError, match="while indexing the packets"):
            planning.index_packets(container, container.streams.video[0], "x", None, meter)
    finally:
        container.close()


# --------------------------------------------------------------------------- formats


@pytest.fixture
def segment(tmp_path: Path) -> Path:
    return write_test_video(tmp_path / "clip.ts", 64, 48, 10)


@pytest.mark.parametrize(
    "kind", ["hls_inside", "hls_outside", "concat_inside", "concat_outside", "image2"]
)
def test_files_that_name_other_files_are_refused_without_opening_them(
    tmp_path: Path, segment: Path, fifo, kind: str
) -> None:
    folder, outside = tmp_path / "allowed", tmp_path / "elsewhere"
    folder.mkdir()
    outside.mkdir()
    where = folder if kind.endswith("inside") or kind == "image2" else outside
    if kind == "image2":
        # the pattern names f_000.png, f_001.png, ...; the file itself is a real PNG
        path = folder / "f_%03d.png"
        write_test_images(tmp_path / "png", 8, 8, 1)
        path.write_bytes(next((tmp_path / "png").iterdir()).read_bytes())
        target = fifo(folder / "f_000.png")
    else:
        target = fifo(where / "seg.ts")
        name = "seg.ts" if where == folder else str(where / "seg.ts")
        if kind.startswith("hls"):
            path = folder / "list.m3u8"
            path.write_text(
                "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n"
                f"#EXTINF:1.0,\n{name}\n#EXT-X-ENDLIST\n"
            )
        else:
            path = folder / "list.ffconcat"
            path.write_text(f"ffconcat version 1.0\nfile '{name}'\n")

    with pytest.raises(VideoLimitError) as info:
        load_video(path, 8, limits=DecodeLimits())
    assert info.value.limit == "formats" and info.value.allowed == SAFE_FORMATS
    assert not target.was_opened()

    # what the allowlist prevents: FFmpeg follows the reference (the concat demuxer's
    # own safe mode already refuses an absolute path)
    if kind != "concat_outside":
        try:
            av.open(str(path)).close()
        except av.FFmpegError:
            pass
        assert target.was_opened()


def test_hls_playlist_still_plays_without_limits(tmp_path: Path, segment: Path) -> None:
    """limits=None changes nothing: FFmpeg's hls demuxer reads the playlist's segment."""
    playlist = tmp_path / "list.m3u8"
    playlist.write_text("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\nclip.ts\n#EXT-X-ENDLIST\n")
    assert len(load_video(playlist, 4)) == 4
    with pytest.raises(VideoLimitError):
        load_video(playlist, 4, limits=DecodeLimits())
    assert len(load_video(playlist, 4, limits=DecodeLimits(formats=None))) == 4


def alias_dref(name: bytes) -> bytes:
    """A 'dref' box body whose one entry is a Mac alias to ``name`` beside the file
    (what mov_read_dref parses; nlvl_from = nlvl_to = 1: the same folder)."""
    path = b"/" + name
    record = bytes(10) + bytes(28) + bytes(12) + bytes([len(name)]) + name.ljust(63, b"\0")
    record += bytes(16) + struct.pack(">HH", 1, 1) + bytes(16)
    record += struct.pack(">HH", 2, len(path)) + path + bytes(len(path) % 2)
    record += struct.pack(">HH", 0xFFFF, 0)
    entry = b"alis" + bytes(4) + record
    return bytes(4) + struct.pack(">II", 1, 4 + len(entry)) + entry


def with_dref(data: bytes, dref: bytes) -> bytes:
    """``data`` (MP4 boxes, moov after mdat) with every 'dref' box's body replaced."""
    out, pos = b"", 0
    while pos < len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + size]
        if kind in (b"moov", b"trak", b"mdia", b"minf", b"dinf"):
            body = with_dref(body, dref)
        elif kind == b"dref":
            body = dref
        out += struct.pack(">I4s", 8 + len(body), kind) + body
        pos += size
    return out


def test_mov_data_references_stay_closed(tmp_path: Path, fifo) -> None:
    """An MP4 whose track data lives in another file (a 'dref' alias): FFmpeg opens it
    only with enable_drefs=1; the default is 0, and open_container sets 0."""
    source = write_test_video(tmp_path / "source.mov", 64, 48, 5)
    path = tmp_path / "ref.mov"
    path.write_bytes(with_dref(Path(source).read_bytes(), alias_dref(b"data.mov")))
    target = fifo(tmp_path / "data.mov")
    with pytest.raises(VideoDecodeError):  # the track's data is elsewhere: no frames
        load_video(path, 4, limits=DecodeLimits())
    limits.open_container(str(path), DecodeLimits()).close()
    av.open(str(path)).close()  # FFmpeg's default
    assert not target.was_opened()
    try:
        av.open(str(path), container_options={"enable_drefs": "1"}).close()
    except av.FFmpegError:
        pass
    assert target.was_opened()


def test_a_damaged_header_of_an_allowed_format_is_not_a_format_refusal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FFmpeg refuses a format with EINVAL, which an allowed demuxer may also return for
    a damaged header; open_container tells them apart (here the first open's EINVAL is
    made up, and the check finds the format allowed)."""
    path = str(write_test_video(tmp_path / "clip.ts", 64, 48, 5))
    real_open = av.open

    def open_(url, *args, **kwargs):
        if "io_open" not in kwargs:
            raise av.ArgumentError(errno.EINVAL, "Invalid argument")
        return real_open(url, *args, **kwargs)

    monkeypatch.setattr(av, "open", open_)
    with pytest.raises(VideoDecodeError) as info:
        limits.open_container(path, DecodeLimits())
    assert not isinstance(info.value, VideoLimitError)


def test_damaged_files_of_allowed_formats_are_decode_errors_not_limits(tmp_path: Path) -> None:
    good = Path(write_test_video(tmp_path / "good.mp4", 64, 48, 30, gop=10))
    data = good.read_bytes()
    damaged = {
        "text.mp4": b"this is a text file, not a video\n" * 40,
        "truncated.mp4": data[: len(data) // 2],  # moov at the end: cut off
        "bad_codec.mp4": data.replace(b"avc1", b"zzzz"),
    }
    for name, content in damaged.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(VideoDecodeError) as info:
            load_video(tmp_path / name, 8, limits=DecodeLimits(max_pixels=MAX_PIXELS))
        assert not isinstance(info.value, VideoLimitError), name


def test_a_local_name_is_never_read_as_a_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_test_video(tmp_path / "concat:clip.ts", 64, 48, 5)
    assert len(load_video("concat:clip.ts", 4, limits=DecodeLimits())) == 4


# (container, extension, encoder, FFmpeg muxer) for every format SAFE_FORMATS allows
FORMATS = {
    "mov": ("mp4", "libx264", None),
    "matroska": ("mkv", "libx264", None),
    "avi": ("avi", "mpeg4", None),
    "mpegts": ("ts", "libx264", None),
    "mpeg": ("mpg", "mpeg2video", None),
    "flv": ("flv", "libx264", None),
    "ogg": ("ogv", "libvpx", None),
    "asf": ("wmv", "wmv2", None),
    "ivf": ("ivf", "libvpx-vp9", None),
    "h264": ("h264", "libx264", None),
    "hevc": ("hevc", "libx265", None),
    "m4v": ("m4v", "mpeg4", "m4v"),
    "mpegvideo": ("m2v", "mpeg2video", None),
}


def test_safe_formats_are_demuxers_that_are_all_tested() -> None:
    assert set(FORMATS) == SAFE_FORMATS
    assert all(av.ContainerFormat(name).is_input for name in SAFE_FORMATS)
    assert sfllava_ext.video.SAFE_FORMATS is limits.SAFE_FORMATS
    assert DecodeLimits().formats is SAFE_FORMATS


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_safe_format_decodes_under_limits(tmp_path: Path, fmt: str) -> None:
    ext, codec, muxer = FORMATS[fmt]
    path = str(write_video(tmp_path / f"clip.{ext}", 64, 48, 12, fmt=muxer, codec=codec))
    bounded = DecodeLimits(
        max_pixels=64 * 48, max_decoded_pixels=64 * 48 * 24, deadline=time.monotonic() + 60
    )
    with limits.open_container(path, bounded) as container:
        assert fmt in container.format.name.split(",")
    clip = load_video(path, 8, limits=bounded)
    expected = load_video(path, 8)
    assert clip.indices == expected.indices
    assert np.array_equal(clip.frames.numpy(), expected.frames.numpy())


# --------------------------------------------------------------------------- the interface


def test_without_limits_no_meter_exists(many_frames: Path, monkeypatch: pytest.MonkeyPatch):
    expected = load_video(many_frames, 16)
    monkeypatch.setattr(limits, "DecodeMeter", None)  # any use would fail
    clip = load_video(many_frames, 16, limits=None)
    assert np.array_equal(clip.frames.numpy(), expected.frames.numpy())


@pytest.mark.parametrize(
    "field, value",
    [
        ("max_pixels", 0),
        ("max_pixels", 1.5),
        ("max_pixels", True),
        ("max_decoded_pixels", -1),
        ("max_decoded_pixels", "10"),
        ("deadline", float("nan")),
        ("deadline", "soon"),
        ("formats", frozenset()),
        ("formats", "mov"),
        ("formats", {"mov,mp4"}),
        ("formats", {"MOV"}),
    ],
)
def test_decode_limits_are_checked(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        DecodeLimits(**{field: value})


def test_decode_limits_fields() -> None:
    bounded = DecodeLimits(max_pixels=10, max_decoded_pixels=20, deadline=3, formats=["mov"])
    assert bounded.formats == frozenset({"mov"}) and bounded.deadline == 3.0
    assert DecodeLimits().formats is SAFE_FORMATS and DecodeLimits(formats=None).formats is None
    with pytest.raises(AttributeError):
        bounded.max_pixels = 5  # type: ignore[misc]


def test_limit_error_says_which_limit_what_was_seen_and_the_limit() -> None:
    error = VideoLimitError("/v.mp4", "max_decoded_pixels", 1_234_567, 1_000_000, "42 frames")
    assert isinstance(error, VideoDecodeError) and isinstance(error, ValueError)
    text = str(error)
    assert "/v.mp4" in text and "max_decoded_pixels" in text
    assert "1,234,567" in text and "1,000,000" in text
    again = pickle.loads(pickle.dumps(error))
    assert (again.limit, again.seen, again.allowed, str(again)) == (
        error.limit,
        error.seen,
        error.allowed,
        text,
    )


def test_decord_and_other_arguments_with_limits(tmp_path: Path) -> None:
    path = write_test_video(tmp_path / "clip.mp4", 64, 48, 5)
    with pytest.raises(ValueError, match="limits"):
        load_video(path, 4, backend="decord", limits=DecodeLimits())
    with pytest.raises(TypeError, match="limits"):
        load_video(path, 4, limits={"max_pixels": 10})  # type: ignore[arg-type]


def test_image_folder_under_limits(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    write_test_images(folder, 64, 48, 6)
    expected = load_video(folder, 4)
    bounded = DecodeLimits(max_pixels=64 * 48, max_decoded_pixels=4 * 64 * 48)
    assert np.array_equal(load_video(folder, 4, limits=bounded).frames, expected.frames)
    with pytest.raises(VideoLimitError) as info:
        load_video(folder, 4, limits=DecodeLimits(max_pixels=1000))
    assert info.value.limit == "max_pixels" and "frame_00000.png" in str(info.value)
    with pytest.raises(VideoLimitError, match="max_decoded_pixels"):
        load_video(folder, 4, limits=DecodeLimits(max_decoded_pixels=3 * 64 * 48))
    with pytest.raises(VideoLimitError, match="deadline"):
        load_video(folder, 4, limits=DecodeLimits(deadline=time.monotonic() - 1))
    # with a format allowlist only Pillow's common raster readers are tried
    tiffs = tmp_path / "tiffs"
    write_test_images(tiffs, 64, 48, 3, ext="tif")
    assert len(load_video(tiffs, 2)) == len(load_video(tiffs, 2, limits=DecodeLimits(formats=None)))
    with pytest.raises(VideoDecodeError, match="cannot read image"):
        load_video(tiffs, 2, limits=DecodeLimits())
