"""The torch-free runtime (``visiontl.deploy``): every family exported to ONNX fp32 and run in a
subprocess where torch, torchvision, timm, Ultralytics and SMP cannot be imported, against
PyTorch's own predictions (the task's ``predict`` on the trained run or checkpoint): classes
identical, boxes IoU >= 0.99, masks pixel agreement >= 0.99; ``evaluate`` on a folder gives
the metric the export's verification measured for PyTorch.

The numpy ports are also held to their torch originals directly (pre-processing, letterbox,
NMS, masks from prototypes), on random inputs, in this process.

Tiny models only: a timm resnet10t trained 2 epochs at 32 px, a DeepLabV3 head over the
ImageNet SqueezeNet at 64 px, a Mask R-CNN over it at 64-96 px, YOLOv8n and YOLOv8n-seg
from their configs at 64 px.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from conftest import ROOT, train_tiny_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: What the runtime must never import.
BLOCKED = ("torch", "torchvision", "timm", "ultralytics", "segmentation_models_pytorch")

#: Runs the runtime with the blocked packages unimportable; arguments and results as JSON.
RUNTIME_SCRIPT = r"""
import json, sys, time

BLOCKED = %(blocked)r


class Block:
    # A finder ahead of every other: importing a blocked package fails, and every attempt is
    # recorded (an "import torch" inside try/except ImportError would otherwise go unseen).
    attempts = []

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            self.attempts.append(name)
            raise ImportError(f"{name} is blocked: the torch-free runtime must not import it")
        return None


sys.meta_path.insert(0, Block())
import numpy as np

from visiontl import deploy
from visiontl.deploy.cli import eval_artefact, predict_artefact

args = json.loads(sys.argv[1])
started = time.perf_counter()
model = deploy.load(args["artefact"])
out = {"predictor": type(model).__name__, "runs": [], "load_s": time.perf_counter() - started}
arrays = {}
for r, options in enumerate(args["runs"]):
    rows = []
    started = time.perf_counter()
    for i, path in enumerate(args["images"]):
        p = model.predict(path, **options)
        rows.append({"labels": p.labels, "scores": p.scores, "boxes": p.boxes.tolist(), "extra": p.extra})
        if p.masks is not None:
            arrays[f"masks_{r}_{i}"] = p.masks
        if p.label_map is not None:
            arrays[f"map_{r}_{i}"] = p.label_map
    out["runs"].append({"rows": rows, "seconds_per_image": (time.perf_counter() - started) / len(args["images"])})
if args.get("evaluate"):
    metrics = model.evaluate(**args["evaluate"])
    out["metrics"] = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    print("--- eval_artefact")
    eval_artefact(args["artefact"], **args["evaluate"])
print("--- predict_artefact")
predict_artefact(args["artefact"], args["images"], topk=2, score_threshold=args.get("cli_threshold"), out_dir=args["overlays"])
out["imported"] = sorted({m.split(".")[0] for m in sys.modules} & set(BLOCKED))
out["attempted"] = sorted(set(Block.attempts))
assert not out["imported"] and not out["attempted"], (out["imported"], out["attempted"])
assert "torch" not in sys.modules
np.savez_compressed(args["arrays"], **arrays)
with open(args["result"], "w") as fh:
    json.dump(out, fh)
