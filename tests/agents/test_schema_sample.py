"""`sample_from_schema` produces instances valid against raw JSON schemas."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft7Validator

from kennel.agents import sample_from_schema

SEED = "Walk the three dogs along the river before noon"

SCHEMAS: dict[str, dict[str, Any]] = {
    "max_length": {"type": "string", "maxLength": 9},
    "min_length_short_seed": {"type": "string", "minLength": 30, "maxLength": 40},
    "enum": {"enum": ["red", "green"]},
    "const": {"const": 42},
    "integer_bounds": {"type": "integer", "minimum": 20, "maximum": 25},
    "integer_exclusive": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 3},
    "number_exclusive": {"type": "number", "exclusiveMinimum": 0.5, "exclusiveMaximum": 0.75},
    "multiple_of": {"type": "integer", "minimum": 11, "multipleOf": 5},
    "array_min_items": {
        "type": "array",
        "items": {"type": "string"},
        "minItems": 4,
        "uniqueItems": True,
    },
    "array_max_items_zero": {"type": "array", "items": {"type": "integer"}, "maxItems": 0},
    "tuple_items": {"type": "array", "items": [{"type": "integer"}, {"type": "boolean"}]},
    "nested_object": {
        "type": "object",
        "properties": {
            "owner": {
                "type": "object",
                "properties": {
                    "email": {"type": "string", "format": "email"},
                    "since": {"type": "string", "format": "date-time"},
                    "site": {"type": "string", "format": "uri"},
                },
                "required": ["email", "since", "site"],
                "additionalProperties": False,
            },
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 5}, "minItems": 2},
        },
        "required": ["owner", "tags"],
        "additionalProperties": False,
    },
    "ref_definitions": {
        "definitions": {"Dog": {"type": "object", "properties": {"name": {"type": "string"}}}},
        "type": "object",
        "properties": {"dog": {"$ref": "#/definitions/Dog"}},
        "required": ["dog"],
    },
    "ref_defs_recursive": {
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {
                    "label": {"type": "string", "maxLength": 4},
                    "next": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]},
                },
                "required": ["label", "next"],
            }
        },
        "$ref": "#/$defs/Node",
    },
    "one_of": {"oneOf": [{"type": "integer", "minimum": 7}, {"type": "string"}]},
    "type_list": {"type": ["null", "boolean"]},
    "all_of": {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
            {"properties": {"b": {"type": "string", "enum": ["x"]}}, "required": ["b"]},
        ]
    },
    "dict_values": {"type": "object", "additionalProperties": {"type": "integer", "maximum": 2}},
    "min_properties": {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "minProperties": 3,
    },
    "null": {"type": "null"},
    "untyped": {},
}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_sample_validates(name: str) -> None:
    schema = SCHEMAS[name]
    Draft7Validator.check_schema(schema)
    value = sample_from_schema(schema, SEED)
    assert list(Draft7Validator(schema).iter_errors(value)) == []
    assert sample_from_schema(schema, SEED) == value


def test_strings_are_derived_from_the_seed() -> None:
    assert sample_from_schema({"type": "string"}, "  Walk   the dogs ") == "Walk the dogs"
    assert sample_from_schema({"type": "string", "maxLength": 9}, SEED) == "Walk the"
    assert sample_from_schema({"type": "string"}, "") == "offline"


def test_integers_follow_seed_word_count_within_bounds() -> None:
    assert sample_from_schema({"type": "integer"}, "a b c") == 3
    assert sample_from_schema({"type": "integer", "maximum": 2}, "a b c") == 2
    assert sample_from_schema({"type": "integer", "minimum": 9}, "a b c") == 9


def test_optional_properties_skipped_when_asked() -> None:
    schema = {
        "type": "object",
        "properties": {"url": {"type": "string"}, "limit": {"type": "integer"}},
        "required": ["url"],
    }
    assert sample_from_schema(schema, "x", fill_optional=False) == {"url": "x"}
    assert sample_from_schema(schema, "x") == {"url": "x", "limit": 1}
