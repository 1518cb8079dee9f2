"""`build_model` turns KENNEL_MODEL into a model or one clear ModelConfigError."""

from __future__ import annotations

import pytest
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.ollama import OllamaModel
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel

from kennel.agents import ModelConfigError, OfflineModel, build_model, is_offline

KEY_VARS = ["OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "OLLAMA_BASE_URL"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KEY_VARS:
        monkeypatch.delenv(name, raising=False)


def test_offline_spec_builds_offline_model_with_delay() -> None:
    model = build_model("offline", offline_delay_seconds=0.5)
    assert isinstance(model, OfflineModel)
    assert model.delay_seconds == 0.5
    assert model.model_name == "kennel-offline"
    assert isinstance(build_model(" Offline "), OfflineModel)


def test_is_offline() -> None:
    assert is_offline("offline")
    assert is_offline("")
    assert not is_offline("openai:gpt-4.1")


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("gpt-4.1", "provider:model"),
        ("openai:", "provider:model"),
        (":gpt-4.1", "provider:model"),
        ("openai:gpt 4.1", "provider:model"),
        ("nosuchprovider:model", "unknown provider 'nosuchprovider'"),
        ("openai:gpt-4.1", "OPENAI_API_KEY"),
        ("anthropic:claude-sonnet-4-5", "ANTHROPIC_API_KEY"),
        ("ollama:llama3.2", "OLLAMA_BASE_URL"),
        # A local OpenAI-compatible server needs no key, but its address.
        ("openai-chat:smollm2", "set OPENAI_BASE_URL=http://host:port/v1 instead"),
    ],
)
def test_bad_or_unconfigured_spec_raises_one_line(spec: str, fragment: str) -> None:
    with pytest.raises(ModelConfigError) as info:
        build_model(spec)
    message = str(info.value)
    assert message.startswith("KENNEL_MODEL=")
    assert fragment in message
    assert "\n" not in message
    assert "Provider(" not in message  # Kennel's terms, not the provider library's
    assert isinstance(info.value, ValueError)


def test_openai_with_key_builds_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    model = build_model("openai:gpt-4.1")
    assert isinstance(model, OpenAIResponsesModel)
    assert model.model_name == "gpt-4.1"


def test_openai_compatible_server_needs_only_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    model = build_model("openai-chat:qwen2.5")
    assert isinstance(model, OpenAIChatModel)
    assert model.base_url.startswith("http://127.0.0.1:9/v1")


def test_anthropic_and_ollama_build_when_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("OLLAMA_BASE_URL", "http://127.0.0.1:11434/v1")
    assert isinstance(build_model("anthropic:claude-sonnet-4-5"), AnthropicModel)
    ollama = build_model("ollama:llama3.2")
    assert isinstance(ollama, OllamaModel)
    assert ollama.base_url.startswith("http://127.0.0.1:11434/v1")