"""


def run_torch_free(tmp: Path, artefact: Path, images: list[Path], runs: list[dict[str, Any]], evaluate: dict[str, str] | None = None,
                   cli_threshold: float | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray], str]:
    """Run the runtime in a fresh interpreter that cannot import torch; returns its results,
    its arrays (masks, label maps) and what it printed."""
    args = {"artefact": str(artefact), "images": [str(p) for p in images], "runs": runs, "evaluate": evaluate,
            "cli_threshold": cli_threshold, "overlays": str(tmp / "overlays"), "result": str(tmp / "result.json"),
            "arrays": str(tmp / "arrays.npz")}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join((str(ROOT), str(ROOT / "plugins")))}
    done = subprocess.run([sys.executable, "-c", RUNTIME_SCRIPT % {"blocked": BLOCKED}, json.dumps(args)], capture_output=True,
                          text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    with np.load(tmp / "arrays.npz") as data:
        arrays = {k: data[k] for k in data.files}
    return json.loads((tmp / "result.json").read_text()), arrays, done.stdout


def pytorch_predictions(target: Path, images: list[Path], **options: Any) -> list[Any]:
    """The task's own ``predict`` on the trained model (what ``visiontl predict`` runs)."""
    from visiontl.api import load_trained, resolve_task
    from visiontl.data.images import load_rgb
    from visiontl.plugin_manager import get_plugins

    plugins = get_plugins()
    loaded = load_trained(target, plugins)
    task = resolve_task(plugins, loaded.task)
    return [task.predict(loaded.model, load_rgb(p), loaded.preprocessing, loaded.class_names, recipe=loaded.recipe, **options)
            for p in images]


def export_onnx(target: Path, out: Path, data_root: Path) -> tuple[Path, dict[str, Any], float]:
    """``visiontl export TARGET --format onnx`` (fp32, verified); the manifest, its content and seconds."""
    from visiontl.export.pipeline import export

    started = time.perf_counter()
    report = export(target, "onnx", "fp32", out=out, data_root=data_root, threads=1)
    assert report.passed, report.problems
    return report.manifest_path, json.loads(report.manifest_path.read_text()), time.perf_counter() - started


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from visiontl.deploy.boxes import box_iou as iou

    return iou(np.asarray(a, dtype=np.float64).reshape(-1, 4), np.asarray(b, dtype=np.float64).reshape(-1, 4))


def match_detections(ref_boxes: np.ndarray, ref_labels: list[str], ref_scores: list[float], boxes: np.ndarray, labels: list[str],
                     ref_masks: list[np.ndarray] | None = None, masks: np.ndarray | None = None, top: int = 10,
                     score: float = 0.25) -> list[tuple[int, int, float, float]]:
    """``(reference index, runtime index, box IoU, mask agreement)`` for each PyTorch detection
    scoring at least ``score`` and the ``top`` best of the image (as export verification
    compares), best first, each paired with a different runtime detection of its class: the one
    with the highest box IoU, and among equal boxes (an untrained YOLO clips several to the
    whole image) the most similar mask. An unmatched one gets index -1."""
    order = np.argsort(-np.asarray(ref_scores), kind="stable")
    best_few = set(order[:top].tolist())
    chosen = [int(i) for i in order if i in best_few or ref_scores[i] >= score]
    iou = box_iou(ref_boxes, boxes) if len(boxes) else np.zeros((len(ref_boxes), 0))
    used: set[int] = set()
    pairs = []
    for i in chosen:
        best: tuple[float, float, int] = (-1.0, -1.0, -1)
        for j, name in enumerate(labels):
            if j in used or name != ref_labels[i]:
                continue
            agree = float((masks[j] == ref_masks[i]).mean()) if masks is not None and ref_masks is not None else 1.0
            key = (round(float(iou[i, j]), 4), agree, j)
            best = max(best, key)
        if best[2] >= 0:
            used.add(best[2])
        pairs.append((i, best[2], max(best[0], 0.0), best[1]))
    return pairs


#: Agreement figures measured by the tests, printed at the end (docs/deploy.md quotes them).
FIGURES: dict[str, dict[str, Any]] = {}


@pytest.fixture(scope="module", autouse=True)
def _print_figures():
    yield
    for name, row in FIGURES.items():
        print(f"\n[deploy agreement] {name}: " + ", ".join(f"{k}={v}" for k, v in row.items()))


# --------------------------------------------------------------------------- numpy ports


