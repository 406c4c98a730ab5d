"""The names of the files mem2gen writes, declared once: a classification's folder, and a sweep point's
folder (``runs/<name>/points/K=<k>/``, :mod:`mem2gen.runs.sweep`) which holds one too."""

MODEL = "model"  # a point's EMA model folder (diffusers' layout for U-Nets)
MODEL_RECORD = "mem2gen.json"  # in a model folder: how it was made and its weights' digest
EVAL = "eval.npy"  # S_eval
SYNTHETIC = "synthetic.npy"  # S'
LABELS_CSV = "labels.csv"  # one row per sample of S_eval: label, distances, neighbours
SUMMARY = "summary.json"  # counts, fractions, bootstrap; written last, so it marks a finished classification
GRID = "neighbors.png"
NULL = "null.json"  # the rule on held-out real data (mem2gen.core.null)
MANIFOLD = "manifold.json"  # the off-manifold check (mem2gen.core.null)
QUALITY = "quality.json"  # FD / KID (mem2gen.quality)
CALIBRATION = "calibration.json"  # mem2gen calibrate
LANDSCAPE = "landscape.json"  # mem2gen landscape
LANDSCAPE_FIGURE = "landscape.png"
ATTRACTORS = "attractors.json"  # mem2gen landscape --attractors
# ... and its run tables: per model, t and group; per start; per barrier; per K, t and group over the models
ATTRACTOR_TABLES = ("attractors-census.csv", "attractors-points.csv", "attractors-barriers.csv", "attractors.csv")
BRIDGE = "bridge.json"  # mem2gen memory bridge
DIGESTS = "digests.json"  # each labelled output's sha256, fingerprint and size, recorded as it is written
VOUCHED = (LABELS_CSV, SUMMARY, NULL, MANIFOLD, QUALITY)  # what a report publishes: verified before it does

# what a classified point holds beside its model and samples (all that verification may delete)
CLASSIFIED_FILES = (LABELS_CSV, SUMMARY, GRID, NULL, MANIFOLD, QUALITY, CALIBRATION, LANDSCAPE, LANDSCAPE_FIGURE,
                    ATTRACTORS, DIGESTS)

# a run folder's own records (runs/<name>/)
CONFIG = "config.json"  # the resolved SweepConfig
MANIFEST = "manifest.json"  # each point's stage and times

NAME_MAX = 255  # bytes in one path component (Linux, macOS)
PATH_MAX = 4096  # bytes in a whole path (Linux)
NAME_ROOM = 40  # what mem2gen appends to a name it is given (".partial.npy", ".progress.json", ".lock", "K=60000.r9")


def check_path_length(path, *, room: int = NAME_ROOM) -> None:
    """A path mem2gen will write into: each component, with ``room`` for what mem2gen appends, within the
    file system's limits, so a long name is refused before the work rather than after it."""
    import os

    from ..errors import check

    p = os.path.abspath(os.fspath(path))
    long = [c for c in p.split(os.sep) if len(c.encode()) + room > NAME_MAX]
    short = p if len(p) <= 60 else p[:28] + "..." + p[-28:]
    check(not long, f"{short}: a name of {len(long[0].encode()) if long else 0} bytes in it; with what mem2gen adds "
                    f"to a name it must stay under {NAME_MAX - room} bytes")
    check(len(p.encode()) + 200 < PATH_MAX, f"{short}: the path has {len(p.encode())} bytes; keep it under "
                                            f"{PATH_MAX - 200} (the run's own files go deeper)")
