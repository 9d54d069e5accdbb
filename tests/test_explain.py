"""visiontl explain: target layers from layer groups, feature layouts, the energy-in-mask
score, the known-answer acceptance test (a classifier trained to find a bright square looks
at the square), and overlays for a classifier, a segmenter and a detector."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torch import nn

from visiontl import api
from visiontl.cli import cli
from visiontl.config.loader import validate_recipe
from visiontl.contracts import LayerGroup
from visiontl.errors import ConfigError, DataError
from visiontl.explain.layers import default_group, group_output_module, resolve_target_layer
from visiontl.explain.reshape import detect_layout, reshape_transform
from visiontl.explain.score import cam_energy_in_mask, energy_in_mask, match_masks, object_mask

SIZE = 96  # synthetic image side


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --------------------------------------------------------------------------- data


def square_image(rng: np.random.Generator, with_square: bool, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """A dark, slightly noisy picture; with a bright square (side 20-27 px, 10 px from the
    border) for the 'square' class. Returns the RGB array and its 0/1 mask."""
    arr = np.clip(60 + rng.normal(0, 6, (size, size, 3)), 0, 255)
    mask = np.zeros((size, size), np.uint8)
    if with_square:
        side = int(rng.integers(20, 28))
        x, y = (int(v) for v in rng.integers(10, size - 10 - side, 2))
        arr[y:y + side, x:x + side] = 230
        mask[y:y + side, x:x + side] = 1
    return arr.astype(np.uint8), mask


@pytest.fixture(scope="module")
def squares(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ImageFolder train/val of 'empty' and 'square' (60 + 20 each), plus masks/ for val squares."""
    root = tmp_path_factory.mktemp("squares")
    rng = np.random.default_rng(0)
    for split, n in (("train", 60), ("val", 20)):
        for cls in ("empty", "square"):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                arr, mask = square_image(rng, cls == "square")
                Image.fromarray(arr).save(folder / f"{cls}_{i:03d}.png")
                if split == "val" and cls == "square":
                    (root / "masks").mkdir(exist_ok=True)
                    Image.fromarray(mask).save(root / "masks" / f"{cls}_{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def square_run(squares: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SqueezeNet 1.1 from scratch, trained for 2 epochs to tell squares from empty pictures."""
    recipe = {
        "task": "classification",
        "data": {"format": "imagefolder", "root": str(squares), "image_size": SIZE},
        "model": {"id": "torchvision:squeezenet1_1"},
        "strategy": {"name": "full"},
        "optimizer": {"name": "adamw", "lr": 0.001},
        "augmentation": {"preset": "none"},
        "train": {"epochs": 2, "batch_size": 16, "progress": False, "seed": 0, "threads": 1},
        "output": {"dir": str(tmp_path_factory.mktemp("runs")), "name": "squares", "plots": False},
    }
    outcome = api.run(validate_recipe(recipe, "t"))
    assert outcome.summary["best"]["accuracy"] >= 0.95, "the classifier did not learn to find the square"
    return outcome.run_dir


# --------------------------------------------------------------------------- target layers


def _net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),  # 0: stem
        nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.ReLU()),  # 1: stage1
        nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1)),  # 2: stage2 ...
        nn.Conv2d(8, 8, 1),  # 3: ... also stage2
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 2),  # 6: head
    )


def _groups(net: nn.Module) -> list[LayerGroup]:
    def params(*prefixes: str) -> tuple[str, ...]:
        return tuple(n for n, _ in net.named_parameters() if n.split(".")[0] in prefixes)

    return [LayerGroup("stem", "stem", params("0")), LayerGroup("stage1", "stage", params("1")), LayerGroup("stage2", "stage", params("2", "3")), LayerGroup("head", "head", params("6"))]


def test_target_layer_is_the_last_stage_groups_output_module() -> None:
    net = _net()
    groups = _groups(net)
    assert default_group(groups).name == "stage2"
    # stage2 spans modules 2 and 3: its output leaves through module 3, the last maximal one.
    assert group_output_module(net, groups[2])[0] == "3"
    target = resolve_target_layer(net, groups)
    assert target.path == "3" and target.group == "stage2" and target.describe() == "stage2 (3)"
    assert resolve_target_layer(net, groups, "stage1").path == "1"
    assert resolve_target_layer(net, groups, "2.2").describe() == "module 2.2"


