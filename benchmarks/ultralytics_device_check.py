"""Accelerator checks of the Ultralytics plugin: precisions on CUDA, and whether visiontl's
evaluator agrees with Ultralytics' own validator on the same weights.

Stage ``precision``: a tiny YOLOv8n run (one head-only epoch) per ``train.precision`` (fp32,
bf16, fp16) on the device, with every network attempt recorded (``observe`` mode: the attempts
go to the real network). fp16 makes Ultralytics run its AMP check, which loads ``yolo26n.pt``;
on an offline machine this measures what that costs.

Stage ``agree``: YOLOv8n from its config (no pretrained weights exist offline) trained on
PennFudan (COCO JSON, last 50 images as validation) with ``model.options.ultralytics_val``, so
each epoch records visiontl's pycocotools mAP and Ultralytics' own mAP of the same EMA weights.
Close numbers mean the plugin's letterbox, NMS and coordinate mapping are right. Stage
``agree_seg`` does the same for YOLOv8n-seg (box and mask mAP).

    python benchmarks/ultralytics_device_check.py --data DATA_ROOT --out OUT_DIR [--epochs 40]

``DATA_ROOT`` holds ``pennfudan/`` (``annotations.json`` and ``images/``) and ``coco128/``
(optional). Writes ``device_check.json`` to ``OUT_DIR``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ultralytics_offline import NetworkGuard  # noqa: E402

DEVICE = "cuda"


def pennfudan_recipe(out: Path, **overrides: Any) -> dict[str, Any]:
    recipe: dict[str, Any] = {
        "task": "detection",
        "data": {"format": "coco", "root": "pennfudan", "train": "annotations.json", "images": "images", "val": None, "val_last": 50},
        "model": {"id": "ultralytics:yolov8n"},
        "strategy": {"name": "full"},
        "optimizer": {"name": "adamw", "lr": 0.002, "weight_decay": 0.0005},
        "scheduler": {"name": "cosine", "warmup_epochs": 3, "min_lr_ratio": 0.01},
        "augmentation": {"preset": "standard"},
        "train": {"epochs": 1, "batch_size": 16, "device": DEVICE, "workers": 8, "progress": False, "seed": 0},
        "output": {"dir": str(out), "plots": False},
    }
    for key, value in overrides.items():
        recipe[key] = {**recipe.get(key, {}), **value}
    return recipe


def precision_stage(data_root: Path, out: Path) -> list[dict[str, Any]]:
    from visiontl.api import run
    from visiontl.config.loader import validate_recipe

    rows = []
    for precision in ("fp32", "bf16", "fp16") if DEVICE != "cpu" else ("fp32",):
        recipe = pennfudan_recipe(out, data={"limit": 16, "val_last": 8, "image_size": 128},
                                  strategy={"name": "feature_extraction"},
                                  train={"precision": precision, "epochs": 1},
                                  output={"name": f"precision_{precision}"})
        with NetworkGuard("observe") as guard:
            t0 = time.perf_counter()
            outcome = run(validate_recipe(recipe, precision))
            wall = time.perf_counter() - t0
        rows.append({
            "precision": precision,
            "wall_s": round(wall, 2),
            "audits_ok": all(a["ok"] for a in outcome.summary["audits"]),
            "frozen_params_checked": outcome.summary["audits"][0]["params_checked"],
            "device": outcome.summary.get("device"),
            "attempts": [{k: v for k, v in a.items() if k != "t"} for a in guard.attempts],
        })
        print(json.dumps(rows[-1]), flush=True)
    return rows


def agree_stage(data_root: Path, out: Path, epochs: int, imgsz: int, segment: bool = False) -> dict[str, Any]:
    from visiontl.api import run
    from visiontl.config.loader import validate_recipe

    model = {"id": "ultralytics:yolov8n-seg" if segment else "ultralytics:yolov8n", "options": {"ultralytics_val": True}}
    recipe = pennfudan_recipe(out, data={"image_size": imgsz}, train={"epochs": epochs}, model=model,
                              output={"name": "agree_seg" if segment else "agree"})
    if segment:
        recipe["task"] = "instance_segmentation"
    t0 = time.perf_counter()
    outcome = run(validate_recipe(recipe, "agree"))
    wall = time.perf_counter() - t0
    history = outcome.result.history
    keep = ("epoch", "train_loss", "map", "map50", "ultralytics/metrics/mAP50-95(B)", "ultralytics/metrics/mAP50(B)",
            "mask_map", "mask_map50", "ultralytics/metrics/mAP50-95(M)", "ultralytics/metrics/mAP50(M)", "seconds")
    rows = [{k: row.get(k) for k in keep if k in row} for row in history]
    for row in rows[-5:]:
        print(json.dumps(row), flush=True)
    return {"epochs": epochs, "imgsz": imgsz, "wall_s": round(wall, 1), "best": outcome.summary["best"], "history": rows,
            "audits_ok": all(a["ok"] for a in outcome.summary["audits"])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--stages", default="precision,agree", help="any of precision, agree, agree_seg")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--runs", default=None, help="folder of the run directories (default: OUT/runs)")
    args = parser.parse_args(argv)
    global DEVICE
    DEVICE = args.device
    import os

    import torch

    data_root, out = Path(args.data).resolve(), Path(args.out).resolve()
    runs = Path(args.runs).resolve() if args.runs else out / "runs"
    os.environ["VISIONTL_DATA_DIR"] = str(data_root)
    result: dict[str, Any] = {
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    print(json.dumps(result), flush=True)
    stages = args.stages.split(",")
    if "precision" in stages:
        result["precision"] = precision_stage(data_root, runs)
    if "agree" in stages:
        result["agree"] = agree_stage(data_root, runs, args.epochs, args.imgsz)
    if "agree_seg" in stages:
        result["agree_seg"] = agree_stage(data_root, runs, args.epochs, args.imgsz, segment=True)
    (out / "device_check.json").write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
