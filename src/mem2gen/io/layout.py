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
