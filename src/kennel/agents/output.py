"""Structured output from a worker's JSON Schema, validated as the model produces it."""

from __future__ import annotations

import copy
from typing import Any

from jsonschema import Draft7Validator
from pydantic import GetCoreSchemaHandler
from pydantic_ai import StructuredDict
from pydantic_core import core_schema

__all__ = ["schema_output_type"]


def schema_output_type(schema: dict[str, Any]) -> type[dict[str, Any]]:
    """An output type whose JSON schema is `schema` and whose validation enforces it.

    A mismatch fails pydantic validation, so pydantic-ai sends the error back to the model
    and lets it retry (up to the agent's output retries) instead of accepting a bad answer.
    """
    validator = Draft7Validator(schema)
    base: type[dict[str, Any]] = StructuredDict(copy.deepcopy(schema))

    def check(value: dict[str, Any]) -> dict[str, Any]:
        errors = sorted(validator.iter_errors(value), key=lambda e: [str(p) for p in e.path])
        if errors:
            where = "/".join(str(p) for p in errors[0].path) or "(root)"
            raise ValueError(f"does not match the output schema at {where}: {errors[0].message}")
        return value

    class SchemaOutput(base):  # type: ignore[valid-type, misc]
        @classmethod
        def __get_pydantic_core_schema__(
            cls, source_type: Any, handler: GetCoreSchemaHandler
        ) -> core_schema.CoreSchema:
            return core_schema.no_info_after_validator_function(
                check,
                core_schema.dict_schema(
                    keys_schema=core_schema.str_schema(), values_schema=core_schema.any_schema()
                ),
            )

    return SchemaOutput
