"""The measurement: distance spaces and the exact neighbour search, the rule (eqs 4-6), the null and the
checks beside it, one evaluation that assembles them, and the statistics (bootstrap, exact tests,
model-level intervals, capacities, crossing times). Imports :mod:`mem2gen.io` only."""