def test_target_layer_errors_name_groups_and_suggest() -> None:
    net = _net()
    with pytest.raises(ConfigError, match=r"Did you mean 'stage1'.*Groups: stem, stage1, stage2, head"):
        resolve_target_layer(net, _groups(net), "stage_1")
    with pytest.raises(ConfigError, match="all heads"):
        default_group([LayerGroup("head", "head", ("6.weight",))])


@pytest.mark.parametrize(
    ("model_id", "task", "options", "expected"),
    [
        ("timm:resnet10t", "classification", {}, "stage4 (layer4)"),
        ("torchvision:squeezenet1_1", "classification", {}, "stage3 (features.12)"),
        ("torchvision:mobilenet_v3_small", "classification", {}, "final_conv (features.12)"),
        ("torchvision:deeplabv3", "segmentation", {"backbone": "torchvision:squeezenet1_1", "channels": 16}, "stage3 (backbone.features.12)"),
        ("smp:unet-resnet18", "segmentation", {}, "stage4 (encoder.layer4)"),
        ("torchvision:fasterrcnn", "detection", {"backbone": "torchvision:squeezenet1_1", "min_size": 64, "max_size": 96}, "stage3 (detector.backbone.model.features.12)"),
    ],
)
def test_every_family_gets_its_target_from_its_groups(model_id: str, task: str, options: dict, expected: str) -> None:
    from visiontl.contracts import BuildRequest
    from visiontl.ids import parse_model_id
    from visiontl.plugin_manager import get_plugins

    plugins = get_plugins()
    built = plugins.hook.visiontl_build(request=BuildRequest(parse_model_id(model_id), task, 3, options=options))
    target = resolve_target_layer(built.model, api.layer_groups(plugins, built))
    assert target.describe() == expected


# --------------------------------------------------------------------------- layouts


def test_feature_layouts_are_read_from_shapes() -> None:
    assert detect_layout(torch.zeros(1, 512, 7, 7), (224, 224)).kind == "nchw"
    assert detect_layout(torch.zeros(1, 7, 7, 768), (224, 224)).kind == "nhwc"
    assert detect_layout(torch.zeros(1, 6, 8, 96), (96, 128)).kind == "nhwc"
    assert detect_layout(torch.zeros(1, 8, 8, 8), (64, 64)).kind == "nchw"  # ambiguous: channels first
    vit = detect_layout(torch.zeros(1, 197, 192), (224, 224))
    assert (vit.kind, vit.grid, vit.prefix) == ("tokens", (14, 14), 1)
    wide = detect_layout(torch.zeros(2, 1 + 4 + 6 * 8, 32), (96, 128))  # class + 4 register tokens
    assert (wide.grid, wide.prefix) == ((6, 8), 5)
    tokens = torch.arange(2 * 53 * 32, dtype=torch.float32).reshape(2, 53, 32)
    grid = reshape_transform(wide)(tokens)
    assert grid.shape == (2, 32, 6, 8) and torch.equal(grid[1, :, 0, 1], tokens[1, 6])
    with pytest.raises(ConfigError, match="not a feature-map tensor"):
        detect_layout((torch.zeros(1, 8, 7, 7),), (224, 224))
    with pytest.raises(ConfigError, match="no spatial layout"):
        detect_layout(torch.zeros(1, 256, 20, 20), (120, 160))


def test_eigencam_maps_are_gradcams_projection_with_the_sign_fixed() -> None:
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

    from visiontl.explain.cam import principal_component_maps

    activations = np.random.default_rng(0).random((3, 32, 5, 6)).astype(np.float32)
    ours, theirs = principal_component_maps(activations), get_2d_projection(activations)
    for mine, reference in zip(ours, theirs, strict=True):
        sign = np.sign((mine * reference).sum())
        assert np.abs(mine - sign * reference).max() < 1e-4
        assert abs(mine.min()) <= abs(mine.max())  # the larger lobe is the positive one


