"""Object detection and instance segmentation: one task adapter, two tasks.

THE DETECTION CONTRACT, shared by this task, the torchvision detection models and the
Ultralytics models (and any third party's detector):

* **Tasks.** ``detection`` (boxes) and ``instance_segmentation`` (boxes and masks): two
  :class:`DetectionTask` adapters, one class with a ``masks`` flag, contributed by
  :func:`tasks` (registered in ``visiontl.core_plugin.BUILTIN_TASKS``).
* **Classes** are 0-based and contiguous (``0..C-1``) everywhere in visiontl. A family that
  reserves 0 for background (torchvision) shifts inside its model wrapper. COCO category
  ids are mapped to this order and back by ``visiontl.data.detection.coco.CategoryMap``.
* **Dataset items** are ``(image, target)``: ``image`` float ``[3, H, W]`` in 0..1 at the
  (possibly resized and augmented) image size, *not* normalised (detection models normalise
  inside); ``target`` a dict with ``boxes`` float ``[N, 4]`` xyxy in absolute pixels,
  ``labels`` int64 ``[N]`` 0-based, ``masks`` uint8 ``[N, H, W]`` (instance segmentation
  only), ``iscrowd`` int64 ``[N]`` and ``image_id`` int; or an ``Unreadable`` marker. (Items
  also carry ``path``, which :meth:`DetectionTask.collate` moves into ``Batch.paths``.) In a
  :class:`~visiontl.tasks.base.Batch`, ``inputs`` is the list of image tensors and
  ``targets`` the list of target dicts. Training items carry no crowd regions (COCO
  ``iscrowd`` is ignored in training); validation items keep them for the evaluator.
* **A visiontl detection model** (``BuiltModel.model``, an ``nn.Module``) answers two calls:

  - train mode: ``model(images: list[Tensor], targets: list[dict]) -> dict[str, Tensor]`` of
    loss terms; :meth:`DetectionTask.forward_train` sums them (weighted by ``loss.terms``);
  - eval mode: ``model(images: list[Tensor]) -> list[dict]`` with ``boxes`` float ``[K, 4]``
    xyxy in the input image's pixels, ``scores`` ``[K]``, ``labels`` int64 ``[K]`` 0-based,
    and for instance segmentation ``masks`` float ``[K, H, W]`` in 0..1 (or bool) at the
    input image's size;
  - it also accepts a 4-D float tensor batch in eval mode (the generic benchmark harness
    passes ``torch.rand(B, 3, H, W)``).
* **Evaluation.** :class:`visiontl.metrics.detection.DetectionEvaluator`
  ``(class_names, masks=False)`` with ``update(outputs, targets)`` (the formats above;
  targets may carry ``iscrowd``) and ``compute()`` holding at least ``map`` (COCO box
  mAP@[.5:.95]), ``map50``, ``map75``, ``map_per_class`` ({class name: AP@[.5:.95]}), and with
  masks ``mask_map``, ``mask_map50``; plus ``num_images``. pycocotools' COCOeval on exactly
  these inputs: every family is scored by the same code. The primary metric of both tasks
  is ``map``; recipes may set ``eval.metric: map50``.
* **Data.** ``visiontl.data.detection`` parses COCO JSON and YOLO (txt + data yaml) into one
  record type, :class:`~visiontl.data.detection.records.DetectionRecord` (``path``, ``width``,
  ``height``, ``boxes`` float32 ``[N, 4]`` xyxy absolute, ``labels`` int64 ``[N]`` 0-based,
  ``iscrowd`` ``[N]``, ``polygons``: per object a list of ``[K, 2]`` absolute polygons, or
  ``None``; ``rles`` where COCO gives RLE). :meth:`DetectionTask.inspect` returns a
  :class:`~visiontl.tasks.base.DataInfo` with ``extras["train_records"]``,
  ``extras["val_records"]`` and the class names; bad labels are in ``DataInfo.skipped``
  (``file:line`` -> reason). ``visiontl.data.detection.export.write_yolo_dataset(class_names,
  train_records, val_records, out_dir, masks) -> Path`` writes a writable YOLO copy (images
  symlinked, labels written, a ``data.yaml`` with an absolute ``path:``) and returns the
  yaml's path: Ultralytics trains from that copy whatever the user's format was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from visiontl.contracts import DETECTOR
from visiontl.data.classification import Unreadable
from visiontl.errors import ConfigError
from visiontl.tasks.base import Batch, DataInfo, Evaluator, PredictionResult, TaskAdapter
from visiontl.tasks.selection import FigureRule, SelectionMetric

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from visiontl.config.schema import Recipe
    from visiontl.contracts import Preprocessing

#: Colours of the boxes and masks predict draws (class index modulo the palette).
PALETTE = (
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128),
)


class DetectionTask(TaskAdapter):
    """Object detection (``masks=False``) or instance segmentation (``masks=True``).

    Args:
        masks: the task predicts instance masks as well as boxes.
    """

    formats = ("coco", "yolo")
    primary_metric = "map"
    higher_is_better = True
    output = DETECTOR
    report_heading = "Per class (final epoch)"
    #: What ``eval.metric`` may name; the ``mask_*`` metrics are reported with ``masks=True``.
    metric_names = ("map", "map50", "map75", "map_small", "map_medium", "map_large", "mar100", "mask_map", "mask_map50", "mask_map75")
    #: The evaluator reports no loss: every metric above is higher-is-better.
    lower_is_better_metrics = ()

    def __init__(self, masks: bool = False) -> None:
        self.masks = masks
        self.name = "instance_segmentation" if masks else "detection"

    def selection_metric(self) -> SelectionMetric:
        """COCO mask mAP (instance segmentation; box mAP where a card has no mask figure) or
        COCO box mAP, as the detection catalogues publish them."""
        box = FigureRule("box_map", "coco", "COCO box mAP")
        if self.masks:
            return SelectionMetric("COCO mask mAP", (FigureRule("mask_map", "coco", "COCO mask mAP"), box))
        return SelectionMetric("COCO box mAP", (box,))

    # ------------------------------------------------------------------ data
    def inspect(self, recipe: Recipe, data_root: Path) -> DataInfo:
        """Read the labels (COCO JSON or YOLO), split them, and report every label problem."""
        from visiontl.data.detection.records import class_counts
        from visiontl.data.detection.scan import scan_detection

        scan = scan_detection(recipe.data, data_root, masks=self.masks)
        extras = dict(scan.extras)
        splits = {"train": scan.train, "val": scan.val, **({"test": scan.test} if scan.test is not None else {})}
        images = {split: len(records) for split, records in splits.items()}
        negatives = {split: sum(1 for r in records if not len(r)) for split, records in splits.items()}
        extras.update(train_records=scan.train, val_records=scan.val, images=images, negatives=negatives)
        if scan.test is not None:
            extras["test_records"] = scan.test
        # What summary.json records about the data beyond counts and skipped files.
        extras["summary"] = {
            "format": scan.extras.get("format"),
            "images": images,
            "images_without_objects": negatives,
            "label_problems": len(scan.problems),
            **({"category_map": scan.extras["category_map"]} if "category_map" in scan.extras else {}),
        }
        return DataInfo(
            class_names=list(scan.class_names),
            # Objects per class (crowd regions excluded): the figure augmentation and
            # reports reason about for detection.
            counts={split: class_counts(records, scan.class_names) for split, records in splits.items()},
            skipped=dict(scan.problems.entries),
            extras=extras,
            provenance=scan.provenance,
        )

    def inspect_test(self, recipe: Recipe, data_root: Path, class_names: Sequence[str]) -> DataInfo:
        """Only ``data.test`` (a COCO JSON, a data yaml entry, or a YOLO image folder)."""
        from visiontl.data.detection.records import class_counts
        from visiontl.data.detection.scan import scan_detection_test

        scan = scan_detection_test(recipe.data, data_root, class_names, masks=self.masks)
        records = scan.test or []
        images = {"test": len(records)}
        negatives = {"test": sum(1 for r in records if not len(r))}
        return DataInfo(
            class_names=list(class_names),
            counts={"test": class_counts(records, list(class_names))},
            skipped=dict(scan.problems.entries),
            extras={"test_records": records, "images": images, "negatives": negatives},
            provenance=scan.provenance,
        )

    def explicit_split(self, recipe: Recipe, images: Path, labels: Path | None) -> dict[str, Any]:
        """``--images DIR --labels COCO_JSON`` (file_name entries relative to DIR), or
        ``--images DIR`` alone: YOLO labels where YOLO keeps them (``images/`` -> ``labels/``)."""
        if labels is None:
            return {"format": "yolo", "test": str(images), "yaml": None}
        if labels.suffix.lower() != ".json" or not labels.is_file():
            raise ConfigError(
                f"--labels '{labels}' is not a COCO JSON file: detection scores a COCO instances file "
                "(or YOLO labels beside the images, without --labels).",
                fix="visiontl eval RUN --images DIR --labels annotations.json",
            )
        return {"format": "coco", "test": str(labels), "test_images": str(images), "yaml": None}

    def resolved_preset(self, recipe: Recipe, info: DataInfo) -> str:
        """The augmentation preset, with ``auto`` resolved from the rarest class."""
        from visiontl.data.detection.transforms import resolve_preset

        counts = [c for c in info.counts.get("train", {}).values() if c > 0]
        return resolve_preset(recipe.augmentation.preset, min(counts) if counts else 0)

    def datasets(self, recipe: Recipe, info: DataInfo, preprocessing: Preprocessing, data_root: Path) -> tuple[Any, Any]:
        """Train and validation datasets; ``data.image_size`` caps the longer image side."""
        from visiontl.data.detection.dataset import DetectionDataset
        from visiontl.data.detection.transforms import detection_transform

        if recipe.augmentation.mixup or recipe.augmentation.cutmix:
            raise ConfigError(
                f"augmentation.mixup/cutmix are classification augmentations; task '{self.name}' does not use them.",
                fix="set augmentation.mixup: 0 and augmentation.cutmix: 0",
            )
        size, mode = recipe.data.image_size, recipe.data.resize
        train = DetectionDataset(
            info.extras["train_records"],
            detection_transform(self.resolved_preset(recipe, info), size, train=True, mode=mode),
            masks=self.masks,
            keep_crowd=False,
        )
        return train, self.eval_dataset(recipe, info, preprocessing, data_root)

    def eval_dataset(self, recipe: Recipe, info: DataInfo, preprocessing: Preprocessing, data_root: Path, split: str = "val") -> Any:
        """The validation or test records, resized as in training, crowd regions kept."""
        from visiontl.data.detection.dataset import DetectionDataset
        from visiontl.data.detection.transforms import detection_transform

        records = info.extras.get(f"{split}_records")
        if split not in ("val", "test") or records is None:
            raise ConfigError(f"There is no '{split}' split to score here.", fix="set data.test for a test split")
        transform = detection_transform("none", recipe.data.image_size, train=False, mode=recipe.data.resize)
        return DetectionDataset(records, transform, masks=self.masks, keep_crowd=True)

    def deterministic_train_transform(self, recipe: Recipe) -> bool:
        return recipe.augmentation.preset == "none"

    def collate(self, items: Sequence[Any]) -> Batch:
        """Lists of images and target dicts (no stacking: images differ in size)."""
        good = [it for it in items if not isinstance(it, Unreadable)]
        skipped = {it.path: it.reason for it in items if isinstance(it, Unreadable)}
        images, targets, indices, paths = [], [], [], []
        for image, target in good:
            target = dict(target)
            paths.append(str(target.pop("path", "")))
            indices.append(int(target["image_id"]))
            images.append(image)
            targets.append(target)
        return Batch(images, targets, indices, paths, skipped)

    def move_batch(self, batch: Batch, device: torch.device, channels_last: bool = False) -> Batch:
        """Move every image and every tensor of every target to ``device``."""
        import torch

        images = [im.to(device, non_blocking=True) for im in batch.inputs]
        targets = [{k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in t.items()} for t in batch.targets]
        return Batch(images, targets, batch.indices, batch.paths, batch.skipped)

    # ------------------------------------------------------------------ model io
    def loss_function(self, recipe: Recipe, info: DataInfo) -> Callable[[Any, Any], torch.Tensor]:
        """The weighted sum of the model's own loss terms.

        Detection models compute their losses themselves (matching anchors or queries to
        objects is part of the model); ``loss.terms`` may weight them by name, e.g.
        ``{loss_classifier: 1.0, loss_box_reg: 2.0}`` (terms not named keep weight 1).

        Raises:
            ConfigError: ``loss.name`` is not ``auto`` or a recipe setting that only
                classification uses is set.
        """
        loss = recipe.loss
        if loss.name not in ("auto", "model"):
            raise ConfigError(
                f"loss.name '{loss.name}' is not a {self.name} loss: detection models compute their own loss terms.",
                fix="use loss.name: auto, and loss.terms to weight the model's terms (e.g. {loss_box_reg: 2.0})",
            )
        if loss.label_smoothing or loss.class_weights is not None:
            raise ConfigError(
                f"loss.label_smoothing and loss.class_weights are classification settings; task '{self.name}' does not use them.",
                fix="remove them, or weight the model's loss terms with loss.terms",
            )
        weights = dict(loss.terms or {})

        def total(outputs: Any, targets: Any) -> torch.Tensor:
            if not isinstance(outputs, dict) or not outputs:
                raise TypeError(f"a {self.name} model in train mode must return a dict of loss terms, got {type(outputs).__name__}")
            unknown = sorted(set(weights) - set(outputs))
            if unknown:
                raise ConfigError(
                    f"loss.terms names '{unknown[0]}', which this model does not compute.",
                    fix=f"this model's loss terms: {', '.join(sorted(outputs))}",
                )
            return sum(v.float() * float(weights.get(k, 1.0)) for k, v in outputs.items())  # type: ignore[return-value]

        return total

    def forward_train(self, model: nn.Module, batch: Batch, loss: Callable[[Any, Any], torch.Tensor]) -> tuple[torch.Tensor, Any]:
        """``loss(model(images, targets))``: the model returns its loss terms in train mode."""
        terms = model(batch.inputs, batch.targets)
        return loss(terms, batch.targets), terms

    def forward_eval(self, model: nn.Module, batch: Batch) -> Any:
        """``model(images)``: a list of prediction dicts."""
        return model(batch.inputs)

    def evaluator(self, recipe: Recipe, info: DataInfo) -> Evaluator:
        from visiontl.metrics.detection import DetectionEvaluator

        return DetectionEvaluator(info.class_names, masks=self.masks)

    # ------------------------------------------------------------------ contract kit
    def example_batch(self, num_classes: int, input_size: tuple[int, int], batch_size: int = 2) -> Batch:
        """Random images with one or two boxes each (and their masks), seeded."""
        import torch

        g = torch.Generator().manual_seed(0)
        h, w = input_size
        images, targets = [], []
        for i in range(batch_size):
            n = 1 + i % 2
            x1 = torch.rand(n, generator=g) * w * 0.5
            y1 = torch.rand(n, generator=g) * h * 0.5
            bw = (0.25 + torch.rand(n, generator=g) * 0.25) * w
            bh = (0.25 + torch.rand(n, generator=g) * 0.25) * h
            boxes = torch.stack([x1, y1, (x1 + bw).clamp(max=w), (y1 + bh).clamp(max=h)], dim=1)
            target: dict[str, Any] = {
                "boxes": boxes,
                "labels": torch.arange(i, i + n) % num_classes,
                "iscrowd": torch.zeros(n, dtype=torch.int64),
                "image_id": i,
            }
            if self.masks:
                masks = torch.zeros(n, h, w, dtype=torch.uint8)
                for j, (a, b, c, d) in enumerate(boxes.round().long().tolist()):
                    masks[j, b:d, a:c] = 1
                target["masks"] = masks
            images.append(torch.rand(3, h, w, generator=g))
            targets.append(target)
        return Batch(images, targets, list(range(batch_size)), [f"example{i}" for i in range(batch_size)])

    def check_outputs(self, outputs: Any, num_classes: int, batch: Batch) -> None:
        """Eval outputs: one dict per image, with the contract's keys, shapes and ranges."""
        import torch

        assert isinstance(outputs, (list, tuple)), f"{self.name} outputs must be a list of dicts, got {type(outputs).__name__}"
        assert len(outputs) == len(batch), f"{len(outputs)} outputs for {len(batch)} images"
        for out, image in zip(outputs, batch.inputs, strict=True):
            keys = {"boxes", "scores", "labels"} | ({"masks"} if self.masks else set())
            assert keys <= set(out), f"outputs lack {sorted(keys - set(out))}"
            k = len(out["scores"])
            assert out["boxes"].shape == (k, 4) and out["boxes"].dtype.is_floating_point, f"boxes must be float [K, 4], got {tuple(out['boxes'].shape)}"
            assert out["labels"].shape == (k,) and out["labels"].dtype == torch.int64, "labels must be int64 [K]"
            if k:
                assert int(out["labels"].min()) >= 0 and int(out["labels"].max()) < num_classes, f"labels must be 0-based class indices below {num_classes}, got {out['labels'].tolist()}"
            if self.masks:
                h, w = image.shape[-2:]
                assert tuple(out["masks"].shape) == (k, h, w), f"masks must be [K, H, W] = {(k, h, w)}, got {tuple(out['masks'].shape)}"

    # ------------------------------------------------------------------ inference
    def predict(
        self,
        model: Any,
        image: Any,
        preprocessing: Preprocessing,
        class_names: Sequence[str],
        *,
        topk: int = 5,
        score_threshold: float = 0.5,
        recipe: Recipe | None = None,
    ) -> PredictionResult:
        """Objects in one RGB PIL image, best first, above ``score_threshold``.

        The image goes in at its own size (detectors scale inside), or, when the recipe sets
        ``data.resize: stretch`` or ``letterbox`` with ``data.image_size``, brought to that size
        as in training, its boxes and masks mapped back to the image. ``topk`` does not apply
        (every object above the threshold is listed).

        ``details`` holds ``boxes`` (xyxy pixels of the image), ``scores``, ``classes`` and, for
        instance segmentation, ``masks`` as compressed COCO RLEs (JSON-friendly) with their
        ``areas``.
        """
        import torch
        import torch.nn.functional as TF
        from torchvision.transforms.v2 import functional as F

        from visiontl.data.detection.masks import mask_to_rle
        from visiontl.data.detection.transforms import resize_mode, size_step
        from visiontl.data.resize import content_size

        x = F.to_dtype(F.pil_to_tensor(image), torch.float32, scale=True)
        height, width = x.shape[-2:]
        mode = resize_mode(recipe.data.resize) if recipe is not None else "fit"
        sized = recipe is not None and recipe.data.image_size is not None and mode in ("stretch", "letterbox")
        if sized:
            assert recipe is not None and recipe.data.image_size is not None
            x = size_step(recipe.data.image_size, mode)(x)
        with torch.no_grad():
            out = model([x])[0]
        scores = out["scores"].detach().float().cpu()
        order = [i for i in torch.argsort(scores, descending=True).tolist() if float(scores[i]) >= score_threshold]
        boxes = out["boxes"].detach().float().cpu()
        labels = out["labels"].detach().cpu()
        if sized:
            # Back to the image's pixels: the content sits at the top left of the input.
            ch, cw = content_size(int(height), int(width), (int(x.shape[-2]), int(x.shape[-1])), mode)
            # Clipped: a box reaching into a letterbox's padding ends at the image's border.
            boxes = (boxes * torch.tensor([width / cw, height / ch] * 2)).clamp(min=0)
            boxes = torch.minimum(boxes, torch.tensor([width, height] * 2, dtype=boxes.dtype))
            if self.masks and "masks" in out and len(out["masks"]):
                m = out["masks"].detach().float().cpu()
                m = m if m.ndim == 4 else m.unsqueeze(1)
                out = {**out, "masks": TF.interpolate(m[..., :ch, :cw], size=(int(height), int(width)), mode="bilinear", align_corners=False)}
        details: dict[str, Any] = {
            "boxes": [[round(float(v), 2) for v in boxes[i]] for i in order],
            "scores": [round(float(scores[i]), 4) for i in order],
            "classes": [class_names[int(labels[i])] for i in order],
        }
        if self.masks and "masks" in out:
            masks = out["masks"].detach().float().cpu()
            masks = masks[:, 0] if masks.ndim == 4 else masks
            binary = [(masks[i] > 0.5).numpy() for i in order]
            details["masks"] = [mask_to_rle(m) for m in binary]
            details["areas"] = [int(m.sum()) for m in binary]
        labels_out = [(class_names[int(labels[i])], float(scores[i])) for i in order]
        return PredictionResult(labels_out, details, score="score")

    def draw(self, image: Any, result: PredictionResult, class_names: Sequence[str]) -> Any | None:
        """Boxes (with class and score) and masks drawn onto a copy of ``image``."""
        import numpy as np
        import torch
        from PIL import Image
        from torchvision.transforms.v2 import functional as F
        from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

        from visiontl.data.detection.masks import rle_to_mask

        canvas = F.pil_to_tensor(image.convert("RGB"))
        classes = result.details.get("classes", [])
        colours = [PALETTE[list(class_names).index(c) % len(PALETTE)] if c in class_names else PALETTE[0] for c in classes]
        rles = result.details.get("masks") or []
        if rles:
            h, w = canvas.shape[-2:]
            masks = torch.from_numpy(np.stack([rle_to_mask(r, h, w) for r in rles]).astype(bool))
            canvas = draw_segmentation_masks(canvas, masks, alpha=0.45, colors=colours)
        boxes = result.details.get("boxes", [])
        if boxes:
            captions = [f"{c} {s:.2f}" for c, s in zip(classes, result.details.get("scores", []), strict=True)]
            width = max(2, round(min(canvas.shape[-2:]) / 200))
            canvas = draw_bounding_boxes(canvas, torch.tensor(boxes, dtype=torch.float32), labels=captions, colors=colours, width=width)
        return Image.fromarray(canvas.permute(1, 2, 0).numpy())

    # ------------------------------------------------------------------ reports
    def report_lines(self, metrics: dict[str, Any], info: DataInfo) -> list[str]:
        """Per-class AP (and mask AP) with the class's validation objects."""
        per_class = metrics.get("map_per_class") or {}
        masks = metrics.get("mask_map_per_class") or {}
        val_counts = info.counts.get("val", {})
        header = "| class | box AP | " + ("mask AP | " if masks else "") + "val objects |"
        lines = [header, "|---|---:|" + ("---:|" if masks else "") + "---:|"]

        def fmt(v: Any) -> str:
            return "-" if v is None else f"{v:.3f}"

        for name in info.class_names:
            row = f"| {name} | {fmt(per_class.get(name))} | " + (f"{fmt(masks.get(name))} | " if masks else "") + f"{val_counts.get(name, 0)} |"
            lines.append(row)
        images = info.extras.get("images", {})
        negatives = info.extras.get("negatives", {})
        if images:
            lines += ["", "Images: " + ", ".join(f"{s} {n} ({negatives.get(s, 0)} without objects)" for s, n in images.items())]
        return lines

    def plots(self, metrics: dict[str, Any], info: DataInfo, out_dir: Path) -> list[Path]:
        """A bar chart of per-class box AP (when there is more than one class)."""
        per_class = {k: v for k, v in (metrics.get("map_per_class") or {}).items() if v is not None}
        if len(per_class) < 2:
            return []
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = sorted(per_class, key=per_class.__getitem__)[-30:]
        fig, ax = plt.subplots(figsize=(6, max(2.0, 0.25 * len(names) + 1)))
        ax.barh(names, [per_class[n] for n in names], color="#3b75af")
        ax.set_xlim(0, 1)
        ax.set_xlabel("box AP@[.5:.95] (final epoch)")
        fig.tight_layout()
        path = out_dir / "ap_per_class.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return [path]


def tasks() -> list[TaskAdapter]:
    """The adapters this module contributes (see ``visiontl.core_plugin.BUILTIN_TASKS``)."""
    return [DetectionTask(masks=False), DetectionTask(masks=True)]
