"""Deterministic JSON-schema instance generator for the offline model's tool and output args."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["sample_from_schema"]

# Past this nesting depth only what the schema demands is produced, so recursive models terminate.
_SHALLOW = 6

_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00",
    "duration": "P1D",
    "email": "offline@example.com",
    "idn-email": "offline@example.com",
    "uri": "https://example.com/",
    "iri": "https://example.com/",
    "url": "https://example.com/",
    "uri-reference": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "hostname": "example.com",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
}


def sample_from_schema(schema: Any, seed_text: str, *, fill_optional: bool = True) -> Any:
    """Return a value valid against `schema`, with strings derived from `seed_text`."""
    return _Sampler(schema, seed_text, fill_optional).gen(schema, 0, 0)


class _Sampler:
    def __init__(self, root: Any, seed_text: str, fill_optional: bool) -> None:
        self.root = root
        self.text = " ".join(seed_text.split()) or "offline"
        self.words = len(seed_text.split())
        self.fill_optional = fill_optional

    def resolve(self, ref: str) -> Any:
        node = self.root
        for token in ref.removeprefix("#").strip("/").split("/"):
            if token:
                node = node[token.replace("~1", "/").replace("~0", "~")]
        return node

    def flatten(self, schema: dict[str, Any]) -> dict[str, Any]:
        """Inline $ref and allOf so the rest only sees plain keywords."""
        if "$ref" in schema:
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**self.flatten(self.resolve(schema["$ref"])), **rest}
        if "allOf" in schema:
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for sub in schema["allOf"]:
                sub = self.flatten(sub) if isinstance(sub, dict) else {}
                props = {**merged.get("properties", {}), **sub.get("properties", {})}
                required = [*merged.get("required", []), *sub.get("required", [])]
                merged = {**sub, **merged, "properties": props, "required": required}
            schema = merged
        return schema

    def gen(self, schema: Any, depth: int, variant: int) -> Any:
        if schema is True or schema == {}:
            return self.string({}, variant)
        if not isinstance(schema, dict):
            return None
        schema = self.flatten(schema)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return schema["enum"][0]
        for key in ("anyOf", "oneOf"):
            if branches := schema.get(key):
                return self.gen(self.pick(branches, depth), depth + 1, variant)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((t for t in kind if t != "null"), "null")
        if kind is None:
            kind = "array" if "items" in schema else "string"
            kind = "object" if "properties" in schema else kind
        match kind:
            case "object":
                return self.object(schema, depth)
            case "array":
                return self.array(schema, depth, variant)
            case "integer" | "number":
                return self.number(schema, kind == "integer", variant)
            case "boolean":
                return True
            case "null":
                return None
            case _:
                return self.string(schema, variant)

    def pick(self, branches: list[Any], depth: int) -> Any:
        # Deep in a recursive schema, prefer the null branch so generation stops.
        if depth > _SHALLOW:
            for branch in branches:
                if isinstance(branch, dict) and branch.get("type") == "null":
                    return branch
        return branches[0]

    def object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        props: dict[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", []))
        full = self.fill_optional and depth <= _SHALLOW
        out = {k: self.gen(v, depth + 1, 0) for k, v in props.items() if full or k in required}
        extra = schema.get("additionalProperties")
        for name in sorted(required - out.keys()):
            out[name] = self.gen(extra if isinstance(extra, dict) else {}, depth + 1, 0)
        if isinstance(extra, dict) and not props:
            wanted = schema.get("minProperties", 1 if full else 0)
            for i in range(len(out), min(wanted, schema.get("maxProperties", wanted))):
                out[f"key{i + 1}"] = self.gen(extra, depth + 1, i)
        return out

    def array(self, schema: dict[str, Any], depth: int, variant: int) -> list[Any]:
        prefix = schema.get("prefixItems")
        items = schema.get("items", {})
        if isinstance(items, list):
            prefix, items = items, {}
        low = schema.get("minItems", 0)
        count = max(low, len(prefix or []), 0 if depth > _SHALLOW else 1)
        count = min(count, schema.get("maxItems", count))
        schemas = [*(prefix or []), *[items] * count][:count]
        return [self.gen(s, depth + 1, variant + i) for i, s in enumerate(schemas)]

    def number(self, schema: dict[str, Any], integer: bool, variant: int) -> int | float:
        low, high = schema.get("minimum"), schema.get("maximum")
        ex_low, ex_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
        if isinstance(ex_low, int | float) and not isinstance(ex_low, bool):
            candidate = math.floor(ex_low) + 1 if integer else ex_low + 1
            if not integer and ex_high is not None and candidate >= ex_high:
                candidate = (ex_low + ex_high) / 2
            low = candidate if low is None else max(low, candidate)
        if isinstance(ex_high, int | float) and not isinstance(ex_high, bool):
            candidate = math.ceil(ex_high) - 1 if integer else ex_high - 1
            if not integer and low is not None and candidate <= low:
                candidate = (low + ex_high) / 2
            high = candidate if high is None else min(high, candidate)
        value: float = self.words + variant
        if low is not None:
            value = max(value, low)
        if high is not None:
            value = min(value, high)
        if step := schema.get("multipleOf"):
            value = math.ceil(value / step) * step
            if high is not None and value > high:
                value = math.floor(high / step) * step
        if not integer:
            return float(value)
        whole = math.ceil(value)
        return math.floor(high) if high is not None and whole > high else whole

    def string(self, schema: dict[str, Any], variant: int) -> str:
        if (fmt := schema.get("format")) in _FORMATS:
            return _FORMATS[fmt]
        # The variant leads so that array items stay distinct even after truncation.
        base = self.text if variant == 0 else f"{variant + 1}. {self.text}"
        low = schema.get("minLength", 0)
        high = schema.get("maxLength")
        text = base
        while len(text) < low:
            text = f"{text} {base}"
        if high is not None and len(text) > high:
            cut = text[:high]
            # End on a word boundary when that keeps most of the room and still meets minLength.
            head = cut.rsplit(" ", 1)[0].rstrip()
            text = head if len(head) >= max(low, high // 2) and " " in cut else cut
        return text
