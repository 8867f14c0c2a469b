"""Dataclass field markers of the config schemas: which keys a run id leaves out, and why."""
from __future__ import annotations

from dataclasses import field, fields, is_dataclass
from typing import get_args, get_type_hints


def not_outcome(**kwargs):
    """A dataclass field that does not change a run's outcome (left out of the run id)."""
    return field(metadata={"outcome": False}, **kwargs)


def added_later(default):
    """An outcome field whose `default` reproduces what runs did before the field existed: left
    out of the run id while it has that value (`default` must be immutable: None, a bool, a str)."""
    return field(default=default, metadata={"id_omits": default})


def non_outcome_keys(schema) -> set[str]:
    """Keys of a schema that the run id leaves out (fields marked with `not_outcome`)."""
    return {f.name for f in fields(schema) if f.metadata.get("outcome") is False} if is_dataclass(schema) else set()


def nested_schema(schema, name: str):
    """The dataclass a field of `schema` holds (Optional[...] unwrapped), or None."""
    hint = get_type_hints(schema).get(name)
    for candidate in (hint, *get_args(hint)):
        if is_dataclass(candidate):
            return candidate
    return None


def id_part(schema, value: dict) -> dict:
    """The part of a resolved config `value` of dataclass `schema` that enters the run id: less its
    `not_outcome` keys, and less each `added_later` key that still has its old-behaviour value; a
    field holding another schema (e.g. task.resplit) is reduced by the same rules, at any depth."""
    if not is_dataclass(schema):
        return value
    omits = {f.name: f.metadata["id_omits"] for f in fields(schema) if "id_omits" in f.metadata}
    skip = non_outcome_keys(schema)
    out = {}
    for k, v in value.items():
        if k in skip or (k in omits and v == omits[k]):
            continue
        inner = nested_schema(schema, k) if isinstance(v, dict) else None
        out[k] = id_part(inner, v) if inner is not None else v
    return out
