"""The README's own-model path, timed: a user's diffusers DDPMPipeline to an answer (fractions, the null in
both forms, excesses, p-values, quality caveats) with the commands a user types, each timed from the shell
(imports included). Writes docs/tables/own-model-path.csv (one row per command and a total).

    python scripts/own_model_path.py WORKDIR docs/tables

The stand-in model (examples/own_model.py's training loop on 32 digits, 400 steps) is "the model you already
have": its training is not timed.
"""
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

if __name__ == "__main__":
    from own_model import train_pipeline

    from mem2gen.io.datasets import load_dataset

    work, out = Path(sys.argv[1]), Path(sys.argv[2])
    work.mkdir(parents=True, exist_ok=False)
    digits = load_dataset("digits")
    order = np.random.default_rng(0).permutation(len(digits))
    np.save(work / "train.npy", digits[order[:32]])
    np.save(work / "heldout.npy", digits[order[32:]])
    train_pipeline(digits[order[:32]], work / "pipeline", steps=400)
    mem2gen = [str(Path(sys.executable).parent / "mem2gen")]
    steps = [("sample_eval", ["sample", "--model", "pipeline", "--n", "500", "--out", "eval.npy"]),
             ("sample_synthetic", ["sample", "--model", "pipeline", "--n", "2000", "--out", "synthetic.npy"]),
             ("classify",
              ["classify", "--train", "train.npy", "--synthetic", "synthetic.npy", "--eval", "eval.npy",
               "--held-out", "heldout.npy", "--dataset", "digits", "--out", "labels"])]
    rows = []
    for name, args in steps:
        t = time.perf_counter()
        subprocess.run(mem2gen + args + ["--quiet"], cwd=work, check=True)
        rows.append({"step": name, "seconds": round(time.perf_counter() - t, 1),
                     "command": "mem2gen " + " ".join(args)})
    s = json.loads((work / "labels" / "summary.json").read_text())
    rows.append({"step": "total", "seconds": round(sum(r["seconds"] for r in rows), 1), "command": ""})
    for r in rows:
        r |= {"generalized": s["fractions"]["generalized"], "spurious": s["fractions"]["spurious"],
              "excess_spurious": s["null"]["excess"]["spurious"]["excess"],
              "quality_fd": s["quality"].get("fd"), "real_fd": s["quality"].get("real_fd"),
              "caveats": len(s["caveats"])}
    from mem2gen.io.files import write_csv

    write_csv(out / "own-model-path.csv", rows)
    print(rows)
