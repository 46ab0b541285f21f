"""lmms-eval 0.7.3 running ``--model sfllava`` (:mod:`sfllava_ext.eval.lmms_model`) on
the demo model, against :class:`~sfllava_ext.SlowFastLlava` in this process: the entry
point registers the model; lmms-eval's own CLI, offline, scores a local video task (one
video unreadable) and a local multiple-choice task exactly as our own answers and
next-token logits score them; log-likelihoods equal ``log_softmax`` of
``VideoSession.next_token_logits``; generation honours ``until`` and ``max_new_tokens``.

Skipped where lmms-eval is not installed; with ``SFLLAVA_REQUIRE_LMMS_EVAL=1`` (CI's
lmms-eval step) its absence fails instead. Run from outside the clone, so that the
installed (compiled) package is the one imported."""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import subprocess
import sys

import pytest
import torch

if importlib.util.find_spec("lmms_eval") is None:
    if os.environ.get("SFLLAVA_REQUIRE_LMMS_EVAL") == "1":
        raise RuntimeError("SFLLAVA_REQUIRE_LMMS_EVAL=1 but lmms-eval is not importable")
    pytest.skip("lmms-eval is not installed (docs/lmms_eval.md)", allow_module_level=True)

from lmms_eval.api.instance import GenerationResult, Instance  # noqa: E402
from support.videos import write_test_video  # noqa: E402

from sfllava_ext import ModelSpec  # noqa: E402
from sfllava_ext.eval.lmms_model import SlowFastLlavaLMMS  # noqa: E402

NUM_FRAMES = 8
SLOWFAST = "slowfast-slow_4frms_spatial_1d_max_pool-fast_2x2"
NEW_TOKENS = 8
SETTINGS = {"num_frames": NUM_FRAMES, "slowfast": SLOWFAST, "dtype": "float32", "device": "cpu"}
MODEL_ARGS = "pretrained=demo," + ",".join(f"{k}={v}" for k, v in SETTINGS.items())
OFFLINE = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
CHOICES = ["red", "dog", "car"]  # one demo-tokenizer token each after the prompt

# lmms-eval's side of the tasks: the visuals, the prompt, the metric
UTILS = """
def doc_to_visual(doc):
    return [doc["video"]]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return doc["question"]


def process_results(doc, results):
    return {"exact_match": float(results[0].strip() == doc["answer"])}
"""
QA_YAML = """
task: sfllava_local_qa
dataset_path: json
dataset_kwargs:
  data_files:
    test: qa.jsonl
test_split: test
output_type: generate_until
doc_to_visual: !function utils.doc_to_visual
doc_to_text: !function utils.doc_to_text
doc_to_target: answer
generation_kwargs:
  max_new_tokens: {new_tokens}
  temperature: 0
  do_sample: false
process_results: !function utils.process_results
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""
MC_YAML = """
task: sfllava_local_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: mc.jsonl
test_split: test
output_type: multiple_choice
doc_to_visual: !function utils.doc_to_visual
doc_to_text: !function utils.doc_to_text
doc_to_choice: {choices}
doc_to_target: gold
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


@pytest.fixture(scope="module")
def sf():
    return ModelSpec(model="demo", **SETTINGS).build()


@pytest.fixture(scope="module")
def adapter():
    return SlowFastLlavaLMMS(pretrained="demo", **SETTINGS)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[str]:
    """Three readable videos of different content, and one file that is no video."""
    folder = tmp_path_factory.mktemp("videos")
    paths = [
        write_test_video(folder / f"clip{i}.mp4", 64, 48, num_frames=24, pattern=pattern)
        for i, pattern in enumerate(("moving", "noise", "flat"))
    ]
    bad = folder / "broken.mp4"
    bad.write_bytes(b"this is not a video" * 64)
    return [*paths, str(bad)]


def _instance(kind: str, args: tuple, doc_id: int = 0) -> Instance:
    meta = {"task": "t", "doc_id": doc_id, "repeats": 1}
    return Instance(request_type=kind, arguments=args, idx=0, metadata=meta)


def _visual(doc):
    return [doc["video"]]


def test_the_entry_point_registers_the_model():
    from lmms_eval.models import MODEL_REGISTRY_V2, get_model

    resolved = MODEL_REGISTRY_V2.resolve("sfllava")
    assert (resolved.model_type, resolved.class_name) == ("simple", "SlowFastLlavaLMMS")
    assert get_model("sfllava") is SlowFastLlavaLMMS


