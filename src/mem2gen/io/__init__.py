"""Arrays, files and settings in: sample sets and dataset readers, the dataset registry (every fact the paper
fixes per dataset), size schedules, settings (frozen dataclasses and presets), atomic files, the names of a
run's files, the machine's free threads. Imports nothing of mem2gen but :mod:`mem2gen.errors`."""