def test_detection_view_frames_a_centred_square_on_demand() -> None:
    from visiontl.contracts import Preprocessing
    from visiontl.explain.views import DetectionView

    view = DetectionView(Preprocessing(), ["a"])
    picture = Image.fromarray(np.full((20, 40, 3), 200, np.uint8))
    assert view.prepare(picture).input.shape == (1, 3, 20, 40)
    assert view.alternative() and not view.alternative()  # one alternative, then none
    prepared = view.prepare(picture)
    assert prepared.input.shape == (1, 3, 40, 40)
    assert prepared.display[0, 0, 0] == pytest.approx(114 / 255) and prepared.display[20, 20, 0] == pytest.approx(200 / 255)
    mask = np.asarray(prepared.frame(Image.fromarray(np.ones((20, 40), np.uint8)), nearest=True))
    assert mask.shape == (40, 40) and mask[:10].sum() == 0 and mask[10:30].all() and mask[30:].sum() == 0


# --------------------------------------------------------------------------- score


def test_energy_in_mask_and_masks() -> None:
    cam = np.array([[0.0, 1.0], [0.0, 3.0]])
    assert energy_in_mask(cam, np.array([[False, False], [True, True]])) == 0.75
    assert energy_in_mask(np.ones((4, 4)), np.eye(4, dtype=bool)) == 0.25  # a flat map scores the area
    with pytest.raises(ValueError, match="zero everywhere"):
        energy_in_mask(np.zeros((2, 2)), np.ones((2, 2), bool))
    with pytest.raises(ValueError, match="differ in shape"):
        energy_in_mask(np.ones((2, 2)), np.ones((3, 2), bool))
    labels = np.array([[0, 1, 2, 255]])
    assert object_mask(labels).tolist() == [[False, True, True, False]]
    assert object_mask(labels, [2]).tolist() == [[False, False, True, False]]


def test_masks_are_matched_by_file_stem(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "m" / "a.png")
    images = [tmp_path / "x" / "a.jpg", tmp_path / "x" / "b.jpg"]
    assert match_masks(images, tmp_path / "m") == [tmp_path / "m" / "a.png", None]
    with pytest.raises(DataError, match="not found"):
        match_masks(images, tmp_path / "nothing")
    with pytest.raises(DataError, match="1 masks for 2 images"):
        match_masks(images, [tmp_path / "m" / "a.png"])


# --------------------------------------------------------------------------- acceptance


@pytest.mark.slow
def test_cam_of_a_square_finder_peaks_on_the_square(square_run: Path, squares: Path) -> None:
    """The known answer: the only evidence for 'square' is the square. The trained model's
    Grad-CAM peaks inside it on every validation image and holds about twice its area's
    share of the energy; the same architecture untrained does neither."""
    from visiontl.explain.cam import Explainer
    from visiontl.plugin_manager import get_plugins

    images = sorted((squares / "val" / "square").iterdir())
    start = time.perf_counter()
    trained = cam_energy_in_mask(square_run, images, squares / "masks", target_class="square")
    seconds = time.perf_counter() - start
    assert trained.layer == "stage3 (features.12)" and trained.method == "gradcam"
    assert len(trained.per_image) == 20 and not trained.skipped
    assert trained.pointing_game >= 0.9, trained.as_dict()
    assert trained.mean_energy >= 1.5 * trained.mean_area, (trained.mean_energy, trained.mean_area)
    assert seconds < 30  # 20 images: two forwards and a backward each

    loaded = api.load_trained(square_run)
    plugins = get_plugins()
    torch.manual_seed(1)
    fresh = api.build_model(plugins, loaded.recipe, loaded.class_names, squares, fresh=True)
    control = Explainer.from_built(fresh, loaded.class_names, preprocessing=loaded.preprocessing, plugins=plugins)
    assert control.target.describe() == trained.layer and control.task == "classification"
    untrained = cam_energy_in_mask(control, images, squares / "masks", target_class="square")
    assert untrained.pointing_game <= 0.5 and untrained.mean_energy < trained.mean_energy, untrained.as_dict()


def test_cli_writes_classifier_overlays_with_scores(square_run: Path, squares: Path, tmp_path: Path) -> None:
    images = sorted((squares / "val" / "square").iterdir())[:3] + [squares / "val" / "empty" / "empty_000.png"]
    args = ["explain", str(square_run), *map(str, images), "--masks", str(squares / "masks"), "--out", str(tmp_path / "x")]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "gradcam on stage3 (features.12)" in result.output
    assert "CAM energy in mask:" in result.output and "over 3 image(s)" in result.output
    assert "not scored: " in result.output and "empty_000.png: no mask with this file name" in result.output
    report = json.loads((tmp_path / "x" / "explain.json").read_text())
    assert [Path(i["overlay"]).name for i in report["images"]] == [p.name for p in images]
    for item in report["images"]:
        png = Image.open(item["overlay"])
        assert png.width >= 2 * 224 and png.height > 224  # picture | overlay, enlarged, under a caption
    assert report["masks"]["images_scored"] == 3 and 0 < report["masks"]["cam_energy_in_mask"] <= 1
    assert all(i["class_name"] == "square" for i in report["images"][:3])
    # Asked for the other class, the explanation changes and says so.
    other = CliRunner().invoke(cli, ["explain", str(square_run), str(images[0]), "--target-class", "empty", "--out", str(tmp_path / "y"), "--json"])
    assert json.loads(other.output)["images"][0]["class_name"] == "empty"


