"""The GPU plan of a sweep preset as a table (docs/tables/plan-PRESET-GPU.csv): per size K, training and
sampling hours on one named GPU, optimistic and pessimistic (``mem2gen sweep --plan-gpu``: counted, not timed).

    python scripts/plan_table.py paper-mnist H100 docs/tables
"""
import sys
from pathlib import Path

from mem2gen.io.config import load_config
from mem2gen.io.files import write_csv
from mem2gen.runs.plan import plan

if __name__ == "__main__":
    preset, gpu, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    name = load_config(preset).data.split(":")[0]
    p = plan(load_config(preset, overrides={"data": f"{name}:/absent"}), out / "unused", gpu=gpu)
    g = p["gpu"]
    rows = [{"K": r["K"], **{f"{part}_h_{tag}": round(r[f"{part}_s_{tag}"] / 3600, 3)
                             for part in ("train", "sample") for tag in ("fast", "slow")},
             "hours_fast": round(r["seconds_fast"] / 3600, 3), "hours_slow": round(r["seconds_slow"] / 3600, 3),
             "gpu": g["gpu"], "gflops_per_forward": round(g["counted"]["forward_flops"] / 1e9, 3),
             "disk_gib": round(d["disk_bytes"] / 2 ** 30, 3)}
            for r, d in zip(g["points"], p["points"])]
    write_csv(out / f"plan-{preset}-{g['gpu'].lower()}.csv", rows)
    print("wrote", out / f"plan-{preset}-{g['gpu'].lower()}.csv")
