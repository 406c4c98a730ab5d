"""The results pages are rendered from the committed tables: a page that differs from its template and
tables fails, and a changed table value changes the page."""
import importlib.util
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
spec = importlib.util.spec_from_file_location("render_docs", ROOT / "scripts" / "render_docs.py")
render_docs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(render_docs)


@pytest.mark.slow
def test_pages_are_rendered_from_the_tables():
    pages = render_docs.pages()
    assert pages, "no templates in docs/templates"
    for path, text in pages.items():
        assert "{{" not in text
        assert path.read_text() == text, f"{path.name} differs from its template and tables: make docs"


@pytest.mark.slow
def test_a_changed_table_value_changes_the_page(tmp_path):
    tables = tmp_path / "tables"
    shutil.copytree(ROOT / "docs" / "tables", tables)
    before = render_docs.pages(tables)
    f = tables / "pooled.csv"
    f.write_text(f.read_text().replace("0.09873333333333334", "0.12873333333333334"))
    after = render_docs.pages(tables)
    page = ROOT / "docs" / "results.md"
    assert "+9.9 points" in before[page] and "+12.9 points" in after[page] and "+9.9 points" not in after[page]


def test_a_placeholder_that_finds_no_number_is_refused():
    with pytest.raises(ValueError, match="no_such_column"):
        render_docs.render("{{ pooled.csv | setting=quick | no_such_column | .2f }}")
    with pytest.raises(ValueError, match="3 rows match"):
        render_docs.render("{{ pooled.csv | * | excess | .2f }}")
    assert render_docs.render("x {{ pooled.csv | setting=quick | models | .0f }} y") == "x 3 y"


@pytest.mark.slow
def test_the_site_builds_offline_with_strict_checks(tmp_path):
    """mkdocs (material, mkdocstrings) builds the docs site with broken links and missing references
    as errors (mkdocs.yml: strict)."""
    import os
    import subprocess
    import sys

    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                       capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    site = tmp_path / "site"
    api = (site / "api.html").read_text()
    assert api.count("classify") > 5
    for name in ("mem2gen.core.rule.classify", "mem2gen.runs.run.Run", "mem2gen.models.networks.load_model"):
        at = api.index(f'id="{name}"')
        assert "doc-signature" in api[at:at + 3000], name  # its signature, with parameters
    # opened from disk: every link between pages names a file that exists, and search needs no server
    import re

    for page in (p for p in site.rglob("*.html") if p.name != "404.html"):  # 404.html: a server's page
        html = page.read_text()
        assert not re.search(r":(func|data|class|meth|mod):<code>", html), page  # cross-references render
        for href in re.findall(r'href="([^"#:?]+)"', html):
            assert (page.parent / href).exists() and not (page.parent / href).is_dir(), (page, href)
    assert (site / "search" / "search_index.js").exists()
    assert '<a href="api.html#mem2gen.core.rule.classify"><code>classify</code></a>' in api


def test_argmax_and_where_pick_the_rows_they_name():
    assert render_docs.render("{{ spurious.csv | * | argmax(frac_spurious) | .0f }}") == "64"
    assert render_docs.render("{{ spurious.csv | * | where(significant_spurious) | s }}") == "32, 48, 64, 128"
    assert render_docs.render("{{ spurious-r3.csv | * | where(significant_spurious) | s }}") == "none"
    # the model's fraction at the null's |S'|: its count there over its n there (K = 64: 41 of 1,000 at |S'| = 733)
    assert render_docs.render("{{ spurious.csv | K=64 | ratio(model_count_spurious_at_null/model_n_at_null) | .3f }}") \
        == "0.041"


def test_every_results_column_is_documented():
    """docs/results-csv.md names every column that results.csv and points.csv carry (the committed
    tables are such files), with <label> / <tested> standing for the class names."""
    import csv
    import re

    doc = (ROOT / "docs" / "results-csv.md").read_text()
    names = set(re.findall(r"`([A-Za-z_0-9<>]+)`", doc))
    for table in ("spurious-r3.csv", "spurious-r3-points.csv", "spurious.csv", "mnist5k.csv"):
        for col in next(csv.reader(open(ROOT / "docs" / "tables" / table))):
            generic = {col, re.sub("spurious_nonmem|memorized|spurious", "<tested>", col),
                       re.sub("memorized|spurious|generalized", "<label>", col)}
            assert generic & names, f"{table}: column {col} is not in docs/results-csv.md"