def test_pre_processing_reproduces_the_torchvision_transforms():
    """Classification (auto/stretch/letterbox), segmentation (stretch/letterbox/own size) and
    detection (stretch/letterbox) inputs equal visiontl's torchvision transforms: float paths
    to float rounding, 8-bit resizes within one grey level (torch's uint8 kernel vs Pillow's)."""
    from PIL import Image

    from visiontl.contracts import Preprocessing
    from visiontl.data.detection.transforms import size_step
    from visiontl.data.segmentation.transforms import image_transform
    from visiontl.data.transforms import eval_transform
    from visiontl.deploy import preprocess

    rng = np.random.default_rng(0)
    image = Image.fromarray((rng.random((53, 71, 3)) * 255).astype(np.uint8))
    one_level = 1.0 / 255 / 0.224 + 1e-4
    for pre in (Preprocessing((32, 32), crop_pct=0.95, interpolation="bicubic"), Preprocessing((40, 56)), Preprocessing((64, 64), crop_pct=1.0)):
        ours = preprocess.Preprocessing.from_manifest(asdict(pre))
        for mode in ("auto", "stretch", "letterbox"):
            ref = eval_transform(pre, mode)(image).numpy()
            got = preprocess.classifier_input(image, ours, mode)[0]
            assert got.shape == ref.shape and np.abs(got - ref).max() <= (1e-5 if mode == "auto" else one_level), (pre, mode)
        for mode, resize in (("stretch", True), ("letterbox", True), ("stretch", False)):
            ref = image_transform(pre, resize=resize, mode=mode)(image).numpy()
            got = preprocess.segmenter_input(image, ours, resize=resize, mode=mode)
            assert got.shape == ref.shape and np.abs(got - ref).max() <= one_level, (pre, mode, resize)
    x = torch.rand(3, 53, 71)
    for mode, size in (("stretch", (64, 48)), ("letterbox", (64, 64)), ("letterbox", (40, 96))):
        ref = size_step(size, mode)(x).numpy()
        got, content = preprocess.sized_detection_input(x.numpy(), size, mode)
        assert got.shape == ref.shape and np.abs(got - ref).max() < 1e-5, (mode, size)


def test_evaluation_resize_of_detection_images_reproduces_the_dataset_transform():
    """What a detector sees in ``visiontl eval`` under ``data.image_size``/``data.resize``."""
    from PIL import Image
    from torchvision import tv_tensors
    from torchvision.transforms.v2 import functional as F

    from visiontl.data.detection.transforms import detection_transform
    from visiontl.deploy.evaluate import eval_detection_input

    rng = np.random.default_rng(1)
    image = Image.fromarray((rng.random((53, 71, 3)) * 255).astype(np.uint8))
    for mode, size in (("auto", (64, 64)), ("auto", (48, 80)), ("stretch", (64, 48)), ("letterbox", (64, 64))):
        sample = {"image": tv_tensors.Image(F.pil_to_tensor(image)), "boxes": tv_tensors.BoundingBoxes(torch.zeros(0, 4), format="XYXY", canvas_size=(53, 71)),
                  "labels": torch.zeros(0, dtype=torch.int64), "iscrowd": torch.zeros(0, dtype=torch.int64)}
        ref = detection_transform("none", size, train=False, mode=mode)(sample)["image"].numpy()
        seen, _ = eval_detection_input(image, size, mode)
        got = np.asarray(seen, dtype=np.float32).transpose(2, 0, 1) / 255
        assert got.shape == ref.shape and np.abs(got - ref).max() <= 1 / 255 + 1e-6, (mode, size)


