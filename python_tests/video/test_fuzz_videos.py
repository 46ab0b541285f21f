"""benchmarks/fuzz_videos.py, small: a 60-file run on both backends (every mutation kind,
no untyped error, crash or hang), its classifier (a planted abort is a crash, a planted
sleep past the limit a hang, and each worker is replaced), and one regression test per
cause the full run found: PyAV's demux on a stream found mid-file (pyav) and decord
aborting the process on a container that announces 2**31 frames (decord)."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from support import PYTHONPATH, load_benchmark
from support.videos import read_frame_counter, write_test_video

from sfllava_ext.video import VideoDecodeError, load_video
from sfllava_ext.video.pyav import planning

try:
    import decord  # noqa: F401

    HAVE_DECORD = True
except ImportError:  # decord has no wheels off x86-64 Linux
    HAVE_DECORD = False

needs_decord = pytest.mark.skipif(not HAVE_DECORD, reason="decord is not installed")


fuzz_videos = load_benchmark("fuzz_videos")


@pytest.fixture
def workers_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The workers import the package under test."""
    monkeypatch.setenv("PYTHONPATH", PYTHONPATH)


@needs_decord
def test_a_60_file_run_finds_nothing(workers_env: None) -> None:
    result = fuzz_videos.fuzz(60, run_seed=0, workers=2)
    assert result["count"] == 60
    for backend in ("pyav", "decord"):
        assert sum(result["totals"][backend].values()) == 60
        for kind in fuzz_videos.KINDS:
            assert sum(result["counts"][backend][kind].values()) >= 6, kind
    assert len(fuzz_videos.KINDS) >= 6
    assert len({s.name for s in fuzz_videos.SEEDS}) >= 5
    assert fuzz_videos.bad(result) == 0, result["findings"]
    assert all(t["decoded"] > 0 and t["typed"] > 0 for t in result["totals"].values())
    command = "python benchmarks/fuzz_videos.py --count 60"
    result.update(machine=fuzz_videos.machine_info(), command=command)
    section = "\n".join(fuzz_videos.render(result))
    assert "## Fuzzed video files" in section and "| **all** | 60 |" in section


def test_files_are_made_again_from_the_seed(tmp_path: Path) -> None:
    seeds = fuzz_videos.write_seeds(tmp_path)
    for index in range(len(fuzz_videos.KINDS)):
        recipe, data = fuzz_videos.make_file(index, 7, seeds)
        again, data_again = fuzz_videos.make_file(index, 7, seeds)
        assert recipe == again and data == data_again
        assert recipe.kind == fuzz_videos.KINDS[index]
        assert data != seeds[recipe.seed]


def test_the_classifier_tells_crashes_and_hangs(tmp_path: Path, workers_env: None) -> None:
    """A planted os.abort() is a crash, a planted sleep past the limit a hang; each
    worker is replaced, and the files after them still load."""
    video = write_test_video(tmp_path / "ok.mp4", 64, 48, num_frames=12)
    Job = fuzz_videos.Job
    jobs = [
        Job(video, "pyav", key="abort", plant="abort"),
        Job(video, "pyav", key="sleep", plant="sleep"),
        Job(video, "pyav", key="after 1"),
        Job(video, "pyav", key="after 2"),
        Job(str(tmp_path / "missing.mp4"), "pyav", key="missing"),
    ]
    answers: dict[str, dict] = {}
    with fuzz_videos.Pool(2, time_limit=3.0, log_dir=tmp_path / "logs") as pool:
        pool.run(jobs, lambda job, answer: answers.__setitem__(job.key, answer))
        replaced = pool.replaced
    assert answers["abort"]["class"] == "crash", answers["abort"]
    assert answers["abort"]["exit"] == "killed by SIGABRT"
    assert answers["sleep"]["class"] == "hang", answers["sleep"]
    assert answers["sleep"]["limit_s"] == 3.0
    assert answers["after 1"]["class"] == answers["after 2"]["class"] == "decoded"
    assert answers["after 1"]["frames"] == 12
    assert answers["missing"]["class"] == "typed"
    assert answers["missing"]["type"] == "FileNotFoundError"
    assert replaced == 2


