"""The session file is public: a file that main wrote before the package was laid out by
stage (``data/session_demo.safetensors``, of ``data/session_demo.mp4``) still loads, and
the demo model's settings keys are the ones main computed then
(``data/session_demo_keys.json``), so that a rerun of ``sfllava embed`` skips what is
done. The fingerprint behind the key is plain data: it names no class or module, so no
move of the code can change it."""

from __future__ import annotations

import json

import pytest
import torch
from support import DATA

from sfllava_ext import ModelSpec, VideoSession, sample_frame_indices
from sfllava_ext.session.file import settings_key

KEYS = json.loads((DATA / "session_demo_keys.json").read_text())


@pytest.fixture(scope="module")
def fixture_sf():
    return ModelSpec(**KEYS["fixture_spec"]).build()


def test_a_file_written_before_the_move_loads_with_its_key(fixture_sf):
    assert settings_key(fixture_sf) == KEYS["fixture_settings_key"]
    session = VideoSession.load(DATA / "session_demo.safetensors", fixture_sf)
    assert list(session.tokens.shape) == KEYS["tokens_shape"]
    assert session.tokens.dtype == fixture_sf.dtype
    assert session.info["frame_indices"] == sample_frame_indices(8, 4)
    assert session.info.total_frames == 8 and session.info.fps == 8.0
    # the stored tokens are the ones this model makes of the same video now (bf16 on
    # the CPU: a CPU with other vector units may round a few values differently)
    fresh = fixture_sf.encode(str(DATA / "session_demo.mp4")).float()
    stored = session.tokens.float()
    assert (fresh - stored).abs().max() <= 1e-2 * stored.abs().max()
    # and the loaded session answers
    assert torch.isfinite(session.next_token_logits("What is moving?")).all()
    assert isinstance(session.answer("What is moving?", max_new_tokens=2), str)


def test_the_demo_models_settings_key_is_unchanged():
    assert settings_key(ModelSpec(device="cpu").build()) == KEYS["demo_default_settings_key"]


def test_the_fingerprint_is_plain_data_that_names_no_code(fixture_sf):
    def plain(value) -> bool:
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        if isinstance(value, list):
            return all(plain(v) for v in value)
        return value is None or isinstance(value, (str, int, float, bool))

    fingerprint = fixture_sf.fingerprint()
    assert plain(fingerprint)
    text = json.dumps(fingerprint)
    assert "sfllava_ext" not in text and "<" not in text  # no module path, no repr
