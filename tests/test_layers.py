"""The package's layers (README, Design): every import, also one inside a function, points down."""
import ast
from pathlib import Path

import mem2gen

ROOT = Path(mem2gen.__file__).parent
LAYERS = [
    {"errors", "files", "kernels"},
    {"data", "datasets", "config", "sizes", "stats"},
    {"embed", "neighbors", "diffusion", "checkpoints", "models", "memory", "memory.hopfield", "memory.dense", "memory.bridge"},
    {"classify", "train", "sample", "memory.phase", "examples", "landscape", "calibrate", "quality"},
    {"run"},
    {"plots", "report"},
    {"executors", "sweep", "tasks", "toy", "dynamics", "compare"},
    {"cli"},
]
LAYER = {m: i for i, layer in enumerate(LAYERS) for m in layer}


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
    mods = {".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            for f in ROOT.rglob("*.py")} - {"__init__"}
    assert mods == set(LAYER), mods ^ set(LAYER)


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
