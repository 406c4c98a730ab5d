"""Run folders: a sweep (one model per K, resumable point by point), where its points run (executors), what
it will cost (plan), how a finished one is read (Run, Point), verified, tabulated (results) and reported;
sweeps that differ in one knob, compared."""