def test_yolo_letterbox_nms_and_masks_reproduce_ultralytics():
    """The numpy letterbox, class-wise NMS and masks from prototypes against
    ``YoloModel``'s letterbox and Ultralytics' ``non_max_suppression``/``process_mask`` on the
    same raw predictions: the same detections in the same order, masks identical."""
    from ultralytics.utils.nms import non_max_suppression
    from ultralytics.utils.ops import process_mask

    from visiontl.deploy import yolo
    from visiontl_ultralytics.model import letterbox_batch

    for h, w in ((53, 71), (120, 40), (64, 64), (20, 30)):
        image = torch.rand(3, h, w)
        canvas, frames = letterbox_batch([image], 64)
        ours, frame = yolo.letterbox(image.numpy(), 64)
        assert np.abs(ours - canvas[0].numpy()).max() < 1e-5 and (frame.new_h, frame.top, frame.left) == (frames[0].new_h, frames[0].top, frames[0].left)

    g = torch.Generator().manual_seed(0)
    nc, nm, n, size = 3, 32, 400, 64
    centres = torch.rand(n, 2, generator=g) * size
    sizes = torch.rand(n, 2, generator=g) * 20 + 2
    scores = torch.rand(n, nc, generator=g) ** 3
    coefficients = torch.randn(n, nm, generator=g)
    prediction = torch.cat((centres, sizes, scores, coefficients), 1).T[None]  # [1, 4 + nc + nm, N]
    protos = torch.randn(nm, size // 4, size // 4, generator=g)
    settings = yolo.YoloSettings(imgsz=size, conf=0.05, iou=0.5, max_det=50, num_classes=nc, segment=True)
    ref = non_max_suppression(prediction, settings.conf, settings.iou, max_det=settings.max_det, nc=nc)[0]
    rows = yolo.non_max_suppression(prediction[0].numpy(), settings)
    assert rows.shape == tuple(ref.shape) and len(rows) == 50
    assert np.abs(rows - ref.numpy()).max() < 1e-4
    masks = process_mask(protos, ref[:, 6:], ref[:, :4], (size, size), upsample=True).numpy()
    ours = yolo.masks_from_prototypes(protos.numpy(), rows[:, 6:], rows[:, :4], (size, size))
    assert (ours == masks).mean() > 0.9999
    frame = yolo.Frame(50, 80, 40, 64, 12, 0)
    from visiontl_ultralytics.model import Frame

    ref_frame = Frame(50, 80, 40, 64, 12, 0)
    assert np.array_equal(frame.unletterbox_masks(masks), ref_frame.unletterbox_masks(torch.from_numpy(masks)).numpy())
    assert np.abs(frame.unletterbox_boxes(rows[:, :4]) - ref_frame.unletterbox_boxes(ref[:, :4]).numpy()).max() < 1e-4


def test_artefacts_are_found_and_refused_clearly(tmp_path):
    from visiontl.deploy import DeployError, is_artefact, load

    assert not is_artefact(tmp_path)
    with pytest.raises(DeployError, match=r"No export manifest.*Fix: pass the folder or manifest"):
        load(tmp_path)
    base = {"files": ["m.pt"], "model_id": "timm:resnet10t", "task": "classification", "class_names": ["a", "b"],
            "preprocessing": {"input_size": [32, 32]}, "input": {}, "layout": {"kind": "tensor", "names": ["output"]}}
    (tmp_path / "m.export.json").write_text(json.dumps({**base, "format": "torchscript", "precision": "fp32"}))
    assert is_artefact(tmp_path) and is_artefact(tmp_path / "m.pt")
    with pytest.raises(DeployError, match="TorchScript needs torch.*--format onnx"):
        load(tmp_path)
    (tmp_path / "n.export.json").write_text(json.dumps({**base, "files": ["n.onnx"], "format": "onnx", "precision": "fp32"}))
    with pytest.raises(DeployError, match="holds 2 exports.*--format onnx --precision fp32"):
        load(tmp_path)
    with pytest.raises(DeployError, match="n.onnx' named by .* is missing"):
        load(tmp_path, format="onnx")
    with pytest.raises(DeployError, match="No export in .* is openvino"):
        load(tmp_path, format="openvino")
    from visiontl.deploy.cli import eval_artefact

    with pytest.raises(DeployError, match="carries no dataset.*--images DIR"):
        eval_artefact(tmp_path, None)


# --------------------------------------------------------------------------- classification


@pytest.fixture(scope="module")
def classifier(tmp_path_factory, shapes_root, shared_data) -> dict[str, Any]:
    """A tiny trained classification run (resnet10t, 32 px) exported to ONNX fp32."""
    run = train_tiny_run(tmp_path_factory, shapes_root, "deploy_cls", epochs=2)
    manifest, content, seconds = export_onnx(run, run / "exports", shapes_root)
    return {"run": run, "manifest": manifest, "content": content, "export_s": seconds}


def test_classifier_runs_without_torch_and_matches_pytorch(classifier, shapes_root, tmp_path):
    val = shapes_root / "val"
    images = sorted(val.rglob("*.png"))[::3]
    ref = pytorch_predictions(classifier["run"], images, topk=3)
    result, _, printed = run_torch_free(tmp_path, classifier["run"] / "exports", images, [{"topk": 3}], {"images": str(val)})
    assert result["predictor"] == "ClassificationPredictor" and result["imported"] == []
    rows = result["runs"][0]["rows"]
    assert [r["labels"] for r in rows] == [[n for n, _ in p.labels] for p in ref]
    prob_diff = max(abs(a - b) for r, p in zip(rows, ref, strict=True) for a, (_, b) in zip(r["scores"], p.labels, strict=True))
    assert prob_diff < 1e-4
    # the folder's accuracy is what the export's verification measured for PyTorch on it
    verified = classifier["content"]["verification"]["pytorch_fp32"]
    assert result["metrics"]["accuracy"] == pytest.approx(verified["accuracy"], abs=1e-9)
    assert result["metrics"]["val_loss"] == pytest.approx(verified["val_loss"], abs=1e-3)
    assert "accuracy: " in printed and f"{images[0]}: " in printed
    assert classifier["content"]["inference"]["data"]["resize"] == "auto"
    FIGURES["classification (timm resnet10t, 32 px)"] = {
        "images": len(images), "top3_identical": True, "max_prob_diff": f"{prob_diff:.1e}",
        "accuracy": f"{result['metrics']['accuracy']:.4f} (PyTorch {verified['accuracy']:.4f})",
        "ms_per_image": round(result["runs"][0]["seconds_per_image"] * 1000, 1), "export_s": round(classifier["export_s"], 1)}


# --------------------------------------------------------------------------- segmentation


def pennfudan_val(shared_data: Path, count: int = 3) -> list[Path]:
    """The last ``count`` PennFudan images by file name (``data.val_last: 3``)."""
    return sorted((shared_data / "pennfudan" / "images").glob("*.png"))[-count:]


def linked_folder(folder: Path, files: list[Path]) -> Path:
    """``folder`` holding links to ``files`` (a subset to score, without copying data)."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        (folder / f.name).symlink_to(f)
    return folder


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory, shared_data) -> dict[str, Any]:
    """DeepLabV3 over the ImageNet SqueezeNet (untrained head) on PennFudan masks at 64 px,
    letterboxed (``data.resize: letterbox``), exported to ONNX fp32."""
    from visiontl.api import prepare
    from visiontl.config.loader import recipe_to_dict, validate_recipe
    from visiontl.train.checkpoint import save_checkpoint

    folder = tmp_path_factory.mktemp("deploy_seg")
    recipe = validate_recipe({
        "task": "segmentation",
        "data": {"format": "masks", "root": "pennfudan", "images": "images", "masks": "masks", "val_last": 3, "limit": 6,
                 "class_names": ["background", "person"], "image_size": 64, "resize": "letterbox"},
        "model": {"id": "torchvision:deeplabv3", "pretrained": False, "weights": "weights/squeezenet1_1_imagenet_features.pth",
                  "options": {"backbone": "torchvision:squeezenet1_1", "channels": 32}},
    }, "test")
    prepared = prepare(recipe, data_root=shared_data)
    ckpt = folder / "deeplabv3.pt"
    save_checkpoint(ckpt, {"model_id": "torchvision:deeplabv3", "task": "segmentation", "class_names": prepared.info.class_names,
                           "preprocessing": asdict(prepared.built.preprocessing), "recipe": recipe_to_dict(recipe),
                           "weights": prepared.built.weights.as_dict(), "model": prepared.built.model.state_dict()})
    manifest, content, seconds = export_onnx(ckpt, folder / "exports", shared_data)
    return {"ckpt": ckpt, "manifest": manifest, "content": content, "export_s": seconds}


def test_segmenter_runs_without_torch_and_matches_pytorch(segmenter, shared_data, tmp_path):
    images = pennfudan_val(shared_data)
    masks = [shared_data / "pennfudan" / "masks" / p.name for p in images]
    runs = [{"inference": "resize"}, {"inference": "sliding"}]
    refs = [pytorch_predictions(segmenter["ckpt"], images, inference=r["inference"]) for r in runs]
    evaluate = {"images": str(linked_folder(tmp_path / "images", images)), "masks": str(linked_folder(tmp_path / "masks", masks))}
    result, arrays, printed = run_torch_free(tmp_path, segmenter["manifest"], images, runs, evaluate)
    assert result["predictor"] == "SegmentationPredictor" and result["imported"] == []
    worst = {}
    for r, (run, ref) in enumerate(zip(runs, refs, strict=True)):
        agreement = [float((arrays[f"map_{r}_{i}"] == p.mask).mean()) for i, p in enumerate(ref)]
        assert min(agreement) >= 0.99, (run, agreement)
        for row, p in zip(result["runs"][r]["rows"], ref, strict=True):
            assert row["extra"]["inference"] == run["inference"] == p.details["inference"]
            areas = dict(zip(row["labels"], row["scores"], strict=True))
            assert all(abs(areas.get(n, 0.0) - a) < 0.01 for n, a in p.labels)
        worst[run["inference"]] = min(agreement)
    # the runtime's mIoU on the validation images is PyTorch's (eval.inference: auto scores with resize)
    verified = segmenter["content"]["verification"]["pytorch_fp32"]
    assert result["metrics"]["num_images"] == 3
    assert result["metrics"]["miou"] == pytest.approx(verified["miou"], abs=2e-3)
    assert result["metrics"]["iou_person"] == pytest.approx(verified["iou_person"], abs=2e-3)
    assert "miou: " in printed and (tmp_path / "overlays").is_dir()
    assert segmenter["content"]["inference"]["data"]["resize"] == "letterbox"
    FIGURES["segmentation (DeepLabV3 over SqueezeNet, 64 px letterbox)"] = {
        "images": len(images), "pixel_agreement_resize": f"{worst['resize']:.5f}", "pixel_agreement_sliding": f"{worst['sliding']:.5f}",
        "miou": f"{result['metrics']['miou']:.4f} (PyTorch {verified['miou']:.4f})",
        "ms_per_image_resize": round(result["runs"][0]["seconds_per_image"] * 1000, 1),
        "ms_per_image_sliding": round(result["runs"][1]["seconds_per_image"] * 1000, 1), "export_s": round(segmenter["export_s"], 1)}


# --------------------------------------------------------------------------- detection


def coco_subset(source: Path, names: list[str], out: Path) -> Path:
    """A COCO file of ``source`` with only the images whose ``file_name`` is in ``names``."""
    data = json.loads(source.read_text())
    images = [im for im in data["images"] if Path(im["file_name"]).name in names]
    ids = {im["id"] for im in images}
    out.write_text(json.dumps({**data, "images": images, "annotations": [a for a in data["annotations"] if a["image_id"] in ids]}))
    return out


def check_detections(ref: list[Any], rows: list[dict[str, Any]], arrays: dict[str, np.ndarray], masks: bool) -> dict[str, Any]:
    """Every compared PyTorch detection has a runtime twin of its class with box IoU >= 0.99 and
    (instance segmentation) mask pixel agreement >= 0.99; the same number of detections."""
    from visiontl.data.detection.masks import rle_to_mask

    ious, agreements, compared = [], [], 0
    for i, (p, row) in enumerate(zip(ref, rows, strict=True)):
        d = p.details
        assert len(row["labels"]) == len(d["classes"]), (len(row["labels"]), len(d["classes"]))
        ref_masks = [rle_to_mask(r, *r["size"]).astype(bool) for r in d["masks"]] if masks else None
        pairs = match_detections(np.asarray(d["boxes"]), d["classes"], d["scores"], np.asarray(row["boxes"]), row["labels"],
                                 ref_masks, arrays.get(f"masks_0_{i}") if masks else None)
        assert all(j >= 0 for _, j, _, _ in pairs), pairs
        compared += len(pairs)
        ious += [iou for _, _, iou, _ in pairs]
        agreements += [agree for _, _, _, agree in pairs]
    assert compared > 0 and min(ious) >= 0.99, min(ious)
    if masks:
        assert min(agreements) >= 0.99, min(agreements)
    return {"detections_compared": compared, "min_box_iou": f"{min(ious):.5f}",
            **({"min_mask_agreement": f"{min(agreements):.5f}"} if masks else {})}


@pytest.fixture(scope="module")
def maskrcnn(tmp_path_factory, shared_data) -> dict[str, Any]:
    """Mask R-CNN over the ImageNet SqueezeNet (untrained heads, every detection kept) on
    PennFudan at 64-96 px, exported as one per-image graph to ONNX fp32."""
    sys.path.insert(0, str(ROOT / "tests"))
    from test_export_detection import SQUEEZE, checkpoint

    folder = tmp_path_factory.mktemp("deploy_maskrcnn")
    ckpt = checkpoint(shared_data, folder, "maskrcnn", "instance_segmentation", SQUEEZE)
    manifest, content, seconds = export_onnx(ckpt, folder / "exports", shared_data)
    return {"ckpt": ckpt, "manifest": manifest, "content": content, "export_s": seconds}


def test_torchvision_detector_runs_without_torch_and_matches_pytorch(maskrcnn, shared_data, tmp_path):
    images = pennfudan_val(shared_data)
    ref = pytorch_predictions(maskrcnn["ckpt"], images, score_threshold=0.0)
    labels = coco_subset(shared_data / "pennfudan" / "annotations.json", [p.name for p in images], tmp_path / "val.json")
    evaluate = {"images": str(shared_data / "pennfudan" / "images"), "labels": str(labels)}
    result, arrays, printed = run_torch_free(tmp_path, maskrcnn["manifest"], images, [{"score_threshold": 0.0}], evaluate, cli_threshold=0.0)
    assert result["predictor"] == "DetectionPredictor" and result["imported"] == []
    figures = check_detections(ref, result["runs"][0]["rows"], arrays, masks=True)
    verified = maskrcnn["content"]["verification"]["pytorch_fp32"]
    for metric in ("map50", "map", "mask_map50", "mask_map"):
        assert result["metrics"][metric] == pytest.approx(verified[metric], abs=0.01), metric
    assert "map50: " in printed and any((tmp_path / "overlays").iterdir())
    FIGURES["detection (Mask R-CNN over SqueezeNet, whole graph)"] = {
        "images": len(images), **figures, "map50": f"{result['metrics']['map50']:.4f} (PyTorch {verified['map50']:.4f})",
        "mask_map50": f"{result['metrics']['mask_map50']:.4f} (PyTorch {verified['mask_map50']:.4f})",
        "ms_per_image": round(result["runs"][0]["seconds_per_image"] * 1000, 1), "export_s": round(maskrcnn["export_s"], 1)}


def calibrate_batchnorm(model: Any, images: list[Path], imgsz: int) -> None:
    """An untrained YOLO's BatchNorm statistics measured on real images (so that its
    predictions spread over the image and their scores differ instead of tying)."""
    from visiontl.data.images import load_rgb
    from visiontl.deploy.imageops import to_unit
    from visiontl_ultralytics.model import letterbox_batch

    for module in model.net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the calibration batch
    model.net.train()
    with torch.no_grad():
        model.net(letterbox_batch([torch.from_numpy(to_unit(load_rgb(p))) for p in images], imgsz)[0])
    model.eval()


@pytest.fixture(scope="module", params=["yolov8n", "yolov8n-seg"])
def yolo(request, tmp_path_factory, shared_data) -> dict[str, Any]:
    """YOLOv8n / YOLOv8n-seg from their configs at 128 px on PennFudan (8 images, the last 3
    for validation), BatchNorm calibrated on the training images, exported by Ultralytics to
    ONNX fp32."""
    from visiontl.api import prepare
    from visiontl.config.loader import recipe_to_dict, validate_recipe
    from visiontl.train.checkpoint import save_checkpoint

    name = request.param
    task = "instance_segmentation" if name.endswith("-seg") else "detection"
    folder = tmp_path_factory.mktemp(f"deploy_{name}")
    recipe = validate_recipe({"task": task, "data": {"format": "coco", "root": "pennfudan", "train": "annotations.json",
                                                     "images": "images", "val": None, "val_last": 3, "limit": 8},
                              "model": {"id": f"ultralytics:{name}", "options": {"imgsz": 128}}}, "test")
    prepared = prepare(recipe, data_root=shared_data)
    calibrate_batchnorm(prepared.built.model, sorted((shared_data / "pennfudan" / "images").glob("*.png"))[:5], 128)
    ckpt = folder / f"{name}.pt"
    save_checkpoint(ckpt, {"model_id": f"ultralytics:{name}", "task": task, "class_names": prepared.info.class_names,
                           "preprocessing": asdict(prepared.built.preprocessing), "recipe": recipe_to_dict(recipe),
                           "weights": prepared.built.weights.as_dict(), "model": prepared.built.model.state_dict()})
    manifest, content, seconds = export_onnx(ckpt, folder / "exports", shared_data)
    return {"name": name, "task": task, "ckpt": ckpt, "manifest": manifest, "content": content, "export_s": seconds}


def test_yolo_runs_without_torch_and_matches_pytorch(yolo, shared_data, tmp_path):
    images = pennfudan_val(shared_data)
    ref = pytorch_predictions(yolo["ckpt"], images, score_threshold=0.0)
    labels = coco_subset(shared_data / "pennfudan" / "annotations.json", [p.name for p in images], tmp_path / "val.json")
    evaluate = {"images": str(shared_data / "pennfudan" / "images"), "labels": str(labels)}
    result, arrays, printed = run_torch_free(tmp_path, yolo["manifest"], images, [{"score_threshold": 0.0}], evaluate, cli_threshold=0.0)
    assert result["predictor"] == "DetectionPredictor" and result["imported"] == []
    masks = yolo["task"] == "instance_segmentation"
    figures = check_detections(ref, result["runs"][0]["rows"], arrays, masks=masks)
    extras = yolo["content"]["extras"]
    assert extras["decoder"] == "yolo" and extras["max_det"] == 300 and extras["segment"] is masks
    verified = yolo["content"]["verification"]["pytorch_fp32"]
    for metric in ("map50", "map", *(("mask_map50",) if masks else ())):
        assert result["metrics"][metric] == pytest.approx(verified[metric], abs=0.01), metric
    assert "map50: " in printed
    FIGURES[f"detection ({yolo['name']}, 128 px, numpy NMS{' + masks' if masks else ''})"] = {
        "images": len(images), **figures, "map50": f"{result['metrics']['map50']:.4f} (PyTorch {verified['map50']:.4f})",
        "ms_per_image": round(result["runs"][0]["seconds_per_image"] * 1000, 1), "export_s": round(yolo["export_s"], 1)}


CLI_SCRIPT = r"""
import sys

BLOCKED = %(blocked)r


class Block:
    # As if the packages were not installed at all (what a deploy-only install looks like).
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named '{name}'", name=name.split(".")[0])
        return None


sys.meta_path.insert(0, Block())
from visiontl.cli import main

try:
    main()
finally:
    assert "torch" not in sys.modules
"""


def test_predict_and_eval_commands_take_an_export_without_torch(classifier, shapes_root, tmp_path):
    """`visiontl predict|eval EXPORT ...` through the real command group, torch unimportable;
    and a command that needs torch says how to install it instead of a traceback."""
    val = shapes_root / "val"
    exports = classifier["run"] / "exports"

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", CLI_SCRIPT % {"blocked": BLOCKED}, *args], capture_output=True, text=True,
                              timeout=120, cwd=tmp_path)

    predicted = cli("predict", str(exports), str(next(val.rglob("*.png"))))
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    evaluated = cli("eval", str(exports), "--images", str(val))
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert "accuracy" in evaluated.stdout
    needs_torch = cli("eval", str(classifier["run"]))
    assert needs_torch.returncode == 1 and "Traceback" not in needs_torch.stderr
    assert "pip install 'visiontl[torch]'" in needs_torch.stderr
