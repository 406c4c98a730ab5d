"""Render the pages of docs/ whose numbers are measurements (and the README) from their templates and
the committed tables: every number such a page reports is a placeholder over docs/tables/ (``make docs``; a test
re-renders each page and fails when it differs from the committed one).

    {{ TABLE | SELECT | COLUMN | FORMAT }}

TABLE is a CSV in docs/tables; SELECT picks its rows (``K=64``, ``R=3,tau=0.05``, ``K>=16,K<=128``;
``*`` for all); COLUMN is a column, or ``min(col)``, ``max(col)``, ``mean(col)``, ``median(col)``, ``sum(col)``,
``count(col>0)``, ``rows`` over the
rows picked, ``ratio(a/b)`` one row's a / b (a count over its n;
``ratio(a/b-c)``: a / (b − c)), ``argmax(col)`` the K of the row
where col is largest, ``where(col)`` the K of the rows
where col > 0 as a list ("none" if no row) (otherwise exactly one row must match); FORMAT is a Python format spec, or
one ending in
``pt`` for a fraction in percentage points (``+.1pt`` → +2.6). Run: ``python scripts/render_docs.py``
(writes the pages) or ``--check`` (exit 1 naming each page that differs).
"""
import csv
import operator
import re
import statistics
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"
PLACEHOLDER = re.compile(r"\{\{(.+?)\}\}")
OPS = {">=": operator.ge, "<=": operator.le, "!=": operator.ne, ">": operator.gt, "<": operator.lt, "=": operator.eq}


def _value(v: str):
    try:
        return float(v)
    except ValueError:
        return v


def _rows(table: str, select: str, tables: Path) -> list[dict]:
    with open(tables / table, newline="") as f:
        rows = [{k: _value(v) for k, v in r.items()} for r in csv.DictReader(f)]
    for cond in ([] if select == "*" else select.split(",")):
        op = next(o for o in OPS if o in cond)
        key, want = (s.strip() for s in cond.split(op, 1))
        rows = [r for r in rows if OPS[op](r[key], _value(want))]
    return rows


def _number(rows: list[dict], column: str):
    m = re.fullmatch(r"(min|max|count|mean|median|sum)\((\w+)(>0)?\)", column)
    if column == "rows":
        return len(rows)
    r = re.fullmatch(r"ratio\((\w+)/(\w+)(?:-(\w+))?\)", column)
    if r and len(rows) == 1:  # a / b, or a / (b - c): a share among what c leaves (e.g. the non-memorized)
        return rows[0][r.group(1)] / (rows[0][r.group(2)] - (rows[0][r.group(3)] if r.group(3) else 0))
    f = re.fullmatch(r"(argmax|where)\((\w+)\)", column)
    if f and f.group(1) == "argmax":
        return max((r for r in rows if isinstance(r[f.group(2)], float)), key=lambda r: r[f.group(2)])["K"]
    if f:
        ks = [f"{r['K']:,.0f}" for r in rows if isinstance(r[f.group(2)], float) and r[f.group(2)] > 0]
        return ", ".join(ks) if ks else "none"
    if m:
        values = [r[m.group(2)] for r in rows if isinstance(r[m.group(2)], float)]  # empty cells left out
        if m.group(1) in ("mean", "median", "sum"):
            return {"mean": statistics.fmean, "median": statistics.median, "sum": sum}[m.group(1)](values)
        return sum(v > 0 for v in values) if m.group(1) == "count" else (min if m.group(1) == "min" else max)(values)
    if len(rows) != 1:
        raise ValueError(f"{len(rows)} rows match where one must")
    return rows[0][column]


def _format(value, spec: str) -> str:
    if spec == "s" and not isinstance(value, str):  # a text column whose cell reads as a number ("0.12")
        value = format(value, "g")
    if spec.endswith("pt"):
        value, spec = value * 100, spec[:-2] + "f"
    return format(value, spec)


def render(text: str, tables: Path = DOCS / "tables") -> str:
    """``text`` with every placeholder replaced by its number."""
    def one(m):
        table, select, column, spec = (s.strip() for s in m.group(1).split("|"))
        try:
            return _format(_number(_rows(table, select, tables), column), spec)
        except (KeyError, ValueError, StopIteration, OSError) as e:
            raise ValueError(f"{{{{{m.group(1)}}}}}: {e}") from None
    return PLACEHOLDER.sub(one, text)


def generated() -> dict:
    """{page path: its text} for the pages generated from the code: the results columns (the schema)."""
    from mem2gen.runs.schema import markdown

    return {DOCS / "results-csv.md": markdown()}


TREE_MARK = "<!-- the module tree -->"
FOLDER_ORDER = ["io", "core", "models", "memory", "runs", "analyses", "commands"]


def _gist(path: Path) -> str:
    """A module's docstring up to the end of its first sentence, on one line, at most 100 characters."""
    import ast

    doc = " ".join((ast.get_docstring(ast.parse(path.read_text())) or "").split("\n\n")[0].split())
    m = re.search(r"(?<![A-Z][a-z]{2})(?<!\bal)(?<!\beq)\.(\s|$)", doc)
    doc = doc[:m.start()] if m else doc
    return doc if len(doc) <= 100 else doc[:99].rsplit(" ", 1)[0] + " …"


def module_tree() -> str:
    """The package's folders and modules in layer order, each with its docstring's gist."""
    root = DOCS.parent / "src" / "mem2gen"
    lines = ["```", "src/mem2gen/", f"  {'errors.py':<22}{_gist(root / 'errors.py')}"]
    for folder in FOLDER_ORDER:
        lines.append(f"  {folder + '/':<22}{_gist(root / folder / '__init__.py')}")
        for f in sorted((root / folder).glob("*.py")):
            if f.name != "__init__.py":
                lines.append(f"    {f.name:<20}{_gist(f)}")
    lines += [f"  {'cli.py':<22}{_gist(root / 'cli.py')}", "```"]
    return "\n".join(lines)


def pages(tables: Path = DOCS / "tables") -> dict:
    """{page path: its rendered text} for every template in docs/templates and its folders (docs/templates/guide/X.md:
    docs/guide/X.md; README.md: the repository's),
    and the pages generated from the code."""
    root = DOCS / "templates"
    return {(DOCS.parent / t.name if t.parent == root and t.name == "README.md" else DOCS / t.relative_to(root)):
            render(t.read_text(), tables).replace(TREE_MARK, module_tree())
            for t in sorted(root.rglob("*.md"))} | generated()


if __name__ == "__main__":
    stale = []
    for path, text in pages().items():
        if "--check" in sys.argv:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        sys.exit("differ from their templates and tables (python scripts/render_docs.py): " + ", ".join(stale))
