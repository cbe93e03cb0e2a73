"""The measurement: two processes per model, the sweep over models, and the run's metadata."""
