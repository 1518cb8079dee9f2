"""A turn's failure told once: the code of its cause and a message a person can read."""

from __future__ import annotations

import httpx
import openai
import pytest
from pydantic import BaseModel, ValidationError
from pydantic_ai.exceptions import (
    ModelAPIError,
    ModelConnectionError,
    ModelHTTPError,
    ModelRateLimitError,
    ModelTimeoutError,
    UnexpectedModelBehavior,
    UsageLimitExceeded,
)

from kennel.agents.failures import FAILURE_CODES, cause_of, failure_of, without_secrets


def told(exc: BaseException) -> tuple[str, str]:
    found = failure_of(exc, budget="low", seconds=60)
    assert found is not None
    code, message = found
    assert code in FAILURE_CODES
    for internal in ("[type=", "errors.pydantic.dev", "__root__", "cancel scope"):
        assert internal not in message
    return code, message


def connection_refused() -> ModelConnectionError:
    """What pydantic-ai raises when the OpenAI SDK cannot connect (as in a real run)."""
    request = httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    try:
        try:
            raise httpx.ConnectError("[Errno 111] Connection refused")
        except httpx.ConnectError as transport:
            raise openai.APIConnectionError(request=request) from transport
    except openai.APIConnectionError as sdk:
        try:
            raise ModelConnectionError("smollm", "Connection error.", phase="connect") from sdk
        except ModelConnectionError as exc:
            return exc
    raise AssertionError


class TestCodes:
    def test_a_server_that_is_down(self) -> None:
        code, message = told(connection_refused())
        assert code == "model_unavailable"
        assert message == (
            "The model server could not be reached: Connection error. "
            "([Errno 111] Connection refused)"
        )

    @pytest.mark.parametrize(
        ("status", "code"),
        [
            (429, "model_rate_limited"),
            (500, "model_unavailable"),
            (503, "model_unavailable"),
            (404, "model_unavailable"),
            (401, "model_unavailable"),
            (400, "model_error"),
        ],
    )
    def test_http_statuses(self, status: int, code: str) -> None:
        body = {"error": {"message": f"provider says {status}", "type": "x"}}
        found, message = told(ModelHTTPError(status, "smollm", body))
        assert found == code
        assert message.endswith(f"HTTP {status}: provider says {status}")

    def test_categories_pydantic_ai_gives(self) -> None:
        assert told(ModelRateLimitError("m", "slow down"))[0] == "model_rate_limited"
        assert told(ModelTimeoutError("m", "Request timed out."))[0] == "model_timeout"
        assert told(ModelAPIError("m", "stream broke"))[0] == "model_unavailable"

    def test_budgets(self) -> None:
        code, message = told(UsageLimitExceeded("Exceeded the total_tokens_limit of 20000"))
        assert code == "budget_exceeded"
        assert "'low' budget ran out" in message
        code, message = told(TimeoutError())
        assert (code, message) == (
            "budget_exceeded",
            "The 'low' budget's wall time of 60 s ran out.",
        )

    def test_an_unusable_answer_keeps_its_first_problem_not_pydantics_report(self) -> None:
        class Answer(BaseModel):
            n: int

        try:
            Answer.model_validate_json('{"n": ')
        except ValidationError as invalid:
            try:
                raise UnexpectedModelBehavior(
                    "Exceeded maximum retries (2) for output validation"
                ) from invalid
            except UnexpectedModelBehavior as exc:
                code, message = told(exc)
        assert code == "model_output_invalid"
        assert message.startswith(
            "The model did not produce a usable answer: Exceeded maximum retries (2)"
        )
        assert "Invalid JSON" in message

    def test_kennels_own_errors_are_not_classified(self) -> None:
        assert failure_of(KeyError("x"), budget="low", seconds=60) is None


class TestCauseOf:
    def test_names_the_error_and_its_deepest_cause(self) -> None:
        try:
            try:
                raise ConnectionRefusedError(111, "Connection refused")
            except OSError as refused:
                failed = ModelConnectionError("smollm", "Connection error.", phase="connect")
                raise failed from refused
        except ModelConnectionError as exc:
            cause = cause_of(exc)
        assert cause == (
            "ModelConnectionError: Connection error. <- ConnectionRefusedError: "
            "[Errno 111] Connection refused"
        )

    def test_an_error_without_cause_is_itself(self) -> None:
        assert cause_of(UnexpectedModelBehavior("nothing")) == "UnexpectedModelBehavior: nothing"

    def test_a_quoted_key_is_blanked(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-abcdef123456")
        exc = ModelHTTPError(401, "m", body={"error": {"message": "bad key sk-test-abcdef123456"}})
        cause = cause_of(exc)
        assert "sk-test-abcdef123456" not in cause
        assert "bad key [redacted]" in cause


class TestWithoutSecrets:
    def test_only_secret_looking_variables_are_blanked(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "ant-secret-value")
        monkeypatch.setenv("SOME_TOKEN", "tok-secret-value")
        monkeypatch.setenv("SOME_HOST", "not-a-secret-value")
        text = "ant-secret-value tok-secret-value not-a-secret-value"
        assert without_secrets(text) == "[redacted] [redacted] not-a-secret-value"