def test_default_output_folder_is_next_to_the_run(square_run: Path, squares: Path) -> None:
    from visiontl.explain.run import explain

    report = explain(square_run / "checkpoints" / "best.pt", [squares / "val" / "square" / "square_000.png"], method="gradcam++", layer="stage2")
    assert report.out_dir == square_run / "explain" and report.layer == "stage2 (features.7)"
    assert Path(report.items[0].overlay).is_file() and report.items[0].peak is not None


def test_explain_errors_are_clear(square_run: Path, squares: Path, tmp_path: Path) -> None:
    image = str(squares / "val" / "square" / "square_000.png")
    runner = CliRunner()
    result = runner.invoke(cli, ["explain", str(square_run), image, "--target-class", "squares"])
    assert result.exit_code == 1 and "Did you mean 'square'?" in result.output
    result = runner.invoke(cli, ["explain", str(square_run), image, "--layer", "stage9"])
    assert result.exit_code == 1 and "neither a layer group nor a module" in result.output
    result = runner.invoke(cli, ["explain", str(square_run), str(tmp_path)])
    assert result.exit_code == 1 and "No image files" in result.output
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    result = runner.invoke(cli, ["explain", str(square_run), str(bad), image, "--out", str(tmp_path / "o")])
    assert result.exit_code == 0 and "bad.png: not explained" in result.output and "wrote 1 overlay(s)" in result.output
    result = runner.invoke(cli, ["explain", str(square_run), str(bad), "--out", str(tmp_path / "o2")])
    assert result.exit_code == 1 and "None of the 1 image(s) could be explained" in result.output


# --------------------------------------------------------------------------- other tasks


