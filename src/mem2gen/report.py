"""A self-contained report.html (figures embedded, no network) for a sweep directory."""
from __future__ import annotations

import base64
import html
import json
import platform
from pathlib import Path

from .files import read_json, write_text
from .stats import LABELS


def _img(path: Path, alt: str, width: str = "100%") -> str:
    if not path.exists():
        return f"<p><em>{html.escape(alt)}: not available</em></p>"
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" style="max-width:{width}" src="data:image/png;base64,{data}">'


def versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("mem2gen", "torch", "numpy", "diffusers", "scikit-learn", "matplotlib"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def write_report(run: Path, cfg, rows: list, caps: dict) -> Path:
    from .sweep import point_dir

    ks = [r["K"] for r in rows]
    picks = []
    for label, k in (("memorization (smallest K)", ks[0]), ("spurious capacity SC", caps.get("SC")),
                     ("generalization (largest K)", ks[-1])):
        if k is not None and (k, label) not in picks:
            picks.append((k, label))
    man = read_json(run / "manifest.json") if (run / "manifest.json").exists() else {"points": {}}
    head = "".join(f"<th>{h}</th>" for h in ["K", "|S'|"] + [f"{n} (mean ± std, 95%)" for n in LABELS]
                   + ["train s", "sample s", "classify s"])
    body = []
    for r in rows:
        t = man["points"].get(str(r["K"]), {})
        cells = [str(r["K"]), str(r["n_synthetic"])] + [
            f"{r[f'mean_{n}']:.3f} ± {r[f'std_{n}']:.3f} [{r[f'lo95_{n}']:.3f}, {r[f'hi95_{n}']:.3f}]" for n in LABELS
        ] + [str(t.get(x, "")) for x in ("train_s", "sample_s", "classify_s")]
        body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    cap_rows = "".join(
        f"<tr><td>{key}</td><td>{caps.get(key)}</td><td>{caps['bootstrap'][key]['median']}</td>"
        f"<td>{caps['bootstrap'][key]['ci95']}</td><td>{caps['bootstrap'][key]['defined']:.2f}</td></tr>"
        for key in ("MC", "SC", "GC"))
    grids = "".join(f"<h3>K = {k}: {html.escape(label)}</h3>"
                    f"{_img(point_dir(run, k) / 'neighbors.png', f'neighbours at K={k}', '60%')}"
                    for k, label in picks)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>mem2gen sweep {html.escape(cfg.name)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 7px;text-align:right}}pre{{background:#f6f6f6;padding:1em;font-size:12px}}</style></head><body>
<h1>Memorization → spurious → generalization: {html.escape(cfg.name)}</h1>
<p>Data <code>{html.escape(cfg.data)}</code>, distance <code>{html.escape(cfg.distance)}</code>,
δm = {cfg.delta_m:.4g}, δs = {cfg.delta_s:.4g} (Pham et al. 2025, eqs 4-6); |S_eval| = {cfg.n_eval},
|S'| = {cfg.synthetic_factor}·K; error bars: bootstrap, {cfg.bootstrap_iterations} iterations (App. B.1).</p>
{_img(run / 'phase.png', 'phase diagram', '75%')}
<h2>Capacities (eqs 1-3, tolerance ε = {caps['tol']})</h2>
<table><tr><th>capacity</th><th>estimate</th><th>bootstrap median</th><th>95% interval</th><th>defined in</th></tr>{cap_rows}</table>
<h2>Fractions</h2><table><tr>{head}</tr>{''.join(body)}</table>
<h2>Neighbours (upper row: training set S; lower row: synthetic set S')</h2>{grids}
<h2>Configuration</h2><pre>{html.escape(json.dumps(cfg.to_dict(), indent=2))}</pre>
<h2>Versions</h2><pre>{html.escape(json.dumps(versions(), indent=2))}</pre>
</body></html>"""
    write_text(run / "report.html", page)
    return run / "report.html"
