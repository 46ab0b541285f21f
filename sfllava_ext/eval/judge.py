"""The judge of open-ended and generative answers: any OpenAI-compatible chat endpoint
(:class:`ChatJudge`, the paper's ``gpt-3.5-turbo`` by default), or an offline
exact-match rule (:class:`ExactJudge`).

A judge returns its reply *text*; :mod:`.official` reads it as the official scorer
does. The transport retries connection errors, timeouts, 429 and 5xx answers with
exponential backoff (honouring ``Retry-After``); a reply that is not a Python literal is
asked again, up to ``attempts`` times in all, as the official scorer asks again for the
items it could not read, and is then recorded as it came, never fatal. Other HTTP
errors (a wrong key, an unknown model) raise :class:`JudgeError`, which the run records
for the item.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from typing import Any, Protocol

from .official import is_readable, judge_messages

__all__ = [
    "DEFAULT_JUDGE_MODEL",
    "DEFAULT_JUDGE_URL",
    "ChatJudge",
    "ExactJudge",
    "Judge",
    "JudgeError",
    "judge_key",
    "require_httpx",
]

DEFAULT_JUDGE_URL = "https://api.openai.com/v1"
DEFAULT_JUDGE_MODEL = "gpt-3.5-turbo"
KEY_VARIABLES = ("SFLLAVA_JUDGE_API_KEY", "OPENAI_API_KEY")
EVAL_INSTALL = 'pip install "sfllava_ext[eval]"'
#: what is recorded for an item whose every answer had no reply text: not a literal, so
#: never counted, as the official scorer never counts it
NO_CONTENT = "<no reply text>"


class JudgeError(RuntimeError):
    """The judge could not be asked (after the retries): the reason, with the HTTP status
    where there was one."""


class Judge(Protocol):
    """What the run asks of a judge: the reply text for one item under one prompt
    (:func:`.official.judge_messages`' mode), and its settings for the summary."""

    def reply(
        self,
        mode: str,
        *,
        question: str,
        answer: str,
        prediction: str,
        question2: str | None = None,
        prediction2: str | None = None,
    ) -> str: ...

    def settings(self) -> dict[str, Any]: ...


def require_httpx():
    """The ``httpx`` module.

    Raises:
        ImportError: naming the package and the ``pip install`` line that fixes it.
    """
    try:
        import httpx
    except ImportError:
        raise ImportError(f"the judge needs httpx: {EVAL_INSTALL}") from None
    return httpx


def judge_key() -> str | None:
    """The judge's API key: ``SFLLAVA_JUDGE_API_KEY``, else ``OPENAI_API_KEY``."""
    for name in KEY_VARIABLES:
        if os.environ.get(name):
            return os.environ[name]
    return None


class ChatJudge:
    """A judge behind ``{url}/chat/completions``. Sends what the official scorer sends:
    the model and the messages, nothing else (so the endpoint's default temperature).

    Args:
        url: the API's base URL (``.../v1``).
        model: the judge model.
        api_key: sent as a bearer token; default :func:`judge_key`.
        attempts: tries per item, for the transport and for an unreadable reply each.
        backoff: seconds before the first retry, doubled after each (at most 60).
        timeout: seconds per request.

    Raises:
        ValueError: a URL that is not http(s), attempts < 1, a negative backoff or timeout.
        ImportError: httpx is missing.
    """

    def __init__(
        self,
        url: str = DEFAULT_JUDGE_URL,
        model: str = DEFAULT_JUDGE_MODEL,
        *,
        api_key: str | None = None,
        attempts: int = 5,
        backoff: float = 1.0,
        timeout: float = 60.0,
    ) -> None:
        if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url):
            raise ValueError(f"judge url must be an http(s) URL, got {url!r}")
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ValueError(f"judge attempts must be an int >= 1, got {attempts!r}")
        if not _is_number(backoff) or backoff < 0:
            raise ValueError(f"judge backoff must be a number >= 0, got {backoff!r}")
        if not _is_number(timeout) or timeout <= 0:
            raise ValueError(f"judge timeout must be a number > 0, got {timeout!r}")
        httpx = require_httpx()
        self.url = url.rstrip("/")
        self.model = model
        self.attempts = attempts
        self.backoff = backoff
        self.timeout = timeout
        key = api_key if api_key is not None else judge_key()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        # no redirects: a key is never sent to an address the user did not name
        self._client = httpx.Client(headers=headers, timeout=timeout, follow_redirects=False)
        self._httpx = httpx

    def settings(self) -> dict[str, Any]:
        return {
            "judge": "chat",
            "url": self.url,
            "model": self.model,
            "attempts": self.attempts,
            "backoff_s": self.backoff,
            "timeout_s": self.timeout,
        }

    def close(self) -> None:
        self._client.close()

    def reply(self, mode: str, **fields: str | None) -> str:
        """The judge's reply text to the official prompt ``mode`` about one item
        (``fields``: :func:`.official.judge_messages`' arguments): re-asked while it is
        not a Python literal (or the body holds no reply text), up to ``attempts``
        times; the last text is returned whatever it is (``"<no reply text>"`` when
        there was none).

        Raises:
            JudgeError: the endpoint could not be reached or refused, after the retries.
        """
        messages = judge_messages(mode, **fields)
        text = None
        for _ in range(self.attempts):
            text = self._ask(messages)
            if is_readable(text):
                return text
        return text if text is not None else NO_CONTENT

    def _ask(self, messages: Sequence[dict[str, str]]) -> str | None:
        body = {"model": self.model, "messages": list(messages)}
        delay = self.backoff
        reason = ""
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(delay)
                delay = min(delay * 2, 60.0)
            try:
                response = self._client.post(f"{self.url}/chat/completions", json=body)
            except self._httpx.HTTPError as exc:  # connect, read, timeout
                reason = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code == 429 or response.status_code >= 500:
                reason = f"HTTP {response.status_code}"
                wait = response.headers.get("retry-after", "")
                if wait.replace(".", "", 1).isdigit():
                    delay = max(delay, min(float(wait), 60.0))
                continue
            if response.status_code != 200:
                raise JudgeError(
                    f"the judge answered HTTP {response.status_code}: {response.text[:200]}"
                )
            return _content(response)
        raise JudgeError(f"the judge did not answer after {self.attempts} attempts ({reason})")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _content(response) -> str | None:
    """The reply's text, or None for a body that is not a chat completion with a text
    (the official scorer fails on such a body and asks again later)."""
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except Exception:
        return None
    return content if isinstance(content, str) else None


_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class ExactJudge:
    """An offline judge for runs with no endpoint: a prediction is "yes" (score 5) when
    the reference answer's words occur in it in order and together, lower-cased and
    without punctuation, else "no" (score 0). Its reply has the judge's form, so the same
    arithmetic reads it. It is a smoke test, not the paper's metric."""

    def settings(self) -> dict[str, Any]:
        return {"judge": "exact"}

    def close(self) -> None:
        pass

    def reply(
        self,
        mode: str,
        *,
        question: str,
        answer: str,
        prediction: str,
        question2: str | None = None,
        prediction2: str | None = None,
    ) -> str:
        predictions = [prediction] if prediction2 is None else [prediction, prediction2]
        match = all(_contains(p, answer) for p in predictions)
        return repr({"pred": "yes" if match else "no", "score": 5 if match else 0})


def _contains(prediction: str, answer: str) -> bool:
    needle, hay = _words(answer), _words(prediction)
    if not needle:
        return False
    return any(hay[i : i + len(needle)] == needle for i in range(len(hay) - len(needle) + 1))
