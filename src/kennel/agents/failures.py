"""Why a turn failed, told once: a code per cause, a short message for people.

| code | cause |
| --- | --- |
| `budget_exceeded` | the budget's requests, tokens or wall time ran out |
| `model_unavailable` | the model server is unreachable, broke off, failed (5xx), or refused the
  key or the model's name (401, 403, 404) |
| `model_rate_limited` | the provider limits requests or the quota ran out (429) |
| `model_timeout` | the provider did not answer in time |
| `model_output_invalid` | the model answered with nothing Kennel can use: no answer, broken
  JSON, or an answer its schema refused after its retries |
| `model_error` | the provider refused the request for another reason (400: too long, a
  setting it does not support) |

pydantic-ai sorts providers' errors into these categories (`ModelRateLimitError`,
`ModelConnectionError`, ...) whatever the provider; the message keeps the provider's own words
but not library internals (pydantic's `[type=...` trailers, documentation URLs).
"""

from __future__ import annotations

import itertools
import os
import re

from pydantic import ValidationError
from pydantic_ai.exceptions import (
    ModelAPIError,
    ModelConnectionError,
    ModelHTTPError,
    ModelQuotaExceededError,
    ModelRateLimitError,
    ModelRequestRejectedError,
    ModelRequestTimeout,
    ModelTimeoutError,
    UnexpectedModelBehavior,
    UsageLimitExceeded,
)

from kennel.core.causes import causes

__all__ = ["FAILURE_CODES", "TurnFailure", "cause_of", "failure_of", "without_secrets"]

FAILURE_CODES = (
    "budget_exceeded",
    "model_unavailable",
    "model_rate_limited",
    "model_timeout",
    "model_output_invalid",
    "model_error",
)

TurnFailure = tuple[str, str]  # (code, message)

_MAX_MESSAGE = 500
_URL_HINT = re.compile(
    r"\s*(For further information visit|For more information,? (see|visit))\s+\S+"
)
_PYDANTIC_TRAILER = re.compile(r"\s*\[type=[^\]]*\]")


def failure_of(exc: BaseException, *, budget: str, seconds: float | None) -> TurnFailure | None:
    """The code and message of a turn that `exc` ended; None for an error that is Kennel's own
    (a bug), which the caller logs with its traceback."""
    if isinstance(exc, UsageLimitExceeded):
        return "budget_exceeded", f"The {budget!r} budget ran out: {_words(exc)}"
    if isinstance(exc, TimeoutError):
        return "budget_exceeded", f"The {budget!r} budget's wall time of {seconds:g} s ran out."
    if isinstance(exc, ModelRateLimitError | ModelQuotaExceededError):
        return "model_rate_limited", f"The model provider is limiting requests: {_words(exc)}"
    if isinstance(exc, ModelTimeoutError | ModelRequestTimeout):
        return "model_timeout", f"The model did not answer in time: {_words(exc)}"
    if isinstance(exc, UnexpectedModelBehavior):  # response errors are ModelAPIErrors too
        return "model_output_invalid", _output_invalid(exc)
    if isinstance(exc, ModelConnectionError):
        return "model_unavailable", f"The model server could not be reached: {_cause(exc)}"
    if isinstance(exc, ModelAPIError):  # the other categories, and errors by their status alone
        status = _status(exc)
        if status == 429:
            return "model_rate_limited", f"The model provider is limiting requests: {_words(exc)}"
        if status in (401, 403, 404):  # a wrong key or model name: the setup, not the input
            return "model_unavailable", f"The model provider refused Kennel: {_words(exc)}"
        if isinstance(exc, ModelRequestRejectedError) or (status is not None and status < 500):
            return "model_error", f"The model provider refused the request: {_words(exc)}"
        return "model_unavailable", f"The model server failed: {_cause(exc)}"
    return None


def cause_of(exc: BaseException) -> str:
    """What raised, for the server's log: the error's type and words, and those of its deepest
    cause when it is another ("ModelAPIError: Connection error. <- ConnectError: [Errno 111]
    Connection refused"); secrets of the environment blanked."""
    chain = list(itertools.islice(causes(exc), 7))
    text = f"{type(exc).__name__}: {_words(exc)}"
    deepest = chain[-1]
    if deepest is not exc:
        text += f" <- {type(deepest).__name__}: {_words(deepest)}"
    return without_secrets(text)


# Environment variables whose values are secrets (OPENAI_API_KEY, ANTHROPIC_API_KEY, ...).
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)$")


def without_secrets(text: str) -> str:
    """`text` with the value of every secret-looking environment variable (an API key a
    provider's error might quote) replaced by `[redacted]`."""
    for name, value in os.environ.items():
        if len(value) >= 8 and _SECRET_NAME.search(name) and value in text:
            text = text.replace(value, "[redacted]")
    return text


def _output_invalid(exc: UnexpectedModelBehavior) -> str:
    message = f"The model did not produce a usable answer: {_words(exc)}"
    cause = exc.__cause__
    if isinstance(cause, ValidationError) and cause.errors():
        # Its first problem, not pydantic's report ("1 validation error for <type>...").
        problem = str(cause.errors()[0]["msg"]).removeprefix("Value error, ")
        message += f"; last problem: {_cut(' '.join(problem.split()))}"
    elif cause is not None:
        message += f"; last problem: {_words(cause)}"
    return _cut(message)


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def _cause(exc: BaseException) -> str:
    """The first words of `exc`, with the deepest distinct cause (the transport's own words:
    "[Errno 111] Connection refused") when it adds something."""
    text = _words(exc)
    deepest = ""
    for node in itertools.islice(causes(exc), 1, 7):
        words = _words(node)
        if words and words not in text:
            deepest = words
    return _cut(f"{text} ({deepest})" if deepest else text)


def _words(exc: BaseException) -> str:
    if isinstance(exc, ModelHTTPError):
        said = _said(exc.body)
        return _cut(f"HTTP {exc.status_code}" + (f": {said}" if said else ""))
    text = str(getattr(exc, "message", None) or exc) or type(exc).__name__
    text = " ".join(text.split())
    text = _PYDANTIC_TRAILER.sub("", _URL_HINT.sub("", text))
    return _cut(text)


def _said(body: object) -> str:
    """What a provider's error body says, in its own words (OpenAI, Anthropic, llama.cpp and
    most others put it at `error.message`, `error` or `message`)."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return " ".join(error["message"].split())
        for value in (error, body.get("message"), body.get("detail")):
            if isinstance(value, str) and value.strip():
                return " ".join(value.split())
    if isinstance(body, str | bytes):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        return " ".join(text.split())[:200]
    return ""


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"
