"""Question files -> :class:`EvalItem`: our own layout (JSONL or CSV) and the layouts
the official SF-LLaVA evaluation reads, both its source CSV files (the IG-VLM ones) and
the JSON files its ``scripts/data/prepare_*`` scripts make from them.

    format        task        files read
    ours          any         items.jsonl / items.csv (docs/eval.md#our-layout)
    nextqa        mc          NExT_QA.csv, or the prepared val_qa.json
    egoschema     mc          EgoSchema.csv, or val_qa.json
    intentqa      mc          IntentQA.csv, or val_qa.json
    msvd          open        MSVD_QA.csv, or val_q.json (+ val_a.json beside it)
    msrvtt        open        MSRVTT_QA.csv, or val_q.json (+ val_a.json)
    tgif          open        TGIF_FrameQA.csv, or val_q.json (+ val_a.json)
    activitynet   open        Activitynet_QA.csv, or test_q.json (+ test_a.json)
    vcgbench      generative  the folder of Generic_QA.csv, Temporal_QA.csv and
                              Consistency_QA1/2.csv, or of the three prepared JSON
                              files, or one of those JSON files

Video names become paths with :func:`resolve_video`: as the official inference does,
a name without an extension is tried with .mp4, .avi, .mov and .mkv, and ActivityNet's
videos (which VCGBench uses too) are stored with a ``v_`` prefix that the prepared files
drop and the official inference adds back.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .official import CRITERIA

__all__ = [
    "FORMATS",
    "TASKS",
    "VIDEO_EXTENSIONS",
    "DatasetError",
    "EvalItem",
    "load_items",
    "numbered_ids",
    "resolve_video",
]

TASKS = ("mc", "open", "generative")
#: format -> the task its files hold
FORMATS = {
    "ours": None,
    "nextqa": "mc",
    "egoschema": "mc",
    "intentqa": "mc",
    "msvd": "open",
    "msrvtt": "open",
    "tgif": "open",
    "activitynet": "open",
    "vcgbench": "generative",
}
#: the extensions the official open-ended inference tries, in its order
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv")
#: the criteria a generative item is judged on when it names none: VCGBench's generic
#: questions get three, its temporal ones one, its paired (consistency) ones one
GENERIC_CRITERIA = ("correctness", "detailed_orientation", "context")


class DatasetError(ValueError):
    """A question file that cannot be read as the format says: names the file, the line
    or row, and what is wrong."""


@dataclass(frozen=True)
class EvalItem:
    """One question to ask about one video.

    ``answer_number`` (0-based) and ``options`` are multiple choice's; ``answer`` is the
    reference text (open-ended, generative; for multiple choice the option's text, kept
    for the record); ``question2`` is the paired question of VCGBench's consistency
    criterion; ``task`` is what the official multiple-choice arithmetic averages over
    (one per file unless the file names several); ``category`` is reported apart, never
    averaged; ``criteria`` are the VCGBench criteria a generative item is judged on;
    ``source_id`` is the file's id where it repeats and ``id`` had to be made unique.
    """

    id: str
    video: str
    question: str
    answer: str | None = None
    options: tuple[str, ...] | None = None
    answer_number: int | None = None
    question2: str | None = None
    task: str = "default"
    category: str | None = None
    criteria: tuple[str, ...] = field(default=())
    source_id: str | None = None

    def record(self) -> dict[str, Any]:
        """The item's fields that a prediction line repeats (JSON-ready)."""
        out: dict[str, Any] = {"id": self.id, "video": self.video, "question": self.question}
        for name in ("question2", "answer", "answer_number", "category", "source_id"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.options is not None:
            out["options"] = list(self.options)
        if self.task != "default":
            out["task_name"] = self.task
        return out


def load_items(
    path: str | os.PathLike, task: str | None = None, fmt: str = "ours"
) -> list[EvalItem]:
    """The items of the question file (or VCGBench folder) ``path`` in format ``fmt``.

    ``task`` is required for our layout; an official format implies its own, and a
    different ``task`` is refused. Ids are the file's (the line number where our layout
    has none); an id that repeats gets ``#2``, ``#3``... so that every item has its own.

    Raises:
        FileNotFoundError: ``path`` does not exist. ValueError: an unknown ``fmt`` or
            ``task``, or a ``task`` the format does not hold. DatasetError: a malformed
            file (names the file and line).
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    implied = FORMATS[fmt]
    if implied is None and task is None:
        raise ValueError("task is required for our layout: --task mc, open or generative")
    if implied is not None and task not in (None, implied):
        raise ValueError(f"format {fmt!r} holds {implied} questions, not {task!r}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"dataset: {path} does not exist")
    if not (path.is_file() or (fmt == "vcgbench" and path.is_dir())):
        kind = "a folder" if path.is_dir() else "not a regular file"
        raise DatasetError(f"dataset: {path} is {kind}; give a question file")
    task = task or implied
    try:
        if fmt == "ours":
            items = _ours(path, task)
        elif implied == "mc":
            items = _official_mc(path, fmt)
        elif implied == "open":
            items = _official_open(path, fmt)
        else:
            items = _vcgbench(path)
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except (csv.Error, RecursionError) as exc:
        raise DatasetError(f"{path}: {type(exc).__name__}: {exc}") from None
    return _unique_ids(items)


def resolve_video(name: str, root: str | os.PathLike) -> Path | None:
    """The file a question file's video name means under ``root``: the name as given,
    then with each of :data:`VIDEO_EXTENSIONS`, then (for a name without its ``v_``) the
    same with ``v_`` in front. An absolute name is taken as it is. None when no file
    exists."""
    base = Path(name) if os.path.isabs(name) else Path(root) / name
    stems = [base]
    if not base.name.startswith("v_"):
        stems.append(base.with_name("v_" + base.name))
    for stem in stems:
        for candidate in (stem, *(stem.with_name(stem.name + ext) for ext in VIDEO_EXTENSIONS)):
            if candidate.is_file():
                return candidate
    return None


# ------------------------------------------------------------------ our layout


def _ours(path: Path, task: str) -> list[EvalItem]:
    rows = _csv_rows(path) if path.suffix.lower() == ".csv" else _jsonl_rows(path)
    items = []
    for where, row in rows:
        items.append(_our_item(row, task, where))
    if not items:
        raise DatasetError(f"{path}: no items")
    return items


def _jsonl_rows(path: Path) -> Iterable[tuple[str, dict]]:
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{where}: not a JSON line ({exc.msg})") from None
            except RecursionError:
                raise DatasetError(f"{where}: JSON nested too deeply") from None
            if not isinstance(row, dict):
                raise DatasetError(f"{where}: a line must be a JSON object")
            row.setdefault("id", str(number))
            yield where, row


def _csv_rows(path: Path) -> Iterable[tuple[str, dict]]:
    with open(path, newline="", encoding="utf-8") as f:
        for number, row in enumerate(csv.DictReader(f), 2):
            where = f"{path}:{number}"
            row = {k: v for k, v in row.items() if k is not None and v not in (None, "")}
            if "options" in row:
                try:
                    row["options"] = json.loads(row["options"])
                except json.JSONDecodeError:
                    raise DatasetError(f"{where}: options must be a JSON list") from None
            else:
                numbered = sorted(
                    (k for k in row if k[:1] == "a" and k[1:].isdigit()), key=lambda k: int(k[1:])
                )
                if numbered:
                    row["options"] = [row[k] for k in numbered]
            row.setdefault("id", str(number - 1))
            yield where, row


def _text(row: Mapping, key: str, where: str, required: bool = True) -> str | None:
    value = row.get(key)
    if value is None:
        if required:
            raise DatasetError(f"{where}: {key!r} is missing")
        return None
    if not isinstance(value, str) or not value.strip():
        raise DatasetError(f"{where}: {key!r} must be a non-empty string, got {value!r}")
    return value


def _our_item(row: Mapping, task: str, where: str) -> EvalItem:
    common = dict(
        id=str(row["id"]),
        video=_text(row, "video", where),
        question=_text(row, "question", where),
        category=None if row.get("category") is None else str(row["category"]),
        task=str(row.get("task_name", "default")),
    )
    if task == "mc":
        options = row.get("options")
        if (
            not isinstance(options, list)
            or len(options) < 2
            or not all(isinstance(o, str) and o for o in options)
        ):
            raise DatasetError(f"{where}: 'options' must be a list of two or more strings")
        if len(options) > 26:
            raise DatasetError(f"{where}: at most 26 options, got {len(options)}")
        number = _answer_number(row.get("answer", row.get("answer_number")), len(options), where)
        return EvalItem(
            **common, options=tuple(options), answer_number=number, answer=options[number]
        )
    answer = _text(row, "answer", where)
    question2 = _text(row, "question2", where, required=False)
    if task == "open":
        return EvalItem(**common, answer=answer, question2=question2)
    criteria = row.get("criteria")
    if criteria is None:
        criteria = _default_criteria(question2, common["category"])
    elif isinstance(criteria, str):
        criteria = [c.strip() for c in criteria.split(",")]
    if (
        not isinstance(criteria, list | tuple)
        or not criteria
        or any(c not in CRITERIA for c in criteria)
    ):
        raise DatasetError(f"{where}: 'criteria' must name some of {', '.join(CRITERIA)}")
    if "consistency" in criteria and question2 is None:
        raise DatasetError(f"{where}: the consistency criterion needs 'question2'")
    return EvalItem(**common, answer=answer, question2=question2, criteria=tuple(criteria))


def _default_criteria(question2: str | None, category: str | None) -> tuple[str, ...]:
    if question2 is not None:
        return ("consistency",)
    if category == "temporal":
        return ("temporal",)
    return GENERIC_CRITERIA


def _answer_number(answer: Any, count: int, where: str) -> int:
    """An answer given as a letter ("B", "b") or a 0-based index (1, "1")."""
    number = None
    if isinstance(answer, bool):
        number = None
    elif isinstance(answer, int):
        number = answer
    elif isinstance(answer, str):
        text = answer.strip()
        if text.isdigit():
            number = int(text)
        elif len(text) == 1 and text.isalpha():
            number = ord(text.upper()) - ord("A")
    if number is None or not 0 <= number < count:
        raise DatasetError(
            f"{where}: 'answer' must be an option's letter or 0-based index (of {count}), "
            f"got {answer!r}"
        )
    return number


# ------------------------------------------------------------------ official layouts

# the IG-VLM CSV columns each official prepare script unpacks (the first, unnamed, is the
# row index); a CSV's header is checked against these names
_MC_COLUMNS = {
    "nextqa": ["", "video_name", "frame_count", "width", "height", "question", "answer_number",
               "question_id", "question_type", "a0", "a1", "a2", "a3", "a4", "answer"],
    "egoschema": ["", "video_name", "question_id", "question", "answer",
                  "a0", "a1", "a2", "a3", "a4"],
    "intentqa": ["", "video_name", "question", "question_id", "answer", "video_id",
                 "question_type", "a0", "a1", "a2", "a3", "a4"],
}  # fmt: skip
_OPEN_COLUMNS = ["", "video_id", "answer", "question", "video_name", "question_id", "question_type"]
_VCG_COLUMNS = ["", "video_name", "question", "question_id", "answer", "question_type"]
_TASK_NAMES = {"nextqa": "NExTQA", "egoschema": "EgoSchema", "intentqa": "IntentQA"}


def _official_csv(path: Path, columns: Sequence[str]) -> Iterable[tuple[str, dict]]:
    """Rows of an IG-VLM CSV, as dicts over ``columns``; the header row is skipped as the
    prepare scripts skip it, after checking it names the columns they unpack."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[1:]] != list(columns[1:]):
            raise DatasetError(
                f"{path}: expected the columns {','.join(columns)}, got {','.join(header or [])}"
            )
        for number, row in enumerate(reader, 2):
            if len(row) != len(columns):
                raise DatasetError(
                    f"{path}:{number}: expected {len(columns)} columns, got {len(row)}"
                )
            yield f"{path}:{number}", dict(zip(columns, row, strict=True))


def _json_list(path: Path) -> list[dict]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise DatasetError(f"{path}: expected a JSON list of objects")
    return data


def _official_mc(path: Path, fmt: str) -> list[EvalItem]:
    items = []
    if path.suffix.lower() == ".csv":
        for where, row in _official_csv(path, _MC_COLUMNS[fmt]):
            options = [row[f"a{i}"] for i in range(5)]
            if row["answer"] not in options:
                raise DatasetError(f"{where}: the answer {row['answer']!r} is not among a0..a4")
            # NExT-QA gives the index too, which must be the answer's (as its prepare
            # script asserts); EgoSchema and IntentQA the text (the first match wins,
            # as candidates.index does)
            number = options.index(row["answer"])
            if fmt == "nextqa" and row["answer_number"].strip() != str(number):
                raise DatasetError(
                    f"{where}: answer_number {row['answer_number']!r} is not the answer's "
                    f"position ({number})"
                )
            items.append(EvalItem(
                id=row["question_id"], video=f"{row['video_name']}.mp4", question=row["question"],
                answer=row["answer"], options=tuple(options), answer_number=number,
                task=_TASK_NAMES[fmt], category=row.get("question_type") or None,
            ))  # fmt: skip
        return items
    for number, row in enumerate(_json_list(path)):
        where = f"{path}[{number}]"
        try:
            options = [str(o) for o in row["candidates"]]
            items.append(EvalItem(
                id=str(row["question_id"]), video=str(row["video_name"]),
                question=str(row["question"]), answer=str(row.get("answer", "")) or None,
                options=tuple(options),
                answer_number=_answer_number(row["answer_number"], len(options), where),
                task=str(row.get("task_name", _TASK_NAMES[fmt])),
            ))  # fmt: skip
        except KeyError as exc:
            raise DatasetError(f"{where}: {exc.args[0]!r} is missing") from None
    return items


def _official_open(path: Path, fmt: str) -> list[EvalItem]:
    if path.suffix.lower() == ".csv":
        return [
            EvalItem(
                id=row["question_id"],
                video=row["video_name"],
                question=row["question"],
                answer=row["answer"],
                category=row["question_type"] or None,
            )  # fmt: skip
            for _, row in _official_csv(path, _OPEN_COLUMNS)
        ]
    answers_path = path.with_name(path.name.replace("_q.json", "_a.json"))
    if answers_path == path or not answers_path.exists():
        raise DatasetError(f"{path}: the answers file {answers_path.name} is not beside it")
    questions, answers = _json_list(path), _json_list(answers_path)
    if len(questions) != len(answers):
        raise DatasetError(
            f"{path}: {len(questions)} questions but {answers_path.name} has {len(answers)} answers"
        )
    items = []
    for number, (q, a) in enumerate(zip(questions, answers, strict=True)):
        where = f"{path}[{number}]"
        try:
            # the official inference pairs them by position; a differing id is an error
            # there too in effect, so it is refused here
            if str(q["question_id"]) != str(a.get("question_id", q["question_id"])):
                raise DatasetError(f"{where}: question_id {q['question_id']} pairs with answer "
                                   f"{a.get('question_id')}")  # fmt: skip
            video = str(q["video_name"])
            if fmt == "activitynet":  # the prepared file drops "v_"; the inference adds it
                video = "v_" + video
            items.append(EvalItem(
                id=str(q["question_id"]), video=video, question=str(q["question"]),
                answer=str(a["answer"]), category=None if a.get("type") is None else str(a["type"]),
            ))  # fmt: skip
        except KeyError as exc:
            raise DatasetError(f"{where}: {exc.args[0]!r} is missing") from None
    return items


_VCG_CSV = {"generic": "Generic_QA.csv", "temporal": "Temporal_QA.csv"}
_VCG_JSON = {
    "generic": "Video-ChatGPT-generic_val_qa.json",
    "temporal": "Video-ChatGPT-temporal_understanding_val_qa.json",
    "consistency": "Video-ChatGPT-consistency_val_qa.json",
}


def _vcgbench(path: Path) -> list[EvalItem]:
    """VCGBench: three question sets, each an item category with its criteria; ids are
    ``category/question_id`` (the sets reuse question ids)."""
    if path.is_file():
        by_name = {name: category for category, name in _VCG_JSON.items()}
        if path.name not in by_name:
            raise DatasetError(f"{path}: a VCGBench file is one of {', '.join(_VCG_JSON.values())}")
        return _vcg_json(path, by_name[path.name])
    items: list[EvalItem] = []
    if (path / _VCG_CSV["generic"]).exists():
        for category, name in _VCG_CSV.items():
            items += _vcg_csv_set(path / name, category)
        items += _vcg_csv_consistency(path / "Consistency_QA1.csv", path / "Consistency_QA2.csv")
        return items
    found = [c for c, name in _VCG_JSON.items() if (path / name).exists()]
    if not found:
        raise DatasetError(
            f"{path}: no VCGBench files (Generic_QA.csv, ..., or {', '.join(_VCG_JSON.values())})"
        )
    for category in found:
        items += _vcg_json(path / _VCG_JSON[category], category)
    return items


def _vcg_item(category: str, qid: str, video: str, question, answer: str) -> EvalItem:
    if category == "consistency":
        q1, q2 = question
        return EvalItem(id=f"{category}/{qid}", video=video, question=q1, question2=q2,
                        answer=answer, category=category, criteria=("consistency",))  # fmt: skip
    criteria = ("temporal",) if category == "temporal" else GENERIC_CRITERIA
    return EvalItem(id=f"{category}/{qid}", video=video, question=question, answer=answer,
                    category=category, criteria=criteria)  # fmt: skip


def _vcg_csv_set(path: Path, category: str) -> list[EvalItem]:
    if not path.exists():
        raise DatasetError(f"{path}: missing from the VCGBench folder")
    return [
        _vcg_item(category, row["question_id"], row["video_name"], row["question"], row["answer"])
        for _, row in _official_csv(path, _VCG_COLUMNS)
    ]


def _vcg_csv_consistency(first: Path, second: Path) -> list[EvalItem]:
    for path in (first, second):
        if not path.exists():
            raise DatasetError(f"{path}: missing from the VCGBench folder")
    rows = zip(
        _official_csv(first, _VCG_COLUMNS), _official_csv(second, _VCG_COLUMNS), strict=False
    )
    items = []
    for (where, one), (_, two) in rows:
        if one["question_id"] != two["question_id"]:
            raise DatasetError(
                f"{where}: question_id {one['question_id']} pairs with {two['question_id']}"
            )
        items.append(_vcg_item("consistency", one["question_id"], one["video_name"],
                               [one["question"], two["question"]], one["answer"]))  # fmt: skip
    return items


def _vcg_json(path: Path, category: str) -> list[EvalItem]:
    items = []
    for number, row in enumerate(_json_list(path)):
        where = f"{path}[{number}]"
        try:
            question = row["question"]
            if category == "consistency" and not (
                isinstance(question, list) and len(question) == 2
            ):
                raise DatasetError(f"{where}: a consistency question is a list of two")
            # the prepared files drop the "v_" that the official inference adds back
            video = "v_" + str(row["video_name"])
            items.append(
                _vcg_item(category, str(row["question_id"]), video, question, str(row["answer"]))
            )
        except KeyError as exc:
            raise DatasetError(f"{where}: {exc.args[0]!r} is missing") from None
    return items


def numbered_ids(ids: list[str]) -> list[str]:
    """``ids`` with each repeat numbered: the second ``x`` becomes ``x#2``, the third
    ``x#3``... (the official open-ended scorer keeps only the last line of an id in its
    figures; :mod:`.summary` does the same)."""
    seen: dict[str, int] = {}
    out = []
    for id_ in ids:
        seen[id_] = seen.get(id_, 0) + 1
        out.append(id_ if seen[id_] == 1 else f"{id_}#{seen[id_]}")
    return out


def _unique_ids(items: list[EvalItem]) -> list[EvalItem]:
    """Items with an id each (:func:`numbered_ids`), the file's kept in ``source_id``."""
    return [
        item if new == item.id else dataclasses.replace(item, id=new, source_id=item.id)
        for item, new in zip(items, numbered_ids([item.id for item in items]), strict=True)
    ]
