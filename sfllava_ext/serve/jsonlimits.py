"""A request's JSON, parsed within limits (:func:`parse_json`): strict UTF-8; at most
:data:`MAX_VALUES` values (counted on the bytes before parsing: an array of a million
empty objects would cost gigabytes), :data:`MAX_DEPTH` levels, integers of at most
:data:`MAX_DIGITS` digits; no ``NaN``/``Infinity``; no lone surrogate (``"\\ud800"``)
in any key or string. Each is a 400 (``invalid_json``) that says which.
:func:`text_chars` counts the characters of its strings, for the limit on the JSON
beside a request's video (:mod:`.body`).
"""

from __future__ import annotations

import json
from typing import Any

from .errors import ApiError

__all__ = ["MAX_DEPTH", "MAX_DIGITS", "MAX_VALUES", "parse_json", "text_chars"]

MAX_DEPTH = 32  # the chat schema needs 6
MAX_VALUES = 100_000
MAX_DIGITS = 20  # an int64 has 19
_STRUCTURE = b"[{,:"  # one of these precedes every JSON value but the first


def parse_json(body: bytearray) -> dict[str, Any]:
    """The body as a JSON object, within the limits of this module (the body is
    cleared on the way).

    Raises:
        ApiError: 400 naming what is wrong.
    """
    try:
        values = sum(body.count(c) for c in _STRUCTURE)
        if values > MAX_VALUES:
            raise _bad(f"the JSON holds more than {MAX_VALUES} values")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _bad(f"the request body is not UTF-8 (byte {exc.start})") from None
    finally:
        body.clear()
    try:
        data = json.loads(text, parse_int=_integer, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise _bad(f"the request body is not valid JSON ({exc.msg} at char {exc.pos})") from None
    except RecursionError:
        raise _bad(f"the JSON is nested more than {MAX_DEPTH} levels deep") from None
    finally:
        del text
    if not isinstance(data, dict):
        raise _bad("the request body must be a JSON object")
    _check(data, "", 1)
    return data


def _integer(text: str) -> int:
    digits = text.lstrip("-")
    if len(digits) > MAX_DIGITS:
        raise _bad(f"a JSON integer has {len(digits)} digits (at most {MAX_DIGITS})")
    return int(text)


def _constant(text: str) -> Any:
    raise _bad(f"{text} is not a JSON number")


def _check(value: Any, where: str, depth: int) -> None:
    """Depth and lone surrogates, through the whole document."""
    if depth > MAX_DEPTH:
        raise _bad(f"the JSON is nested more than {MAX_DEPTH} levels deep", where)
    if isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, where or "body")
            _check(item, f"{where}.{key}" if where else key, depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check(item, f"{where}[{i}]", depth + 1)
    elif isinstance(value, str):
        _check_text(value, where)


def _check_text(text: str, where: str) -> None:
    if text.isascii():  # O(1): CPython knows
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _bad("a string holds a lone surrogate (not Unicode text)", where) from None


def text_chars(value: Any) -> int:
    """The characters of every string and key in a parsed JSON value."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(len(k) + text_chars(v) for k, v in value.items())
    if isinstance(value, list):
        return sum(text_chars(v) for v in value)
    return 0


def _bad(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, param=param or None, code="invalid_json")
