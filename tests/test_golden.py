"""Outputs made before a refactor stay what they were: a tiny sweep's results.csv and points.csv and a
classify's summary.json (tests/data/golden, made by tests/data/golden/make.py with the earlier version).
Columns and keys added since are allowed; every one the reference has must read the same, to the last digit
(model-level rows no longer repeat frac_ as mean_ and std_ as sd_between_: those are read under their old names)."""
import csv
import importlib.util
import json
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "data" / "golden"


def _make():
    spec = importlib.util.spec_from_file_location("golden_make", GOLDEN / "make.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.make


def _rows(path):
    """A table's rows as strings; a renamed column is read under its old name too (the schema's aliases)."""
    from mem2gen.runs.schema import with_old_names

    with open(path, newline="") as f:
        return [with_old_names(r) for r in csv.DictReader(f)]


def _same(ref, new, where=""):
    """Every key of ``ref`` is in ``new`` with an equal value (recursively); extra keys in ``new`` allowed."""
    if isinstance(ref, dict):
        assert isinstance(new, dict), where
        for k, v in ref.items():
            assert k in new, f"{where}.{k} is gone"
            _same(v, new[k], f"{where}.{k}")
    else:
        assert ref == new, f"{where}: {ref!r} became {new!r}"


@pytest.mark.slow
def test_results_and_summary_unchanged(tmp_path):
    _make()(tmp_path)
    for name in ("results.csv", "points.csv"):
        ref, new = _rows(GOLDEN / name), _rows(tmp_path / name)
        assert len(ref) == len(new), name
        for i, (a, b) in enumerate(zip(ref, new)):
            _same(a, b, f"{name} row {i}")
    _same(json.loads((GOLDEN / "summary.json").read_text()), json.loads((tmp_path / "summary.json").read_text()),
          "summary.json")
    from mem2gen.runs.schema import undeclared

    for name in ("results.csv", "points.csv"):  # every column the files carry is declared in the schema
        assert undeclared(_rows(tmp_path / name)) == [], name


def test_the_comparison_can_fail():
    """The helper the test above relies on finds a changed digit, a lost key and a lost column."""
    with pytest.raises(AssertionError):
        _same({"a": {"b": 0.1}}, {"a": {"b": 0.10000000000000002}})
    with pytest.raises(AssertionError):
        _same({"a": 1, "b": 2}, {"a": 1})
    _same({"a": 1}, {"a": 1, "new": 2})
