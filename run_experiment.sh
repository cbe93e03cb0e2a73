#!/usr/bin/env bash
# The main job: idle power, then each model measured by two processes (power logger and
# per-layer profiler), analysis, upload. `./run_experiment.sh --help` lists every setting;
# each has an environment variable (EVB_*). Runs as the container's command or over SSH.
#
# exit codes: 0 every model complete (and uploaded, where configured); 1 a model failed;
# 2 preflight or flag error (nothing measured); 3 upload failed (data kept); 130 interrupted
# (SIGINT or SIGTERM; the model that ran says "interrupted" in its status.json).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" -m experiment.sweep "$@"
