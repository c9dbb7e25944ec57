"""Run the cerberus schema and turn its errors into one clear line each: key path, what, file:line:col."""

from __future__ import annotations

import difflib
import math
import re
from typing import Any

import cerberus
from cerberus import TypeDefinition

from pytest_dlio.config.schema import ENUM_KEYS, SCHEMA, known_paths, sub_schema
from pytest_dlio.config.secrets import secret_path
from pytest_dlio.config.yamlread import Marks, Path_

_TYPE_WORDS = {
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "string": "a string",
    "dict": "a mapping",
    "list": "a list",
}
_YAML_BOOLS = {"y", "yes", "n", "no", "on", "off", "true", "false"}


class _Validator(cerberus.Validator):
    """Booleans are not numbers here (cerberus counts ``True`` as an integer)."""

    types_mapping = cerberus.Validator.types_mapping.copy()
    types_mapping["integer"] = TypeDefinition("integer", (int,), (bool,))
    types_mapping["number"] = TypeDefinition("number", (int, float), (bool,))

    def _validate_min(self, min_value: Any, field: str, value: Any) -> None:
        """{'nullable': False }"""
        if _finite(value):  # a time mapping also carries min: compare numbers only (NaN/inf: see finite)
            super()._validate_min(min_value, field, value)

    def _validate_max(self, max_value: Any, field: str, value: Any) -> None:
        """{'nullable': False }"""
        if _finite(value):
            super()._validate_max(max_value, field, value)

    def _validate_finite(self, finite: bool, field: str, value: Any) -> None:
        """{'type': 'boolean'}"""
        if finite and isinstance(value, float) and not math.isfinite(value):
            self._error(field, f"must be a finite number, got {value} ({_range(self.schema[field])})")

    def _validate_cap(self, cap: list[Any], field: str, value: Any) -> None:
        """{'type': 'list'}"""
        limit, why = cap
        if _finite(value) and value > limit:
            self._error(
                field, f"{value:,} is above the cap of {limit:,} ({why}); {_range(self.schema[field])}"
            )

    def _validate_folder(self, folder: bool, field: str, value: Any) -> None:
        """{'type': 'boolean'}"""
        if not folder or not isinstance(value, str):
            return
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/]*@", value):
            self._error(
                field,
                "a URI with credentials in it (user:secret@…) is refused: it would be printed in "
                "reports. Give credentials in storage.storage_options or the environment "
                "(AWS_ACCESS_KEY_ID, AZURE_STORAGE_KEY, …)",
            )
        elif ".." in re.split(r"[/\\]", value.split("://", 1)[-1]):
            self._error(
                field,
                f"{value!r} leaves its root through '..': folders stay inside the data root "
                "(--dlio-data-root) or the --dlio-storage root; write the path without '..' "
                "(an absolute path is fine)",
            )


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _range(rule: dict[str, Any]) -> str:
    """The valid range a number rule allows, in words."""
    lo = f"≥ {rule['min']}" if "min" in rule else None
    hi = rule["cap"][0] if "cap" in rule else rule.get("max")
    if lo and hi is not None:
        return f"valid: {lo} and ≤ {hi:,}"
    if lo:
        return f"valid: {lo}"
    return f"valid: ≤ {hi:,}" if hi is not None else "valid: a finite number"


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


def _describe(value: Any, raw: str | None, secret: bool = False) -> str:
    if secret:  # a credential's value is never echoed: say only what kind of value it is
        return (
            "a mapping"
            if isinstance(value, dict)
            else "a list"
            if isinstance(value, list)
            else f"a value of type {type(value).__name__} (not shown: a credential)"
        )
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
        return (
            f"; {key} belongs under {'.'.join(same[0][:-1]) or 'the top level'}: did you mean "
            f"{'.'.join(same[0])}?"
        )
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
        want = " or ".join(str(_TYPE_WORDS.get(k, k)) for k in kinds)
        allowed = (sub_schema(path[:-1]) or {}).get(path[-1], {}).get("allowed")
        if allowed and all(isinstance(a, str) for a in allowed):
            want = "one of " + ", ".join(allowed)
        msg = f"{dotted}: must be {want}, got {_describe(value, raw, secret_path(path))}"
        if isinstance(value, bool) and raw and raw.lower() in _YAML_BOOLS:
            msg += f" (YAML reads unquoted {raw} as a boolean; quote it if you meant the text)"
        elif isinstance(value, str) and kinds[0] in ("integer", "number"):
            msg += " (remove the quotes)"
        return path, msg
    if rule == "allowed":
        allowed = [a for a in constraint if isinstance(a, str)]
        close = difflib.get_close_matches(str(value), allowed, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        shown = "the value" if secret_path(path) else repr(value)
        return path, f"{dotted}: {shown} is not valid; expected one of {', '.join(allowed)}{hint}"
    if rule in ("min", "max"):
        known = (sub_schema(path[:-1]) or {}).get(path[-1]) if path else None
        valid = (
            f" ({_range(known)})" if isinstance(known, dict) and ("cap" in known or "max" in known) else ""
        )
        return path, f"{dotted}: must be {'≥' if rule == 'min' else '≤'} {constraint}, got {value!r}{valid}"
    if rule == "regex":
        return path, f"{dotted}: {value!r} is not a valid file name prefix (no '/', not empty)"
    if err.code == cerberus.errors.CUSTOM.code and err.info:
        return path, f"{dotted}: {err.info[0]}"
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
