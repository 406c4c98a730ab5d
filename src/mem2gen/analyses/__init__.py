"""Analyses of a finished sweep, each with its settings, its run over the sweep's points and its figure:
the landscape (energies, basins, recovery, curvature), the attractor study (Hypothesis 2.1), training
dynamics, the rule's calibration, the 2-D toy."""
