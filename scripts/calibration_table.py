"""One run's calibration (``mem2gen calibrate RUN``) as a model-level table: per K and |S'| (m = K, 2K,
4K, …, the prefixes of each model's S'), or per K and δs, the spurious fraction of eq 5 averaged over
the replicate models, the null's at the same m (or δs), and the models' excess over it with its
t-interval over models (mem2gen.core.stats.model_interval). A cell whose null has no S' of that size (the
dataset ran out of held-out items) is left blank.
Run: python scripts/calibration_table.py RUN OUT_SPRIME.csv OUT_DELTAS.csv"""
import sys
from collections import defaultdict

from mem2gen.core.stats import model_interval
from mem2gen.io.files import read_json, write_csv
from mem2gen.runs.run import Run


def table(run_dir, curve: str, grid_key: str, scale, column: str) -> list[dict]:
    cells = defaultdict(list)  # (K, x) -> [(model, null or None)] over replicates
    for p in Run(run_dir).points():
        f = p.path / "calibration.json"
        if not f.exists():
            continue
        c = read_json(f)
        null = {g[grid_key]: g["spurious"] for g in c[f"null_{curve}"]}
        for g in c[f"model_{curve}"]:
            cells[c["K"], g[grid_key]].append((g["spurious"], null.get(g[grid_key])))
    rows = []
    for (k, x), v in sorted(cells.items()):
        model = model_interval([m for m, _ in v])
        row = {"K": k, column: scale(x, k), "models": len(v), "model_spurious": model["mean"],
               "null_spurious": "", "excess": "", "excess_lo95": "", "excess_hi95": ""}
        if all(n is not None for _, n in v):
            e = model_interval([m - n for m, n in v], fraction=False)
            row.update(null_spurious=sum(n for _, n in v) / len(v), excess=e["mean"],
                       excess_lo95=e["ci95"][0] if e["ci95"][0] is not None else "",
                       excess_hi95=e["ci95"][1] if e["ci95"][1] is not None else "")
        rows.append(row)
    return rows


def write(rows, path):
    write_csv(path, [{k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows])


if __name__ == "__main__":
    run, sprime, deltas = sys.argv[1:4]
    write(table(run, "curve", "m", lambda m, k: m / k, "m_over_K"), sprime)  # |S' prefix| / K
    write(table(run, "grid", "delta_s", lambda d, k: d, "delta_s"), deltas)
    print(f"wrote {sprime} and {deltas}")