def test_one_token_loglikelihood_is_next_token_logsoftmax(adapter, videos):
    """The adapter's log-likelihood against ``VideoSession.next_token_logits``; through
    ``loglikelihood``, a multiple-choice option's score is its negative, wrapped."""
    sf = adapter.model
    session = sf.session(videos[0])
    question = "What moves in the video?"
    logprobs = torch.log_softmax(
        session.next_token_logits(question, prompt=adapter.template).float(), -1
    )
    text = adapter.template.replace("{question}", question)
    for word in CHOICES:
        token = sf.llm.tokenize(text + " " + word).after[-1]
        got, greedy = adapter.log_likelihood(session, question, " " + word)
        assert abs(got - float(logprobs[token])) <= 1e-4
        assert greedy == (int(logprobs.argmax()) == token)
    best = int(logprobs.argmax())  # the greedy token, as text that tokenizes back to it
    word = sf.tokenizer.convert_ids_to_tokens(best).replace("\u2581", " ")
    assert sf.llm.tokenize(text + word).after[-1] == best
    assert adapter.log_likelihood(session, question, word) == (
        pytest.approx(float(logprobs[best]), abs=1e-4),
        True,
    )

    adapter.task_dict = {"t": {"test": [{"video": videos[0]}]}}
    requests = [_instance("loglikelihood", (question, " red", _visual, 0, "t", "test"))]
    [result] = adapter.loglikelihood(requests)
    assert isinstance(result, GenerationResult)
    score, _ = result.text
    assert score == -adapter.log_likelihood(session, question, " red")[0]


def test_multi_token_loglikelihood_is_a_full_forward(adapter, videos):
    """A continuation of several tokens against SlowFastLlava.build_inputs (its own
    embedding assembly) and one plain forward pass."""
    sf = adapter.model
    question, continuation = "What moves in the video?", " B) the dog"
    got, greedy = adapter.log_likelihood(sf.session(videos[1]), question, continuation)
    text = adapter.template.replace("{question}", question)
    target = sf.llm.tokenize(text + continuation).after[len(sf.llm.tokenize(text).after) :]
    assert len(target) >= 3
    embeds, mask = sf.build_inputs([videos[1]], [text + continuation])
    with torch.inference_mode():
        logits = sf.llm.model(inputs_embeds=embeds, attention_mask=mask).logits[0].float()
    logprobs = torch.log_softmax(logits[-len(target) - 1 : -1], -1)
    want = float(sum(logprobs[i, t] for i, t in enumerate(target)))
    assert got == pytest.approx(want, abs=1e-4)
    assert greedy == all(int(logprobs[i].argmax()) == t for i, t in enumerate(target))


def test_generate_until_honours_until_and_max_new_tokens(adapter, sf, videos, monkeypatch):
    """Several questions about one video (one session) and an unreadable one, in order;
    ``until`` cuts the text, ``max_new_tokens`` bounds it; answers are
    SlowFastLlava.answer's."""
    opened = []
    session = adapter.model.session
    monkeypatch.setattr(adapter.model, "session", lambda v: opened.append(v) or session(v))
    docs = [{"video": videos[0]}, {"video": videos[3]}, {"video": videos[1]}]
    adapter.task_dict = {"t": {"test": docs}}
    questions = ["What is happening?", "What is happening?", "Who is there?", "Where is it?"]
    doc_ids = [0, 1, 0, 2]
    full = {
        (q, d): sf.answer(docs[d]["video"], q, max_new_tokens=NEW_TOKENS)
        for q, d in zip(questions, doc_ids, strict=True)
        if d != 1
    }
    cut = next(a for a in full.values() if len(a) > 2)[1:3]  # a stop string that occurs
    kwargs = {"max_new_tokens": NEW_TOKENS, "temperature": 0, "until": [cut]}
    requests = [
        _instance("generate_until", (q, kwargs, _visual, d, "t", "test"), d)
        for q, d in zip(questions, doc_ids, strict=True)
    ]
    got = adapter.generate_until(requests)
    want = [
        "" if d == 1 else full[(q, d)].split(cut, 1)[0]
        for q, d in zip(questions, doc_ids, strict=True)
    ]
    assert got == want
    assert any(cut in a for a in full.values())
    assert opened == [videos[0], videos[3], videos[1]]  # each video decoded once
    one = {"max_new_tokens": 1, "temperature": 0}
    [short] = adapter.generate_until(
        [_instance("generate_until", (questions[0], one, _visual, 0, "t", "test"))]
    )
    assert short == sf.answer(videos[0], questions[0], max_new_tokens=1)


