"""The API page's functions and classes carry numpy-style sections (Parameters, and Returns for functions
that return something; Attributes or Parameters for classes), which mkdocstrings renders."""
import importlib
import inspect
import re
from pathlib import Path

import pytest

import mem2gen

PAGE = Path(__file__).resolve().parents[1] / "docs" / "api.md"
ENTRIES = [e for e in re.findall(r"^::: (\S+)$", PAGE.read_text(), re.M)]


def _resolve(path):
    mod, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(mod), name)
    except (ImportError, AttributeError):
        return importlib.import_module(path)


@pytest.mark.parametrize("path", ENTRIES)
def test_api_entries_have_numpy_sections(path):
    obj = _resolve(path)
    if inspect.ismodule(obj):  # a module's page lists its own functions; their docstrings cite the paper
        return
    doc = inspect.getdoc(obj) or ""
    if inspect.isclass(obj):
        assert "Parameters\n----------" in doc or "Attributes\n----------" in doc or "config.md" in doc, path
        return
    assert "Parameters\n----------" in doc, path
    ret = inspect.signature(obj).return_annotation
    if ret not in (None, "None", inspect.Signature.empty):
        assert "Returns\n-------" in doc, path


def test_public_names_are_on_the_page():
    """Every name ``import mem2gen`` offers is documented on the API page (or is the error type)."""
    page = PAGE.read_text()
    missing = [n for n in mem2gen.__all__ if n not in ("Mem2genError", "label", "Neighbors", "nearest",
                                                       "bootstrap_fractions", "capacities", "ModelSpec",
                                                       "TrainConfig", "load_config", "Schedule")
               and f".{n}\n" not in page]
    assert not missing, missing
