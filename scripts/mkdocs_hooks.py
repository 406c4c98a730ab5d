"""mkdocs hooks of the documentation site (mkdocs.yml: ``hooks``).

The docstrings cite other objects in Sphinx's roles (``:func:`mem2gen.core.null.excess```), which
mkdocstrings leaves as text. After the build, each such role becomes a link to the object's entry on the
API page when the API page documents it (or the object it belongs to), else plain code: the docstrings stay
readable in ``help()`` and in the editor, and the site shows no raw roles.
"""
from __future__ import annotations

import re
from pathlib import Path

ROLE = re.compile(r":(?:func|class|data|meth|mod|attr|obj|exc):<code>~?([\w.]+)(\(\))?</code>")


def link_roles(html: str, ids: set, to_api: str) -> str:
    """``html`` with every role replaced by a link into the API page (``to_api``: its URL from this page)."""

    def swap(m):
        name = m.group(1)
        parts = name.split(".")
        target = next((".".join(parts[:i]) for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in ids), None)
        code = f"<code>{name.split('.')[-1] if '.' in name else name}{m.group(2) or ''}</code>"
        return f'<a href="{to_api}#{target}">{code}</a>' if target else f"<code>{name}{m.group(2) or ''}</code>"

    return ROLE.sub(swap, html)


def on_post_build(config, **kwargs):
    site = Path(config["site_dir"])
    api = site / ("api.html" if not config["use_directory_urls"] else "api/index.html")
    ids = set(re.findall(r'id="(mem2gen[\w.]*)"', api.read_text())) if api.exists() else set()
    for page in site.rglob("*.html"):
        html = page.read_text()
        if ":<code>" not in html:
            continue
        depth = len(page.relative_to(site).parts) - 1
        page.write_text(link_roles(html, ids, "../" * depth + api.relative_to(site).as_posix()))
