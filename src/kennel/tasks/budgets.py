"""Budgets: what one turn may spend, and the credits rule.

| budget | model requests | tokens (input + output) | wall time | output tokens a request |
| --- | --- | --- | --- | --- |
| low | 4 | 20,000 | 60 s | 500 |
| standard | 16 | 200,000 | 300 s | 8,000 |
| high | 64 | 1,000,000 | 1,800 s | 32,000 |
| unlimited | no cap | no cap | no cap | the model's own |

The output cap is sent with every request (`max_tokens`): a model that repeats itself stops
there instead of talking until the wall time runs out, and is charged for what it said. Each
budget's output cap is reached before its wall time even by a small model on a CPU (13 tokens
a second: `low`'s 500 in under 40 s); an answer cut there says so (an `output_cut_off` notice).

Credits are whole numbers: one credit per started thousand tokens of a turn
(`ceil((input_tokens + output_tokens) / 1000)`), so a budget's token cap is also its credit
cap (20, 200 and 1,000 credits): a turn that crossed it is charged the cap, not more.
`KENNEL_BUDGET_CAPS` overrides any of these.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic_ai import UsageLimits
from pydantic_ai.settings import ModelSettings

from kennel.core.settings import BudgetCaps, Settings

__all__ = [
    "BUDGETS",
    "DEFAULT_CAPS",
    "Budget",
    "caps_for",
    "credits_for",
    "model_settings",
    "usage_limits",
]

Budget = Literal["low", "standard", "high", "unlimited"]
BUDGETS: tuple[Budget, ...] = ("low", "standard", "high", "unlimited")

DEFAULT_CAPS: dict[str, BudgetCaps] = {
    "low": BudgetCaps(requests=4, tokens=20_000, seconds=60, output_tokens=500),
    "standard": BudgetCaps(requests=16, tokens=200_000, seconds=300, output_tokens=8_000),
    "high": BudgetCaps(requests=64, tokens=1_000_000, seconds=1_800, output_tokens=32_000),
    "unlimited": BudgetCaps(),
}


def caps_for(settings: Settings, budget: str) -> BudgetCaps:
    override = settings.budget_caps.get(budget)
    if override is None:
        return DEFAULT_CAPS[budget]
    return DEFAULT_CAPS[budget].model_copy(update=override.model_dump(exclude_unset=True))


def usage_limits(caps: BudgetCaps) -> UsageLimits:
    # pydantic-ai checks the request cap before each request, so no request past it is made.
    return UsageLimits(request_limit=caps.requests, total_tokens_limit=caps.tokens)


def model_settings(caps: BudgetCaps) -> ModelSettings:
    return ModelSettings(max_tokens=caps.output_tokens) if caps.output_tokens else ModelSettings()


def credits_for(input_tokens: int, output_tokens: int, caps: BudgetCaps | None = None) -> int:
    credits = math.ceil((input_tokens + output_tokens) / 1000)
    if caps is not None and caps.tokens is not None:
        # A response's size is known only once it arrived, so the request that crosses the
        # token cap is used in full; the turn is charged up to the cap, never past it.
        credits = min(credits, math.ceil(caps.tokens / 1000))
    return credits
