"""Build the pydantic-ai model named by the `KENNEL_MODEL` setting.

`KENNEL_MODEL` uses pydantic-ai's `provider:model` form; the default `offline` needs no key:

- `offline`: deterministic built-in model (`OfflineModel`), no network, no key.
- OpenAI: `openai:gpt-4.1` (Responses API) or `openai-chat:gpt-4.1` (Chat Completions);
  set `OPENAI_API_KEY`, optionally `OPENAI_BASE_URL`.
- Anthropic: `anthropic:claude-sonnet-4-5`; set `ANTHROPIC_API_KEY`.
- Ollama: `ollama:llama3.2`; set `OLLAMA_BASE_URL` (e.g. `http://localhost:11434/v1`),
  optionally `OLLAMA_API_KEY`.
- Any other OpenAI-compatible server (vLLM, LM Studio, llama.cpp, LiteLLM proxy...):
  `openai-chat:<model>` with `OPENAI_BASE_URL=http://host:port/v1` (the key may be omitted
  when a base URL is set), or `vllm:<model>` with `VLLM_BASE_URL`.
- Every other provider pydantic-ai knows (`google`, `groq`, `mistral`, `openrouter`, ...)
  works if its SDK is installed and its usual environment variables are set.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic_ai.models import Model, infer_model
from pydantic_ai.providers import infer_provider_class

from kennel.agents.offline_model import OfflineModel

__all__ = ["OFFLINE_SPEC", "ModelConfigError", "build_model", "is_offline"]

OFFLINE_SPEC = "offline"


class ModelConfigError(ValueError):
    """`KENNEL_MODEL` names a model that cannot be built; the message is one line."""


def is_offline(spec: str) -> bool:
    """Whether the spec selects the built-in offline model."""
    return spec.strip().lower() in ("", OFFLINE_SPEC)


def build_model(
    spec: str, *, offline_delay_seconds: float = 0.0, offline_trace_file: Path | None = None
) -> Model:
    """Return the model for a `KENNEL_MODEL` value, raising `ModelConfigError` if unusable."""
    if is_offline(spec):
        return OfflineModel(delay_seconds=offline_delay_seconds, trace_file=offline_trace_file)
    spec = spec.strip()
    provider, _, name = spec.partition(":")
    if not provider or not name or any(c.isspace() for c in spec):
        raise ModelConfigError(
            f"KENNEL_MODEL={spec!r} is not valid: use 'offline' or 'provider:model' "
            "(e.g. 'openai:gpt-4.1', 'anthropic:claude-sonnet-4-5', 'ollama:llama3.2')"
        )
    try:
        infer_provider_class(provider)
    except ValueError:
        raise ModelConfigError(
            f"KENNEL_MODEL={spec!r} names an unknown provider {provider!r}"
        ) from None
    except ImportError as exc:
        raise ModelConfigError(f"KENNEL_MODEL={spec!r} cannot be used: {_one_line(exc)}") from exc
    try:
        return infer_model(spec)
    # Bad model names, missing keys or base URLs surface here, in varied exception types.
    except Exception as exc:
        raise ModelConfigError(f"KENNEL_MODEL={spec!r} cannot be used: {_one_line(exc)}") from exc


def _one_line(exc: BaseException) -> str:
    """The provider library's complaint in Kennel's terms: the setting to set, or the package
    to install, rather than its own constructors' arguments."""
    # pydantic-ai appends a hint about its own test model; ours is KENNEL_MODEL=offline.
    text = str(exc).split(" To try Pydantic AI without an API key")[0]
    text = " ".join(text.split()) or type(exc).__name__
    if missing := _MISSING_VARIABLE.search(text):
        variable = missing["name"]
        hint = f"set {variable} in the server's environment (it is not set)"
        if variable == "OPENAI_API_KEY":
            hint += (
                "; for a local OpenAI-compatible server (llama.cpp, vLLM, LM Studio) set "
                "OPENAI_BASE_URL=http://host:port/v1 instead"
            )
        return hint
    if package := _MISSING_PACKAGE.search(text):
        return f"install its extra: pip install 'pydantic-ai-slim[{package['extra']}]'"
    return text if len(text) <= 300 else text[:299] + "…"


_MISSING_VARIABLE = re.compile(r"Set the `(?P<name>[A-Z][A-Z0-9_]*)` environment variable")
_MISSING_PACKAGE = re.compile(
    r"optional group — `pip install \"pydantic-ai-slim\[(?P<extra>[\w-]+)\]"
)
