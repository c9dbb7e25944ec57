"""Run the cerberus schema and turn its errors into one clear line each: key path, what, file:line:col."""

from __future__ import annotations

import difflib
from typing import Any

import cerberus
from cerberus import TypeDefinition

from pytest_dlio.config.schema import ENUM_KEYS, SCHEMA, known_paths, sub_schema
from pytest_dlio.config.yamlread import Marks, Path_

_TYPE_WORDS = {"integer": "a whole number", "number": "a number", "boolean": "true or false",
               "string": "a string", "dict": "a mapping", "list": "a list"}
_YAML_BOOLS = {"y", "yes", "n", "no", "on", "off", "true", "false"}


class _Validator(cerberus.Validator):
    """Booleans are not numbers here (cerberus counts ``True`` as an integer)."""

    types_mapping = cerberus.Validator.types_mapping.copy()
    types_mapping["integer"] = TypeDefinition("integer", (int,), (bool,))
    types_mapping["number"] = TypeDefinition("number", (int, float), (bool,))

    def _validate_min(self, min_value: Any, field: str, value: Any) -> None:
        """{'nullable': False }"""
        if isinstance(value, (int, float)):  # a time mapping also carries min: compare numbers only
            super()._validate_min(min_value, field, value)


def fix_enum_booleans(data: Any, marks: Marks, path: Path_ = ()) -> None:
    """``file_shuffle: off`` reaches us as ``False``; when the text as written is an allowed enum value, use it."""
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        sub = (*path, key)
        if isinstance(value, dict):
            fix_enum_booleans(value, marks, sub)
        elif isinstance(value, bool) and key in ENUM_KEYS:
            mark = marks.values.get(sub)
            rule = (sub_schema(path) or {}).get(key, {})
            if mark and mark.raw and mark.raw.lower() in rule.get("allowed", ()):
                data[key] = mark.raw.lower()


def _describe(value: Any, raw: str | None) -> str:
    if isinstance(value, bool):
        said = f", written `{raw}`" if raw and raw.lower() != str(value).lower() else ""
        return f"the YAML boolean {str(value).lower()}{said}"
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _suggest(path: Path_) -> str:
    key, parent = path[-1], path[:-1]
    siblings = list((sub_schema(parent) or {}).keys())
    close = difflib.get_close_matches(key, siblings, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {'.'.join((*parent, close[0]))}?"
    everywhere = known_paths()
    same = [p for p in everywhere if p[-1] == key]
    if same:
        return f"; {key} belongs under {'.'.join(same[0][:-1]) or 'the top level'}: did you mean " \
               f"{'.'.join(same[0])}?"
    names = {p[-1]: p for p in everywhere}
    close = difflib.get_close_matches(key, list(names), n=1, cutoff=0.75)
    if close:
        return f"; did you mean {'.'.join(names[close[0]])}?"
    if len(siblings) <= 12:
        return f"; valid keys here: {', '.join(siblings)}"
    return ""


def _leaves(errors: list[Any]) -> list[Any]:
    out = []
    for err in errors:
        if err.child_errors:  # schema/mapping groups: report their leaves
            out.extend(_leaves(list(err.child_errors)))
        else:
            out.append(err)
    return out


def _message(err: Any, marks: Marks) -> tuple[Path_, str]:
    path: Path_ = tuple(str(p) for p in err.document_path)
    dotted = ".".join(path)
    value, rule, constraint = err.value, err.rule, err.constraint
    vmark = marks.values.get(path)
    raw = vmark.raw if vmark else None
    if rule is None and err.code == cerberus.errors.UNKNOWN_FIELD.code:
        return path, f"{dotted}: unknown key{_suggest(path)}"
    if rule == "type":
        kinds = constraint if isinstance(constraint, list) else [constraint]
        want = " or ".join(_TYPE_WORDS.get(k, k) for k in kinds)
        allowed = (sub_schema(path[:-1]) or {}).get(path[-1], {}).get("allowed")
        if allowed and all(isinstance(a, str) for a in allowed):
            want = "one of " + ", ".join(allowed)
        msg = f"{dotted}: must be {want}, got {_describe(value, raw)}"
        if isinstance(value, bool) and raw and raw.lower() in _YAML_BOOLS:
            msg += f" (YAML reads unquoted {raw} as a boolean; quote it if you meant the text)"
        elif isinstance(value, str) and kinds[0] in ("integer", "number"):
            msg += " (remove the quotes)"
        return path, msg
    if rule == "allowed":
        allowed = [a for a in constraint if isinstance(a, str)]
        close = difflib.get_close_matches(str(value), allowed, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        return path, f"{dotted}: {value!r} is not valid; expected one of {', '.join(allowed)}{hint}"
    if rule == "min":
        return path, f"{dotted}: must be ≥ {constraint}, got {value!r}"
    if rule == "max":
        return path, f"{dotted}: must be ≤ {constraint}, got {value!r}"
    if rule == "regex":
        return path, f"{dotted}: {value!r} is not a valid file name prefix (no '/', not empty)"
    if rule == "required":
        return path, f"{dotted}: required"
    if rule == "nullable":
        return path, f"{dotted}: is empty; give it a value or remove the key"
    if rule == "empty":
        return path, f"{dotted}: must not be empty"
    return path, f"{dotted}: {cerberus.errors.BasicErrorHandler().messages.get(err.code, 'invalid')}"


def validate(data: dict[str, Any], marks: Marks) -> list[tuple[Path_, str]]:
    """Problems with ``data`` as ``(key path, message)``; empty when it fits the schema."""
    fix_enum_booleans(data, marks)
    validator = _Validator(SCHEMA)
    if validator.validate(data, normalize=False):
        return []
    return [_message(err, marks) for err in _leaves(list(validator._errors))]