def _square_masks_dataset(root: Path, n: int = 8) -> Path:
    rng = np.random.default_rng(1)
    for i in range(n):
        arr, mask = square_image(rng, True, size=64)
        for folder, data in (("images", arr), ("masks", mask)):
            (root / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(data).save(root / folder / f"{i:02d}.png")
    return root


def test_segmenter_overlays_and_mask_score(tmp_path: Path) -> None:
    from visiontl.explain.run import explain

    root = _square_masks_dataset(tmp_path / "seg")
    recipe = {
        "task": "segmentation",
        "data": {"format": "masks", "root": str(root), "images": "images", "masks": "masks", "val_last": 2, "class_names": ["background", "square"], "image_size": 64},
        "model": {"id": "torchvision:deeplabv3", "options": {"backbone": "torchvision:squeezenet1_1", "channels": 16}},
        "strategy": {"name": "full"},
        "augmentation": {"preset": "none"},
        "train": {"epochs": 1, "batch_size": 4, "progress": False},
        "output": {"dir": str(tmp_path / "runs"), "name": "seg", "plots": False},
    }
    run = api.run(validate_recipe(recipe, "t")).run_dir
    report = explain(run, [root / "images"], masks=root / "masks")
    assert report.method == "gradcam" and report.layer == "stage3 (backbone.features.12)"
    assert len(report.items) == 8 and all(Path(i.overlay).is_file() for i in report.items)
    # The default class of a segmenter is a foreground class, never 'background'.
    assert {i.class_name for i in report.items} == {"square"}
    scored = report.masks
    assert scored is not None and len(scored.per_image) + len(scored.skipped) == 8
    assert all(0 <= s.energy <= 1 and 0 < s.area < 1 for s in scored.per_image)


def test_detector_overlays_with_eigencam_and_box_targets(tmp_path: Path) -> None:
    from detection_fixtures import make_coco

    from visiontl.explain.run import explain

    make_coco(tmp_path / "ds", n=6)
    options = {
        "backbone": "torchvision:squeezenet1_1", "representation_size": 32, "min_size": 64, "max_size": 96,
        "rpn_pre_nms_top_n_train": 32, "rpn_post_nms_top_n_train": 16, "rpn_pre_nms_top_n_test": 32,
        "rpn_post_nms_top_n_test": 16, "box_batch_size_per_image": 16,
    }
    recipe = {
        "task": "detection",
        "data": {"format": "coco", "root": str(tmp_path / "ds"), "train": "annotations.json", "images": "images", "val": None, "val_last": 2},
        "model": {"id": "torchvision:fasterrcnn", "options": options},
        "strategy": {"name": "full"},
        "optimizer": {"name": "sgd", "lr": 0.01},
        "augmentation": {"preset": "none"},
        "train": {"epochs": 1, "batch_size": 2, "progress": False},
        "output": {"dir": str(tmp_path / "runs"), "name": "det", "plots": False},
    }
    run = api.run(validate_recipe(recipe, "t")).run_dir
    image = tmp_path / "ds" / "images" / "img_05.png"
    eigen = explain(run, [image], score_threshold=0.0)
    assert eigen.method == "eigencam" and eigen.layer == "stage3 (detector.backbone.model.features.12)"
    item = eigen.items[0]
    assert item.error is None and item.class_name is None and Path(item.overlay).is_file()
    boxed = explain(run, [image], method="gradcam", score_threshold=0.0, out_dir=tmp_path / "g")
    assert boxed.items[0].error is None and Path(boxed.items[0].overlay).is_file()
    # A box-targeted CAM needs detections: none above a threshold of 1.0, so nothing to explain.
    none = explain(run, [image], method="gradcam", score_threshold=1.0, out_dir=tmp_path / "n")
    assert none.items[0].overlay is None and "No detection scores at least 1" in none.items[0].error


def test_transformer_and_channels_last_and_letterboxing_models() -> None:
    """Layouts of three families with no code of their own here: a ViT (tokens; its head reads
    the class token only, so the CAM falls back to the previous stage), Swin (channels last),
    and a YOLO detector (letterboxes non-square images onto a square)."""
    from visiontl.contracts import BuildRequest
    from visiontl.explain.cam import Explainer
    from visiontl.explain.layers import fallback_layers
    from visiontl.ids import parse_model_id
    from visiontl.plugin_manager import get_plugins

    plugins = get_plugins()
    picture = Image.fromarray((np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8))
    cases = [
        ("timm:vit_tiny_patch16_224", "classification", {"img_size": 64}, 64, "stage11 (blocks.10)", "tokens"),
        ("torchvision:swin_t", "classification", {}, 64, "stage4 (norm)", "nhwc"),
        # letterboxed to 256 px: an 8x8 grid at stride 32, square whatever the picture's shape
        ("ultralytics:yolov8n", "detection", {}, 256, "sppf (net.model.9)", "nchw"),
    ]
    for model_id, task, options, size, layer, layout in cases:
        torch.manual_seed(0)
        built = plugins.hook.visiontl_build(request=BuildRequest(parse_model_id(model_id), task, 3, options=options, input_size=(size, size)))
        groups = api.layer_groups(plugins, built)
        target = resolve_target_layer(built.model, groups)
        explainer = Explainer(built.model, task, ["a", "b", "c"], built.preprocessing.with_size(size), target, score_threshold=0.0, fallbacks=fallback_layers(built.model, groups))
        result = explainer.explain(picture)
        assert result.layer == layer and explainer._layout is not None and explainer._layout.kind == layout, model_id
        assert result.cam.shape == result.display.shape[:2] and float(result.cam.max()) > 0, model_id
    # The YOLO picture was framed as a centred 64x64 square: the CAM grid and the picture coincide.
    assert result.display.shape[:2] == (64, 64)


def test_an_ensemble_is_not_explained_as_one_model(tmp_path: Path, square_run: Path, squares: Path) -> None:
    import yaml

    recipe = {"task": "classification", "data": {"root": str(squares)}, "model": {"id": "torchvision:squeezenet1_1"}, "ensemble": {"members": [str(square_run), str(square_run)]}}
    path = tmp_path / "ens.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = CliRunner().invoke(cli, ["explain", str(path), str(squares / "val" / "square" / "square_000.png")])
    assert result.exit_code == 1 and "is an ensemble" in result.output and "explain each member" in result.output
