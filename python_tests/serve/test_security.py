"""The service under attack (issue 24): one regression test per finding of the red
team, each with its attack, against a real server on a free local port with small
limits. Races hold a job after admission through the fault hook
(:mod:`sfllava_ext.utils.faults`), never by timing. docs/security.md states the
threat model and every status these tests expect."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import socket
import threading
import time

import httpx
import pytest
import torch
from safetensors.torch import load as load_safetensors
from support.servers import serve_in_thread
from support.videos import write_test_video

from sfllava_ext import SlowFastLlava
from sfllava_ext.models.demo import demo_model, demo_tokenizer
from sfllava_ext.serve.config import ServeConfig
from sfllava_ext.serve.media import resolve_video
from sfllava_ext.utils import faults

LIMITS = dict(
    max_video_mb=1,
    max_pixels=100_000,
    max_duration_s=20,
    read_timeout_s=1,
    max_uploads=1,
    max_queue=2,
    job_timeout_s=60,
)


@pytest.fixture(scope="module")
def sf():
    tok = demo_tokenizer()
    return SlowFastLlava(demo_model(tok, dtype=torch.float32), tok, num_frames=4)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    outside = tmp_path_factory.mktemp("outside")
    a = write_test_video(root / "a.mp4", 64, 48, 12, pattern="moving")
    secret = write_test_video(outside / "secret.mp4", 64, 48, 12, pattern="noise")
    write_test_video(outside / "segment.ts", 64, 48, 12, pattern="noise")
    return {"root": str(root), "outside": str(outside), "a": str(a), "secret": str(secret)}


@pytest.fixture(scope="module")
def base(sf, media):
    with serve_in_thread(sf, media_dir=media["root"], **LIMITS) as url:
        yield url


@pytest.fixture
def hook():
    """Installs a fault hook for one test (and removes it)."""
    yield faults.install
    faults.install(None)


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def data_url(data: bytes) -> str:
    return "data:video/mp4;base64," + base64.b64encode(data).decode()


def tokens(base: str, url: str) -> httpx.Response:
    return httpx.post(f"{base}/v1/video/tokens", json={"video_url": {"url": url}}, timeout=60)


def chat(base: str, url: str, question: str = "What moves?", **fields) -> dict:
    parts = [{"type": "video_url", "video_url": {"url": url}}, {"type": "text", "text": question}]
    return {"messages": [{"role": "user", "content": parts}], "max_tokens": 2, **fields}


def post_raw(base: str, raw: bytes, path: str = "/v1/chat/completions", **headers):
    headers = {"content-type": "application/json", **headers}
    return httpx.post(f"{base}{path}", content=raw, headers=headers, timeout=60)


def visual_tokens(reply: httpx.Response) -> torch.Tensor:
    assert reply.status_code == 200, reply.text
    return load_safetensors(reply.content)["tokens"]


def refused(reply: httpx.Response, status: int, code: str | None = None) -> dict:
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    if code is not None:
        assert error["code"] == code, error
    return error


# ------------------------------------------------ 1. the media dir's check and read


@pytest.mark.parametrize("swap_in", ["link", "fifo"])
def test_a_file_swapped_after_admission_serves_the_admitted_bytes(base, media, hook, swap_in):
    """Finding 1: while the job waits, swap.mp4 becomes a link to a file outside the
    media dir (or a FIFO, which hung the worker for good). The answer is the admitted
    bytes' tokens, under their hash, and the cache is not poisoned: the outside file's
    bytes, sent as a data: URL, get their own tokens."""
    swap = os.path.join(media["root"], "swap.mp4")
    shutil.copyfile(media["a"], swap)
    admitted, release = threading.Event(), threading.Event()

    def hold(point: str, **context) -> None:
        if point == "serve.job" and context["video"].source == "swap.mp4":
            admitted.set()
            assert release.wait(timeout=60)

    hook(hold)
    result: list[httpx.Response] = []
    asking = threading.Thread(target=lambda: result.append(tokens(base, f"file://{swap}")))
    asking.start()
    assert admitted.wait(timeout=60)
    os.remove(swap)
    if swap_in == "link":
        os.symlink(media["secret"], swap)  # the attack, after admission
    else:
        os.mkfifo(swap)
    release.set()
    asking.join(timeout=60)
    original = read(media["a"])
    reply = result[0]
    assert reply.headers["x-video-sha256"] == hashlib.sha256(original).hexdigest()
    held = visual_tokens(reply)
    assert torch.equal(held, visual_tokens(tokens(base, data_url(original))))
    secret = tokens(base, data_url(read(media["secret"])))
    assert secret.headers["x-video-sha256"] == hashlib.sha256(read(media["secret"])).hexdigest()
    assert not torch.equal(visual_tokens(secret), held)
    # and what is in place now is refused: the link leads outside, the FIFO is no file
    refused(tokens(base, f"file://{swap}"), *{"link": (403, "outside_media_dir"),
                                              "fifo": (400, "not_a_file")}[swap_in])  # fmt: skip
    os.remove(swap)


def test_the_opened_descriptor_is_checked_not_the_path_resolved_earlier(media, monkeypatch):
    """Finding 1, second variant: a link swapped in between the path's check and the
    open (the path's resolution is made to miss it) is caught on the descriptor."""
    link = os.path.join(media["root"], "late.mp4")
    os.symlink(media["secret"], link)
    try:
        config = ServeConfig(media_dir=media["root"], max_video_mb=1)
        real = os.path.realpath
        monkeypatch.setattr(os.path, "realpath", lambda p: p if p == link else real(p))
        with pytest.raises(Exception) as caught:
            resolve_video(f"file://{link}", "v", config, media["outside"])
        assert (caught.value.status, caught.value.code) == (403, "outside_media_dir")
    finally:
        os.remove(link)


def test_a_fifo_in_the_media_dir_is_refused_at_once(base, media):
    """Finding 1: a FIFO swapped in hung the worker for good; now it is not opened
    for reading in a way that blocks, and it is not a regular file."""
    fifo = os.path.join(media["root"], "pipe.mp4")
    os.mkfifo(fifo)
    try:
        started = time.monotonic()
        refused(tokens(base, f"file://{fifo}"), 400, "not_a_file")
        assert time.monotonic() - started < 10
        assert visual_tokens(tokens(base, f"file://{media['a']}")).numel() > 0
    finally:
        os.remove(fifo)


def test_a_file_rewritten_in_place_is_new_bytes(media, tmp_path):
    """Finding 9: the same size, modification time and inode, other bytes: the hash
    is of the bytes read, not of the file's metadata."""
    config = ServeConfig(media_dir=media["root"], max_video_mb=1)
    path = os.path.join(media["root"], "inplace.bin")
    with open(path, "wb") as f:
        f.write(b"A" * 4096)
    stat = os.stat(path)
    first = resolve_video(f"file://{path}", "v", config, str(tmp_path))
    with open(path, "r+b") as f:
        f.write(b"B" * 4096)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (os.stat(path).st_ino, os.stat(path).st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    second = resolve_video(f"file://{path}", "v", config, str(tmp_path))
    assert first.sha256 == hashlib.sha256(b"A" * 4096).hexdigest()
    assert second.sha256 == hashlib.sha256(b"B" * 4096).hexdigest()
    assert read(second.path) == b"B" * 4096  # the decoders read this copy
    first.discard(), second.discard()
    os.remove(path)


# ------------------------------------------- 2, 3. limits during decoding, formats


def concatenated_ts(folder, small: tuple[int, int], large: tuple[int, int]) -> bytes:
    """An MPEG-TS that starts at ``small`` and switches to ``large`` mid-stream (a new
    SPS; the timestamps go on rising), as the red team made it."""
    common = dict(bframes=0, gop=8, x264_params={"ref": "16"})
    first = write_test_video(os.path.join(folder, "first.ts"), *small, 8, **common)
    second = write_test_video(os.path.join(folder, "second.ts"), *large, 8, **common,
                              container_options={"output_ts_offset": "1"})  # fmt: skip
    return read(first) + read(second)


def test_a_resolution_switch_mid_stream_is_refused(base, tmp_path):
    """Finding 2: 64x64, then 640x480 (307,200 px) under --max-pixels 100,000: the
    header sees 64x64, the decoder sees the switch."""
    data = concatenated_ts(tmp_path, (64, 64), (640, 480))
    error = refused(tokens(base, data_url(data)), 400, "video_too_large")
    assert "max_pixels" in error["message"] or "pixels" in error["message"]


def test_many_frames_stop_at_the_decode_budget(sf, tmp_path):
    """Finding 2: a file of many frames within --max-pixels costs pixels x frames;
    --max-decode-mpx stops it early."""
    video = write_test_video(tmp_path / "many.mp4", 64, 64, 240, gop=240)
    with serve_in_thread(sf, max_video_mb=1, max_decode_mpx=0.2) as url:
        refused(tokens(url, data_url(read(video))), 400, "video_too_costly")
    with serve_in_thread(sf, max_video_mb=1, max_decode_mpx=10) as url:
        assert visual_tokens(tokens(url, data_url(read(video)))).numel() > 0


def test_a_playlist_cannot_pull_in_files_outside(base, media):
    """Finding 3: an HLS playlist inside the media dir that lists a segment outside
    it (and the same playlist as a data: URL, and an ffconcat script) is refused:
    the copy the decoders read has no playlist's name (FFmpeg then does not take it
    for one), and the formats allowed hold no demuxer that opens other files
    (python_tests/video/test_limits.py refuses them by name too). The outside
    segment is a FIFO: opening it would hang the request."""
    segment = os.path.join(media["outside"], "segment-fifo.ts")
    os.mkfifo(segment)
    playlist = (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n"
        f"#EXTINF:0.4,\n{segment}\n#EXT-X-ENDLIST\n"
    )
    path = os.path.join(media["root"], "list.m3u8")
    with open(path, "w") as f:
        f.write(playlist)
    concat = f"ffconcat version 1.0\nfile '{segment}'\n".encode()
    try:
        for url in (f"file://{path}", data_url(playlist.encode()), data_url(concat)):
            error = refused(tokens(base, url), 400)
            assert error["code"] in ("unsupported_format", "invalid_video"), error
    finally:
        os.remove(path), os.remove(segment)


# ---------------------------------------------------------------- 4. bodies


def raw_connection(base: str) -> socket.socket:
    host, port = base.rsplit(":", 1)
    return socket.create_connection((host.split("//")[1], int(port)), timeout=10)


def head(base: str, length: int) -> bytes:
    return (
        f"POST /v1/video/tokens HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def status_of(sock: socket.socket) -> int:
    reply = sock.recv(65536)
    return int(reply.split(b" ", 2)[1]) if reply else 0


def test_bodies_are_refused_as_they_arrive(base):
    """Finding 4: a declared length over the limit is refused before the body; a
    chunked one at the limit; a silent one after --read-timeout-s."""
    limit = ServeConfig(**LIMITS).max_body_bytes
    with raw_connection(base) as sock:
        sock.sendall(head(base, limit + 1))
        assert status_of(sock) == 413  # nothing of the body was sent

    def chunks():
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536

    reply = httpx.post(f"{base}/v1/video/tokens", content=chunks(),
                       headers={"content-type": "application/json"}, timeout=60)  # fmt: skip
    refused(reply, 413, "request_too_large")
    with raw_connection(base) as sock:
        sock.sendall(head(base, 100) + b'{"video_url":')
        started = time.monotonic()
        assert status_of(sock) == 408
        assert time.monotonic() - started < 5


def test_concurrent_uploads_are_capped(base, media):
    """Finding 4: half-sent uploads held open take the --max-uploads slots; another
    upload gets 503 with Retry-After, and small requests still pass."""
    with raw_connection(base) as sock:
        sock.sendall(head(base, 1_300_000) + b"x" * (1 << 20) + b"x" * 10_000)
        time.sleep(0.3)  # the server has read past 1 MiB: the one slot is taken
        reply = httpx.post(
            f"{base}/v1/video/tokens",
            content=b" " * 1_200_000,
            headers={"content-type": "application/json"},
            timeout=60,
        )
        error = refused(reply, 503, "uploads_busy")
        assert reply.headers["retry-after"] == "1" and "--max-uploads" in error["message"]
        assert httpx.get(f"{base}/health", timeout=10).json()["status"] == "ok"
        assert visual_tokens(tokens(base, f"file://{media['a']}")).numel() > 0
    # the slot comes back once the upload ends (here: its client left)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        reply = httpx.post(f"{base}/v1/video/tokens", content=b" " * 1_200_000,
                           headers={"content-type": "application/json"}, timeout=60)  # fmt: skip
        if reply.status_code != 503:
            break
        time.sleep(0.2)
    refused(reply, 400, "invalid_json")


def test_idle_and_partial_connections_are_closed(base):
    """Finding 9: a connection that sends nothing, or half a request head, is
    closed after --read-timeout-s."""
    for sent in (b"", b"GET /health HTTP/1.1\r\nHo"):
        with raw_connection(base) as sock:
            sock.sendall(sent)
            started = time.monotonic()
            assert sock.recv(1024) == b""  # closed by the server
            assert time.monotonic() - started < 5


# --------------------------------------------------------- 5. malformed requests


def test_malformed_requests_get_typed_400s_and_no_traceback(base, media, caplog):
    """Finding 5: deep nesting, a 5,000-digit integer, lone surrogates anywhere,
    non-finite numbers, a flood of values, bad UTF-8; each a 400 naming what, no
    traceback logged."""
    good = json.dumps(chat(base, f"file://{media['a']}"))
    cases = {
        "deep": b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "digits": good[:-1].replace('"max_tokens": 2', '"max_tokens": ' + "9" * 5000).encode()
        + b"}",
        "surrogate question": good.replace("What moves?", "\\ud800").encode(),
        "surrogate model": good[:-1].encode() + b', "model": "\\udfff"}',
        "surrogate field": good[:-1].encode() + b', "\\ud800": 1}',
        "surrogate url": good.replace(media["a"], media["a"] + "\\ud800").encode(),
        "nan": good[:-1].encode() + b', "temperature": NaN}',
        "infinite": good[:-1].encode() + b', "temperature": 1e400}',
        "negative": good[:-1].encode() + b', "temperature": -0.5}',
        "values": b'{"x": [' + b"{}," * 150_000 + b"{}]}",
        "utf8": good.replace("What moves?", "\xff").encode("latin-1"),
        "include_usage": good[:-1].encode() + b', "stream_options": {"include_usage": "yes"}}',
    }
    caplog.set_level(logging.WARNING)
    statuses = {}
    for name, raw in cases.items():
        reply = post_raw(base, raw)
        statuses[name] = reply.status_code
        refused(reply, 400)
    print("\nmalformed:", statuses)
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert httpx.post(f"{base}/v1/chat/completions", json=json.loads(good),
                      timeout=60).status_code == 200  # fmt: skip


def test_a_tiny_temperature_is_greedy(base, media):
    """Finding 5: temperature 1e-40 gave a 500 (a 200 and an error event when
    streamed); below 1e-5 it is greedy decoding, the same answer as 0."""
    url = f"file://{media['a']}"
    answers = []
    for temperature in (0, 1e-40):
        reply = httpx.post(f"{base}/v1/chat/completions",
                           json=chat(base, url, temperature=temperature, max_tokens=4),
                           timeout=60)  # fmt: skip
        assert reply.status_code == 200, reply.text
        answers.append(reply.json()["choices"][0]["message"]["content"])
    assert answers[0] == answers[1]
    greedy = chat(base, url, temperature=1e-40, stream=True)
    streamed = httpx.post(f"{base}/v1/chat/completions", json=greedy, timeout=60)
    assert streamed.status_code == 200 and '"error"' not in streamed.text
    assert "data: [DONE]" in streamed.text


# ------------------------------------------------------------ 9. the smaller ones


def test_the_queue_holds_max_queue_waiting_besides_the_running_job(base, media, hook):
    """Finding 9: --max-queue 2 let only 1 wait: now 2 wait while one runs."""
    admitted, release = threading.Event(), threading.Event()

    def hold(point: str, **context) -> None:
        if point == "serve.job":
            admitted.set()
            assert release.wait(timeout=60)

    hook(hold)
    url = f"file://{media['a']}"
    replies: list[httpx.Response] = []
    askers = [threading.Thread(target=lambda: replies.append(tokens(base, url)))]
    askers[0].start()
    assert admitted.wait(timeout=60)
    for _ in range(2):
        askers.append(threading.Thread(target=lambda: replies.append(tokens(base, url))))
        askers[-1].start()
    deadline = time.monotonic() + 30
    while httpx.get(f"{base}/health", timeout=10).json()["waiting"] < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    refused(tokens(base, url), 503, "server_busy")
    release.set()
    for asker in askers:
        asker.join(timeout=60)
    assert [r.status_code for r in replies] == [200, 200, 200]


def test_host_and_content_type_without_a_key(base):
    """Finding 9: without --api-key, any Host and any content type were served (DNS
    rebinding, cross-site form posts)."""
    health = f"{base}/health"
    assert httpx.get(health, headers={"host": "evil.example:80"}).status_code == 403
    assert httpx.get(health, headers={"host": "localhost:1"}).status_code == 200
    form = httpx.post(f"{base}/v1/video/tokens", content=b'{"video_url": {"url": "x"}}',
                      headers={"content-type": "text/plain"})  # fmt: skip
    refused(form, 415, "unsupported_media_type")
    assert httpx.head(health).status_code == 200  # HEAD /health gave 405


def test_bearer_in_any_case_and_one_authorization_header(sf):
    """Finding 9: ``bearer`` was refused, and with two Authorization headers the
    first decided."""
    with serve_in_thread(sf, api_key="k3y") as url:
        models = f"{url}/v1/models"
        assert httpx.get(models, headers={"authorization": "bearer k3y"}).status_code == 200
        assert httpx.get(models, headers={"authorization": "BEARER k3y"}).status_code == 200
        two = [("authorization", "Bearer k3y"), ("authorization", "Bearer wrong")]
        refused(httpx.get(models, headers=two), 401, "invalid_api_key")
        refused(httpx.get(models, headers={"authorization": "Basic k3y"}), 401)
        # with a key, another Host is served (the key is what a page cannot send)
        other = {"authorization": "Bearer k3y", "host": "x.y"}
        assert httpx.get(models, headers=other).status_code == 200


def test_errors_name_no_server_path(base, media, tmp_path):
    """Finding 9: a video that cannot be decoded named the server's temporary copy."""
    junk = b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000)
    for url in (data_url(junk),):
        error = refused(tokens(base, url), 400)
        assert "/" not in error["message"].replace("data:video/", ""), error
        assert ".video" not in error["message"]


def test_a_job_past_its_time_limit_ends_with_504(sf, media, hook):
    """Every job has --job-timeout-s: one held past it ends with 504 job_timeout,
    whole or streamed, and the next job runs."""
    slow = threading.Event()

    def late(point: str, **context) -> None:
        if point == "serve.job" and not slow.is_set():
            time.sleep(1.5)

    hook(late)
    with serve_in_thread(sf, media_dir=media["root"], job_timeout_s=1) as url:
        video = data_url(read(media["a"]))
        refused(tokens(url, video), 504, "job_timeout")
        streamed = httpx.post(f"{url}/v1/chat/completions",
                              json=chat(url, video, stream=True), timeout=60)  # fmt: skip
        refused(streamed, 504, "job_timeout")
        slow.set()
        assert visual_tokens(tokens(url, video)).numel() > 0


def test_decord_is_refused_by_the_service(sf):
    """Both backends the service could offer obey the limits, or it refuses one:
    decord cannot check frames as they are decoded."""
    from sfllava_ext.serve.engine import Engine

    sf.backend, backend = "decord", sf.backend
    try:
        with pytest.raises(ValueError, match="decord"):
            Engine(sf, ServeConfig())
    finally:
        sf.backend = backend


def test_a_large_data_url_is_decoded_from_the_body_as_sent(base, media, tmp_path):
    """Finding 4's mechanism: a data: URL's characters are cut out of the body before
    parsing; the video decoded is the one sent, whether the client escaped its
    slashes (``\\/``, then the body is parsed whole) or another field holds
    ``;base64,`` first."""
    from sfllava_ext.serve.body import PAYLOAD_BYTES

    video = write_test_video(tmp_path / "big.mp4", 96, 64, 48, pattern="noise", gop=4)
    data = read(video)
    assert len(data) * 4 // 3 > PAYLOAD_BYTES  # the cut applies
    sha = hashlib.sha256(data).hexdigest()
    url = data_url(data)
    plain = tokens(base, url)
    assert plain.headers["x-video-sha256"] == sha
    escaped = json.dumps({"video_url": {"url": url}}).replace("/", "\\/").encode()
    reply = post_raw(base, escaped, path="/v1/video/tokens")
    assert reply.headers["x-video-sha256"] == sha
    assert torch.equal(visual_tokens(reply), visual_tokens(plain))
    decoy = ";base64," + "A" * (PAYLOAD_BYTES + 10)
    body = chat(base, url, question=decoy)
    body["messages"][0]["content"].reverse()  # the question first
    reply = post_raw(base, json.dumps(body).encode())
    # the video decoded, and the question kept whole: too long for the demo's context
    refused(reply, 400, "context_length_exceeded")


# ------------------------------------------ second variants (a review of the fixes)


def test_a_huge_question_is_refused_before_the_worker(base, media):
    """Finding 4/5, second variant: a question of megabytes (the body limit is sized
    for a base64 video) held the worker past --job-timeout-s while it was tokenized.
    The JSON beside the video holds at most 1 MiB of text: 413 before any job."""
    url = f"file://{media['a']}"
    before = httpx.get(f"{base}/health").json()
    started = time.monotonic()
    reply = httpx.post(f"{base}/v1/chat/completions",
                       json=chat(base, url, question="word " * 250_000), timeout=60)  # fmt: skip
    refused(reply, 413, "request_too_large")
    assert time.monotonic() - started < 10
    after = httpx.get(f"{base}/health").json()
    assert (after["completed"], after["failed"]) == (before["completed"], before["failed"])


def test_a_body_dribbled_slowly_is_cut_off(base):
    """Finding 4, second variant: a byte now and then, each within --read-timeout-s,
    held an upload slot for ever; a body must average 64 KiB/s after the grace."""
    with raw_connection(base) as sock:
        sock.sendall(head(base, 1_200_000))
        started = time.monotonic()
        sock.settimeout(0.5)
        status = 0
        while not status and time.monotonic() - started < 10:
            try:
                sock.sendall(b" ")
                status = status_of(sock)
            except TimeoutError:
                continue
            except OSError:
                break
        assert status == 408
        assert time.monotonic() - started < 5


def test_many_small_bodies_share_one_budget(base, monkeypatch):
    """Finding 4, second variant: bodies under 1 MiB took no upload slot, so hundreds
    of them held gigabytes. They share a budget (64 MiB; 300 KB here): past it 503."""
    from sfllava_ext.serve import body

    monkeypatch.setattr(body, "SMALL_BODIES_BYTES", 300_000)
    socks = []
    try:
        for _ in range(3):
            socks.append(raw_connection(base))
            socks[-1].sendall(head(base, 120_000) + b"x" * 1000)
        # 3 x 120 KB > 300 KB: one is refused at once (whichever the server reads
        # last), the two others wait for their bodies until --read-timeout-s
        assert sorted(status_of(sock) for sock in socks) == [408, 408, 503]
    finally:
        for sock in socks:
            sock.close()


def test_error_messages_echo_no_large_field(base, media):
    """Finding 9, second variant: a 100,000-character ``model`` came back whole in
    the 404; a field's value or name is quoted to 64 characters."""
    body = chat(base, f"file://{media['a']}", model="m" * 100_000)
    reply = httpx.post(f"{base}/v1/chat/completions", json=body, timeout=60)
    error = refused(reply, 404, "model_not_found")
    assert len(reply.content) < 600, error
    body = {**chat(base, f"file://{media['a']}"), "k" * 100_000: 1}
    reply = httpx.post(f"{base}/v1/chat/completions", json=body, timeout=60)
    refused(reply, 400)
    assert len(reply.content) < 600


def test_a_whole_request_whose_client_left_is_skipped(base, media, hook):
    """A whole (not streamed) request whose client left while it waited still ran;
    its job is now skipped (and a generation running for it stops)."""
    admitted, release = threading.Event(), threading.Event()

    def hold(point: str, **context) -> None:
        if point == "serve.job" and not admitted.is_set():
            admitted.set()
            assert release.wait(timeout=60)

    hook(hold)
    url = f"file://{media['a']}"
    first = threading.Thread(target=lambda: tokens(base, url))
    first.start()
    assert admitted.wait(timeout=60)
    cancelled = httpx.get(f"{base}/health").json()["cancelled"]
    with pytest.raises(httpx.ReadTimeout):  # the client leaves while its job waits
        httpx.post(f"{base}/v1/chat/completions", json=chat(base, url), timeout=1)
    time.sleep(0.3)
    release.set()
    first.join(timeout=60)
    deadline = time.monotonic() + 30
    while httpx.get(f"{base}/health").json()["cancelled"] == cancelled:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_host_names_are_parsed_strictly():
    from sfllava_ext.serve.guards import host_name

    assert host_name(b"LocalHost:8000") == "localhost"
    assert host_name(b"[::1]:8000") == "::1"
    for bad in (b"[::1]evil.com", b"[::1].evil.com:80", b"localhost:evil", b"::1", b""):
        assert host_name(bad) is None


# ----------------------------------------- found by the request fuzz (issue 27)


def test_no_schema_page_answers_without_the_key(sf):
    """The fuzz (benchmarks/fuzz_serve.py): FastAPI's ``/openapi.json`` answered 200
    without the API key, a route docs/security.md did not list; now 404, like the
    docs pages, key or no key."""
    with serve_in_thread(sf, api_key="k3y") as url:
        for path in ("/openapi.json", "/docs", "/redoc"):
            for headers in ({}, {"authorization": "Bearer k3y"}):
                reply = httpx.get(f"{url}{path}", headers=headers)
                assert refused(reply, 404)["code"] is None


def test_a_trailing_slash_is_a_404_not_a_redirect(base):
    """The fuzz: ``/health/`` or ``/v1/models/`` got a 307 (no JSON body) redirecting to
    the ``Host`` the client named (``localhost`` here, any name with a key); now the 404
    of any other unknown route."""
    paths = ["/health/", "/v1/models/", "/v1/chat/completions/", "/v1/video/tokens/"]
    for path in paths:
        method = "GET" if path in ("/health/", "/v1/models/") else "POST"
        headers = {"host": "localhost", "content-type": "application/json"}
        reply = httpx.request(method, f"{base}{path}", headers=headers, content=b"{}")
        assert "location" not in reply.headers, path
        refused(reply, 404)


def test_bad_base64_is_refused_without_the_decoders_text(base):
    """A data: URL with a character outside base64 names where it is in the payload,
    not binascii's exception text (no exception's text reaches a client)."""
    payload = base64.b64encode(b"\x00" * 300).decode()
    bad = payload[:200] + "!" + payload[201:]
    error = refused(tokens(base, "data:video/mp4;base64," + bad), 400)
    assert error["message"] == (
        "the data: URL is not valid base64 (in its payload's bytes 0 to 400)"
    ), error
    assert error["param"] == "video_url.url"


# ------------------------------------------- found by the fuzz's review (issue 27)


@pytest.mark.parametrize("url", ["file://[::1/a.mp4", "file://a]b/x", "file://[zz]/a.mp4"])
def test_a_file_url_with_a_malformed_host_is_a_400(base, url, caplog):
    """``urlparse`` raised ValueError for these hosts: a 500 ``internal_error`` with a
    logged traceback, on both routes; now the 400 of any file:// URL naming a host."""
    caplog.set_level(logging.WARNING)
    error = refused(tokens(base, url), 400)
    assert error["code"] is None and error["param"] == "video_url.url", error
    reply = httpx.post(f"{base}/v1/chat/completions", json=chat(base, url), timeout=60)
    error = refused(reply, 400)
    assert error["param"] == "messages[0].content[0].video_url.url", error
    assert "host" in error["message"] and "Invalid IPv6" not in error["message"]
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


def test_a_path_under_a_regular_file_is_not_found(base, media):
    """``a.mp4/x`` raised NotADirectoryError, which the OSError branch answered 403
    ``unreadable``; no such file exists: 404 ``file_not_found``, as for a name longer
    than the file system takes."""
    for url in (f"file://{media['a']}/x", f"file://{media['a']}/", f"file://{media['root']}/"
                + "x" * 5000):  # fmt: skip
        error = refused(tokens(base, url), 404, "file_not_found")
        assert error["param"] == "video_url.url"


def test_a_quoted_value_is_64_characters_after_its_escapes(base, media):
    """``repr`` turned 64 characters into up to 640 (``\\U000e0001``): messages of 717
    and 2,263 characters came back. The quoted text is now at most 64 characters, and a
    refusal of unknown fields names the first only."""
    from sfllava_ext.serve.errors import shown

    for value in ("\U000e0001" * 100, "\x00" * 70, "x" * 100_000, "\x7f" * 64, "é" * 65):
        quoted = shown(value)
        assert len(quoted) <= 64 and quoted.startswith("'"), quoted
    assert shown("short") == "'short'" and shown(1.5) == "1.5"
    url = f"file://{media['a']}"
    reply = httpx.post(
        f"{base}/v1/chat/completions", json=chat(base, url, model="\U000e0001" * 100), timeout=60
    )
    fixed = "the model  does not exist; this server serves 'sfllava-demo'"
    assert len(refused(reply, 404, "model_not_found")["message"]) <= len(fixed) + 64
    body = {**chat(base, url), **{"\x00" * 70 + str(i): 1 for i in range(9)}}
    error = refused(httpx.post(f"{base}/v1/chat/completions", json=body, timeout=60), 400)
    assert len(error["message"]) <= 64 + len("unsupported field  (and 8 more)"), error
    assert error["message"].endswith("(and 8 more)") and error["param"] == "\x00" * 64


def test_user_must_be_a_string(base, media):
    """``user`` of any type was taken; OpenAI's type is a string (null: left out)."""
    url = f"file://{media['a']}"
    for value in ({"a": [1, {"b": 2}]}, [1], 3, True):
        reply = httpx.post(f"{base}/v1/chat/completions", json=chat(base, url, user=value))
        assert refused(reply, 400)["param"] == "user", value
    for value in ("someone", None):
        reply = httpx.post(
            f"{base}/v1/chat/completions", json=chat(base, url, user=value), timeout=60
        )
        assert reply.status_code == 200, reply.text


def test_a_client_that_leaves_mid_body_gets_nothing(base):
    """The 400 for a body its client cut short (half-closed) is raised only after
    uvicorn saw the connection close: nothing is sent (docs/security.md, under the
    table of statuses)."""
    with raw_connection(base) as sock:
        sock.sendall(head(base, 100) + b'{"video_url":')
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(65536) == b""


def test_a_stream_that_fails_ends_with_done():
    """docs/security.md: a failure after a stream's first event is an SSE error event,
    then ``[DONE]``; the stream stopped at the error event."""
    import asyncio

    from sfllava_ext.serve import sse
    from sfllava_ext.serve.errors import job_timeout

    async def run() -> list[str]:
        events = sse.EventQueue()
        events.put(sse.Piece("a"))
        events.put(sse.Failed(job_timeout()))
        stream = sse.chat_events(events, "c", "m", False, threading.Event())
        return [piece async for piece in stream]

    out = asyncio.run(run())
    assert out[-1] == sse.DONE and json.loads(out[-2][len("data: ") :])["error"]["code"] == (
        "job_timeout"
    )
