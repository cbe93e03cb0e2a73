"""Print and save the figures of ``gpu_check.sh`` (reads its result folders)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path


def main() -> None:
    work, out, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    out.mkdir(parents=True, exist_ok=True)
    figures: dict = {}
    if mode == "long":
        s = json.loads((work / "long/resnet18/resnet18_torch.json").read_text())
        figures["long_run"] = {
            "profile_runs": s["profiling"]["runs"],
            "layers": s["profiling"]["layers"],
            "peak_rss_mb": s["peak_rss_mb"],
            "records_mb": (work / "long/resnet18/torch_profiling/torch_layer_records.csv")
            .stat()
            .st_size
            / 1e6,
        }
    else:
        nvml = json.loads((work / "nvml/cuda_load_power_summary.json").read_text())
        figures["nvml_under_load"] = {
            k: nvml[k]
            for k in (
                "samples",
                "target_hz",
                "achieved_hz",
                "distinct_updates",
                "errors",
                "board_power_uW",
                "lateness_us",
                "read_us",
            )
        }
        figures["nvml_under_load"]["sensor"] = nvml["sensor"]
        for model in ("resnet18", "mobilenet_v2"):
            s = json.loads((work / f"profile/{model}/{model}_torch.json").read_text())
            figures[f"cuda_{model}"] = {
                "timing_mean_ms": s["timing"]["mean_latency_ms"],
                "timing_median_ms": s["timing"]["median_latency_ms"],
                "profiled_wall_mean_ms": s["profiling"]["mean_wall_latency_ms"],
                "profiled_sum_of_layers_ms": s["profiling"]["mean_sum_of_layers_ms"],
                "layers": s["profiling"]["layers"],
                "peak_rss_mb": s["peak_rss_mb"],
                "gpu": s["backend"].get("gpu_name"),
                "dtype": s["backend"]["dtype_used"],
            }
        sweep = work / "sweep"
        figures["sweep"] = {}
        for model in ("resnet18", "mobilenet_v2"):
            status = json.loads((sweep / model / "status.json").read_text())
            power = json.loads((sweep / model / f"{model}_power_summary.json").read_text())
            analysis_path = sweep / model / f"{model}_analysis.json"
            analysis = json.loads(analysis_path.read_text()) if analysis_path.exists() else {}
            figures["sweep"][model] = {
                "status": status["status"],
                "reason": status["reason"],
                "duration_s": status["duration_s"],
                "samples": power["samples"],
                "achieved_hz": power["achieved_hz"],
                "distinct_updates": power["distinct_updates"],
                "power_W": {k: v / 1e6 for k, v in power["board_power_uW"].items()},
                **{
                    k: analysis.get(k)
                    for k in (
                        "mean_power_W",
                        "peak_power_W",
                        "energy_per_inference_mJ",
                        "counter_energy_per_inference_mJ",
                        "layer_coverage",
                    )
                },
            }
        figures["sweep"]["summary_csv"] = (sweep / "summary.csv").read_text()
        for plot in ("power_timeline", "folded_power"):
            src = sweep / "resnet18" / f"resnet18_{plot}.png"
            if src.exists():
                shutil.copy(src, out / f"gpu_resnet18_{plot}.png")
    text = json.dumps(figures, indent=2, default=str)
    print(text)
    (out / f"gpu_{mode}_summary.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