def test_untyped_errors_are_told_from_typed_ones() -> None:
    classify = fuzz_videos.classify
    assert classify(VideoDecodeError("a.mp4", "damaged")) == "typed"
    assert classify(FileNotFoundError(2, "video not found", "a.mp4")) == "typed"
    assert classify(ValueError("load_video: num_frames must be an int >= 1, got 0")) == "typed"
    assert classify(ValueError("math domain error")) == "untyped"
    assert classify(IndexError("list index out of range")) == "untyped"
    assert classify(MemoryError()) == "untyped"


# ------------------------------------------------------------ what the full run found


def test_pyav_reads_a_ts_file_with_an_mp4_appended(tmp_path: Path) -> None:
    """PyAV's demux raised IndexError after the last packet of an MPEG-TS file in which
    a stream appears mid-file (here an MP4 appended to it); load_video now reads the
    TS part's frames."""
    ts = write_test_video(tmp_path / "a.ts", 64, 48, num_frames=30, gop=10)
    mp4 = write_test_video(tmp_path / "b.mp4", 64, 48, num_frames=20, gop=10)
    joined = tmp_path / "joined.ts"
    joined.write_bytes(Path(ts).read_bytes() + Path(mp4).read_bytes())
    clip = load_video(joined, 8, backend="pyav")
    assert clip.total_frames == 30
    frames = clip.frames.numpy()
    assert [read_frame_counter(f) for f in frames] == clip.indices


def test_demux_ends_where_pyav_raises_index_error() -> None:
    class Container:
        name = "x.ts"

        def demux(self, stream):
            yield "packet 1"
            yield "flush"
            raise IndexError("list index out of range")

    assert list(planning.demux(Container(), None)) == ["packet 1", "flush"]


def _patched(path: Path, box: bytes, offset: int, value: int, fmt: str) -> Path:
    """``path`` with the field ``offset`` bytes after the first ``box`` name set to ``value``."""
    data = bytearray(path.read_bytes())
    at = data.find(box) + offset
    struct.pack_into(fmt, data, at, value)
    out = path.with_name(f"bad_{path.name}")
    out.write_bytes(bytes(data))
    return out


# decord's allocation fails, and aborts it, where the address space ends; how far that is
# depends on the machine (overcommit lets 16 GiB pass on a 23 GiB one), so the test
# process gets 6 GiB (its decord child inherits the limit): the abort is certain.
_UNDER_A_MEMORY_LIMIT = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
from sfllava_ext.video import VideoDecodeError, load_video
bad, good = sys.argv[1:]
try:
    load_video(bad, 8, backend="decord")
    print("RESULT decoded")
except VideoDecodeError as exc:
    assert exc.path == bad, exc.path
    print("RESULT", exc.reason)
print("RESULT", load_video(good, 8, backend="decord").indices)
"""


@needs_decord
@pytest.mark.parametrize(
    "suffix, box, offset, fmt, value",
    [
        (".mp4", b"stts", 12, ">I", 2**32 - 1),  # the first entry's sample count
        (".avi", b"strh", 8 + 32, "<I", 2**31 - 1),  # dwLength, the stream's frame count
    ],
)
def test_decord_dying_on_a_file_is_a_typed_error(
    tmp_path: Path, suffix: str, box: bytes, offset: int, fmt: str, value: int
) -> None:
    """A container announcing 2**31 frames makes decord allocate an index for all of
    them, and std::bad_alloc aborts its process: load_video runs decord in a child
    process, so the caller gets VideoDecodeError and goes on. pyav reads the file."""
    codec = "mpeg4" if suffix == ".avi" else "libx264"
    good = Path(write_test_video(tmp_path / f"ok{suffix}", 64, 48, num_frames=24, codec=codec))
    bad = _patched(good, box, offset, value, fmt)
    proc = subprocess.run(
        [sys.executable, "-c", _UNDER_A_MEMORY_LIMIT, str(bad), str(good)],
        capture_output=True,
        text=True,
        timeout=120,
        # outside the checkout: `python -c` puts the current folder first on sys.path,
        # where the sources are not built when the package is installed (as in CI)
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": PYTHONPATH},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = [ln[len("RESULT ") :] for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert len(results) == 2, proc.stdout
    assert re.fullmatch(r"decord's process died on this file \(killed by SIGABRT.*\)", results[0])
    assert results[1] == str(load_video(good, 8, backend="pyav").indices)
    with pytest.warns(RuntimeWarning, match="ends early"):
        assert len(load_video(bad, 8, backend="pyav")) == 8