def test_lmms_eval_cli_scores_as_our_own_answers(sf, videos, tmp_path):
    """lmms-eval's CLI, offline, on a local generation task and a local multiple-choice
    task: the metrics it reports are those our own answers and logits give."""
    template = sf.prompt_template("image_seq_v3")
    qa = [
        (videos[0], "What is happening in the video?"),
        (videos[0], "What colour is the box?"),
        (videos[1], "What is happening in the video?"),
        (videos[2], "Is anything moving?"),
        (videos[3], "What is happening in the video?"),  # unreadable: "" on both sides
    ]
    ours = [
        "" if video == videos[3] else sf.answer(video, q, max_new_tokens=NEW_TOKENS)
        for video, q in qa
    ]
    # the gold answer is ours for items 0 and 2 only: any other answer changes the metric
    gold = [a if i in (0, 2) else f"not {a}" for i, a in enumerate(ours)]
    expected_qa = sum(a == g for a, g in zip(ours, gold, strict=True)) / len(qa)

    mc = [(videos[0], "What do you see?"), (videos[1], "What is shown?"), (videos[2], "What?")]
    golds, references, expected_mc = [], [], 0.0
    for i, (video, q) in enumerate(mc):
        logprobs = torch.log_softmax(sf.session(video).next_token_logits(q).float(), -1)
        text = template.replace("{question}", q)
        scores = [float(logprobs[sf.llm.tokenize(f"{text} {c}").after[-1]]) for c in CHOICES]
        references.append(scores)
        best, worst = scores.index(max(scores)), scores.index(min(scores))
        golds.append(worst if i == 1 else best)  # the least likely option is right once
        expected_mc += (golds[-1] == best) / len(mc)

    task_dir = tmp_path / "tasks"
    task_dir.mkdir()
    (task_dir / "utils.py").write_text(UTILS)
    (task_dir / "qa.yaml").write_text(QA_YAML.format(new_tokens=NEW_TOKENS))
    (task_dir / "mc.yaml").write_text(MC_YAML.format(choices=json.dumps(CHOICES)))
    with open(task_dir / "qa.jsonl", "w") as f:
        for (video, q), g in zip(qa, gold, strict=True):
            f.write(json.dumps({"video": video, "question": q, "answer": g}) + "\n")
    with open(task_dir / "mc.jsonl", "w") as f:
        for (video, q), g in zip(mc, golds, strict=True):
            f.write(json.dumps({"video": video, "question": q, "gold": g}) + "\n")

    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "lmms_eval", "--model", "sfllava", "--model_args", MODEL_ARGS,
        "--tasks", "sfllava_local_qa,sfllava_local_mc", "--include_path", str(task_dir),
        "--output_path", str(out), "--log_samples", "--batch_size", "1",
    ]  # fmt: skip
    env = {**os.environ, **OFFLINE, "HF_HOME": str(tmp_path / "hf")}
    run = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=420
    )
    log = run.stdout[-4000:] + run.stderr[-4000:]
    # lmms-eval exits 0 even when the evaluation raised: the results file is the proof
    found = glob.glob(str(out / "**" / "*results*.json"), recursive=True)
    assert run.returncode == 0 and found, log
    results = json.load(open(found[0]))["results"]
    assert results["sfllava_local_qa"]["exact_match,none"] == pytest.approx(expected_qa), log
    assert results["sfllava_local_mc"]["acc,none"] == pytest.approx(expected_mc), log
    assert 0 < expected_qa < 1 and 0 < expected_mc < 1  # both metrics can tell answers apart

    # item by item: lmms-eval's logged answers are ours, its option scores our
    # log-likelihoods negated (0.7.3 picks the lowest; the module's docstring)
    answers = _logged(out, "sfllava_local_qa")
    assert [answers[i] for i in range(len(qa))] == ours
    assert "unreadable video" in log
    options = _logged(out, "sfllava_local_mc")
    for i in range(len(mc)):
        logged = [-float(score) for score, _ in options[i]]
        assert logged == pytest.approx(references[i], abs=1e-4)


def _logged(out, task: str) -> dict:
    """doc_id -> filtered response in lmms-eval's --log_samples file of ``task``."""
    [samples] = glob.glob(str(out / "**" / f"*samples_{task}*.jsonl"), recursive=True)
    return {r["doc_id"]: r["filtered_resps"] for r in map(json.loads, open(samples))}


def test_refused_requests_say_why(adapter):
    with pytest.raises(NotImplementedError, match="multi_round"):
        adapter.generate_until_multi_round([])
    with pytest.raises(NotImplementedError, match="acc_mutual_info"):
        adapter.loglikelihood([_instance("loglikelihood", ("", " red"))])
    with pytest.raises(TypeError, match="unknown model_args"):
        SlowFastLlavaLMMS(pretrained="demo", frames=3)
    with pytest.raises(ValueError, match="dtype"):
        SlowFastLlavaLMMS(pretrained="demo", dtype="float8")
