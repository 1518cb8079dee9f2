"""Structured output from a worker's JSON Schema: checked when it is set, enforced on answers.

A schema is stored as the user wrote it (Draft-07, `definitions` and local `$ref`s included).
The model's output tool needs one self-contained schema, so `inline_schema` replaces every
local reference by what it points to; answers are validated with `jsonschema` against the
schema as written, so nothing of Draft-07's meaning is lost in the inlining.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from jsonschema import Draft7Validator, SchemaError
from pydantic import GetCoreSchemaHandler
from pydantic_ai import StructuredDict
from pydantic_core import core_schema

from kennel.api.http import json_depth

__all__ = [
    "MAX_SCHEMA_BYTES",
    "MAX_SCHEMA_DEPTH",
    "OutputSchemaError",
    "check_output_schema",
    "inline_schema",
    "schema_output_type",
]

MAX_SCHEMA_DEPTH = 32  # objects and arrays inside one another
MAX_SCHEMA_BYTES = 64 * 1024  # as UTF-8 JSON, before and after inlining
_DEFINITIONS = ("definitions", "$defs")


class OutputSchemaError(ValueError):
    """A schema Kennel cannot use; the message says why, for a 400 naming `outputSchema`."""


def check_output_schema(schema: dict[str, Any]) -> None:
    """Raise `OutputSchemaError` unless `schema` is a usable Draft-07 schema of an object."""
    if json_depth(schema, MAX_SCHEMA_DEPTH) > MAX_SCHEMA_DEPTH:
        raise OutputSchemaError(f"nests more than {MAX_SCHEMA_DEPTH} levels deep")
    _check_size(schema, "is")
    try:
        Draft7Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        at = f" at {where!r}" if where else ""
        raise OutputSchemaError(f"is not a valid Draft-07 JSON Schema{at}: {exc.message}") from None
    kind = schema.get("type")
    if kind is not None and kind != "object":
        raise OutputSchemaError("must describe an object (type: object)")
    inline_schema(schema)


def inline_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with every `$ref` replaced by its target and the definitions dropped; raises
    `OutputSchemaError` for a reference that is remote, dangling or recursive."""
    inlined = _Inliner(schema).walk(schema, ())
    assert isinstance(inlined, dict)
    for key in _DEFINITIONS:
        inlined.pop(key, None)
    _check_size(inlined, "expands to")
    return inlined


class _Inliner:
    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.nodes = 0

    def walk(self, node: Any, resolving: tuple[str, ...]) -> Any:
        self.nodes += 1
        if self.nodes > MAX_SCHEMA_BYTES:  # a cheap bound on what references can multiply
            raise OutputSchemaError(f"expands to more than {MAX_SCHEMA_BYTES} bytes")
        if isinstance(node, list):
            return [self.walk(item, resolving) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str):
            if ref in resolving:
                raise OutputSchemaError(f"has a recursive $ref {ref!r}, which Kennel cannot use")
            target = self.walk(self.resolve(ref), (*resolving, ref))
            if not isinstance(target, dict):
                return target
            siblings = {k: self.walk(v, resolving) for k, v in node.items() if k != "$ref"}
            return {**target, **siblings}
        return {
            key: (
                copy.deepcopy(value)
                if key in ("enum", "const", "default", "examples")
                else self.walk(value, resolving)
            )
            for key, value in node.items()
            if not (node is self.root and key in _DEFINITIONS)
        }

    def resolve(self, ref: str) -> Any:
        if not ref.startswith("#") or (len(ref) > 1 and not ref.startswith("#/")):
            raise OutputSchemaError(
                f"has a $ref {ref!r} that is not a local JSON pointer (such as '#/definitions/x')"
            )
        node: Any = self.root
        for token in ref[2:].split("/") if len(ref) > 1 else ():
            token = token.replace("~1", "/").replace("~0", "~")
            try:
                node = node[int(token)] if isinstance(node, list) else node[token]
            except (KeyError, IndexError, ValueError, TypeError):
                raise OutputSchemaError(f"has a $ref {ref!r} that points at nothing") from None
        return node


def _check_size(schema: dict[str, Any], verb: str) -> None:
    try:
        size = len(json.dumps(schema, ensure_ascii=False).encode("utf-8"))
    except UnicodeEncodeError:
        raise OutputSchemaError("contains text that is not valid Unicode") from None
    if size > MAX_SCHEMA_BYTES:
        raise OutputSchemaError(f"{verb} more than {MAX_SCHEMA_BYTES} bytes of JSON")


def schema_output_type(schema: dict[str, Any]) -> type[dict[str, Any]]:
    """An output type whose JSON schema is `schema`, inlined, and whose validation enforces
    `schema` as written.

    A mismatch fails pydantic validation, so pydantic-ai sends the error back to the model
    and lets it retry (up to the agent's output retries) instead of accepting a bad answer.
    """
    validator = Draft7Validator(schema)
    base: type[dict[str, Any]] = StructuredDict(inline_schema(schema))

    def check(value: dict[str, Any]) -> dict[str, Any]:
        errors = sorted(validator.iter_errors(value), key=lambda e: [str(p) for p in e.path])
        if errors:
            where = "/".join(str(p) for p in errors[0].path) or "(root)"
            raise ValueError(f"does not match the output schema at {where}: {errors[0].message}")
        return value

    class SchemaOutput(base):  # type: ignore[valid-type, misc]  # a class made at run time
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
