"""The shape a JSON record must have before mem2gen uses it (:func:`mem2gen.io.files.read_json`): one line naming
the field that departs, never an internal error deep inside a command."""
from __future__ import annotations


def misfit(value, shape, where: str = "") -> str | None:
    """Where ``value`` departs from ``shape`` (:func:`read_json`), or None."""
    if shape is None:
        return None
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return f"{where or 'the file'} should be an object, not {type(value).__name__}"
        for key, sub in shape.items():
            items = value.items() if key == "*" else [(key, value[key])] if key in value else None
            if items is None:
                return f"{where + '.' if where else ''}{key} is missing"
            for k, v in items:
                found = misfit(v, sub, f"{where + '.' if where else ''}{k}")
                if found:
                    return found
        return None
    kinds = shape if isinstance(shape, tuple) else (shape,)
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    names = " or ".join({dict: "an object", list: "a list", str: "a string", int: "a whole number",
                         float: "a number", bool: "true or false"}.get(k, k.__name__) for k in kinds)
    return None if ok else f"{where or 'the file'} should be {names}, not {type(value).__name__}"
