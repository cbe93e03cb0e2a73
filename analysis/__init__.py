"""Analysis of a result folder (files only, no re-run): per-layer power by window mapping and by
phase folding, whole-model figures, the summary table and plots."""
