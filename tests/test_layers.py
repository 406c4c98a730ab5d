"""The package's layers: the one map of what may import what. Every import, also one inside a function,
points down (or stays within its layer without a circle). The README's design section points here."""
import ast
from pathlib import Path

import mem2gen

ROOT = Path(mem2gen.__file__).parent
COMMANDS = {f"commands.{f.stem}" for f in (ROOT / "commands").glob("*.py") if f.stem != "__init__"} | {"commands"}
LAYERS = [
    {"errors", "files", "kernels", "layout", "threads"},  # files on disk, written atomically; the names of a run's files
    {"data", "datasets", "config", "config_doc", "sizes", "stats", "timescales"},  # arrays in, the registry, settings, statistics
    {"embed", "neighbors", "diffusion", "checkpoints", "models",  # distances, exact search, networks, schedules
     "memory", "memory.hopfield", "memory.dense", "memory.bridge"},  # associative memories
    {"classify", "train", "ensemble", "sample", "planted", "calibrate", "quality", "memory.phase"},  # make and measure
    {"landscape", "landscape_study", "attractors"},  # analyse one model: energies, basins, attractors
    {"run", "results"},  # read a run folder
    {"plots", "report", "verify"},  # figures, results.csv and report.html; a point's files checked
    {"executors", "sweep", "toy", "dynamics", "compare", "plan"},  # run sweeps and analyses over them
    COMMANDS,  # one module per command group
    {"cli"},  # registers the commands
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
