"""The package's layers: the one map of what may import what. Every import, also one inside a function,
points down (or stays within its layer without a circle). The README's design section points here."""
import ast
from pathlib import Path

import mem2gen

ROOT = Path(mem2gen.__file__).parent
# The layers, bottom up: each folder is a layer, and a module imports only from its own layer or those below.
FOLDERS = ["errors", "io", "core", "models", "memory", "runs", "analyses", "commands", "cli"]
# Within a folder, the order of its modules (lower ones never import higher ones).
WITHIN = {
    "io": [{"layout", "threads", "shapes"}, {"files"}, {"data"}, {"datasets"}, {"config", "sizes"}, {"config_doc"}],
    "core": [{"kernels", "stats", "timescales"}, {"embed"}, {"neighbors"}, {"rule"},
             {"plots"}, {"null", "checks", "planted", "quality", "mixed"}, {"evaluate"}],
    "models": [{"diffusion", "checkpoints"}, {"networks"}, {"train", "sample"}, {"ensemble"}],
    "memory": [{"hopfield", "dense"}, {"bridge"}, {"phase"}],
    "runs": [{"schema"}, {"run", "results"}, {"verify"}, {"report"}, {"executors", "compare", "plan_gpu"},
             {"plan"}, {"point"},
             {"sweep"}],
    "analyses": [{"points"}, {"landscape", "calibration"}, {"recovery"}, {"landscape_study", "attractors", "toy"},
                 {"dynamics", "studies", "window"}, {"basins"}],
}


def _layer(mod):
    """(folder rank, rank within the folder) of a module name such as ``core.rule``."""
    top, _, rest = mod.partition(".")
    if top not in FOLDERS:
        return None
    groups = WITHIN.get(top, [])
    if not rest:  # a folder's __init__ may gather what its modules export
        return FOLDERS.index(top), len(groups)
    inner = next((i for i, s in enumerate(groups) if rest.split(".")[0] in s), 0)
    return FOLDERS.index(top), inner


MODULES = {".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
           for f in ROOT.rglob("*.py")} - {"__init__"}
LAYER = {m: _layer(m) for m in MODULES}


def imports():
    """(module, imported module) for every relative import, at the top or inside a function."""
    for f in ROOT.rglob("*.py"):
        rel = f.relative_to(ROOT).with_suffix("")
        mod = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        pkg = mod.split(".")[:-1] if rel.name != "__init__" else mod.split(".")
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = pkg[:len(pkg) - node.level + 1] if node.level > 1 else pkg
                target = ".".join(base + ([node.module] if node.module else []))
                names = [target] + [f"{target}.{a.name}".lstrip(".") for a in node.names]
                yield mod, next((n for n in names[::-1] if n in LAYER), target)


def test_every_module_has_a_layer():
    homeless = [m for m in MODULES if LAYER[m] is None]
    assert not homeless, homeless
    named = {f"{folder}.{m}" for folder, groups in WITHIN.items() for g in groups for m in g}
    assert named <= MODULES, named - MODULES  # the map names no module that is gone
    assert {m for m in MODULES if m.split(".")[0] in WITHIN and "." in m} == named, "a module missing from WITHIN"


def test_folders_hold_the_modules():
    """No module outside the layer folders but errors.py and cli.py (a newcomer reads the tree as the map)."""
    assert {m for m in MODULES if "." not in m} == {"errors", "cli", "io", "core", "models", "memory", "runs",
                                                    "analyses", "commands"}


def test_imports_point_down():
    bad = [(a, b) for a, b in imports() if a in LAYER and b in LAYER and LAYER[b] > LAYER[a]]
    assert not bad, bad


def test_no_import_circle():
    graph = {}
    for a, b in imports():
        if a in LAYER and b in LAYER and a != b:
            graph.setdefault(a, set()).add(b)

    def reach(start):
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    assert [m for m in graph if m in reach(m)] == []
