"""`config validate` means runnable: recipe mistakes are one-line errors, found before any work.

Nothing here trains or builds a model: the checks are the schema, the plugins' model listings,
and the task's scan of small data.
"""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from conftest import ROOT, tiny_recipe
from visiontl.cli import cli
from visiontl.config.loader import apply_overrides, load_recipe, read_yaml, validate_recipe
from visiontl.config.preflight import Problem, _listed, check_runnable, ensure_runnable, preflight
from visiontl.errors import ConfigError, DataError, UnknownModelError

MODEL = "torchvision:squeezenet1_1"


def recipe_dict(root: Path, out: Path, **sections: dict) -> dict:
    """conftest's tiny recipe with a torchvision model (its listing is quick to load)."""
    return tiny_recipe(root, out, **{"model": {"id": MODEL}, **sections})


def write(tmp_path: Path, recipe: dict, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(recipe))
    return path


def validate_cli(*args: str):
    return CliRunner().invoke(cli, ["config", "validate", *args])


def one_line_error(result) -> str:
    """The CLI's error: exit 1, one line, no traceback."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("visiontl: error: "), result.output
    return lines[0]


# --------------------------------------------------------------------------- eval.metric


def test_unknown_metric_is_refused_with_did_you_mean_and_the_valid_names(tmp_path, shapes_root):
    recipe = validate_recipe(recipe_dict(shapes_root, tmp_path, eval={"metric": "acc"}))
    problems = check_runnable(recipe)
    assert [p.field for p in problems] == ["eval.metric"]
    text = str(problems[0])
    assert "Did you mean 'accuracy'?" in text
    assert "Valid: accuracy, top3_accuracy, macro_precision, macro_recall, macro_f1" in text  # 3 classes cap top-5
    assert check_runnable(validate_recipe(recipe_dict(shapes_root, tmp_path, eval={"metric": "macro_f1"}))) == []
    assert check_runnable(validate_recipe(recipe_dict(shapes_root, tmp_path, eval={"metric": "top3_accuracy"}))) == []
    problems = check_runnable(validate_recipe(recipe_dict(shapes_root, tmp_path, eval={"metric": "top5_accuracy"})))
    assert "Did you mean 'top3_accuracy'?" in str(problems[0])
    # without a scan, the top-k metric is any k up to eval.topk
    no_scan = validate_recipe(recipe_dict(shapes_root, tmp_path, eval={"metric": "top5_accuracy"}))
    assert check_runnable(no_scan, scan_data=False) == []
    assert [p.field for p in check_runnable(validate_recipe(recipe_dict(shapes_root, tmp_path, eval={"metric": "top6_accuracy"})), scan_data=False)] == ["eval.metric"]


def test_a_loss_is_accepted_as_eval_metric_with_its_direction(tmp_path, shapes_root):
    from visiontl.api import resolve_task
    from visiontl.plugin_manager import get_plugins

    # val_loss is lower-is-better for the task: the best epoch is its lowest, so it may pick it.
    assert check_runnable(validate_recipe(recipe_dict(shapes_root, tmp_path, eval={"metric": "val_loss"}))) == []
    task = resolve_task(get_plugins(), "classification")
    assert task.higher_is_better_for("val_loss") is False and task.higher_is_better_for("accuracy") is True
    problems = check_runnable(validate_recipe(recipe_dict(shapes_root, tmp_path, eval={"metric": "val_los"})))
    assert [p.field for p in problems] == ["eval.metric"] and "Did you mean 'val_loss'?" in str(problems[0])
    # detection reports no loss: nothing to minimise there
    assert resolve_task(get_plugins(), "detection").lower_is_better_metrics == ()


def test_metric_typo_fails_validate_and_run_before_any_work(tmp_path, shapes_root, monkeypatch):
    from visiontl import api

    def no_work(*args, **kwargs):
        raise AssertionError("work started: a recipe mistake must be refused before preparing or training")

    monkeypatch.setattr(api, "prepare", no_work)
    monkeypatch.setattr(api, "_train", no_work)
    path = write(tmp_path, recipe_dict(shapes_root, tmp_path / "runs"))
    line = one_line_error(validate_cli(str(path), "--set", "eval.metric=acc"))
    assert "eval.metric 'acc'" in line and "Did you mean 'accuracy'?" in line
    line = one_line_error(CliRunner().invoke(cli, ["run", str(path), "--set", "eval.metric=acc"]))
    assert "Did you mean 'accuracy'?" in line
    assert not (tmp_path / "runs").exists()  # no run directory either


def test_segmentation_class_metrics_are_checked_against_the_scanned_classes(tmp_path, shared_data):
    data = {"root": str(shared_data / "pennfudan"), "format": "masks", "images": "images", "masks": "masks",
            "val_last": 5, "class_names": ["background", "person"], "limit": 8}
    base = {"task": "segmentation", "data": data, "model": {"id": "torchvision:deeplabv3"}, "output": {"dir": str(tmp_path)}}
    assert check_runnable(validate_recipe({**base, "eval": {"metric": "iou_person"}})) == []
    problems = check_runnable(validate_recipe({**base, "eval": {"metric": "iou_persn"}}))
    assert [p.field for p in problems] == ["eval.metric"] and "Did you mean 'iou_person'?" in str(problems[0])
    problems = check_runnable(validate_recipe({**base, "eval": {"metric": "mIoU"}}))
    assert "Did you mean 'miou'?" in str(problems[0])


# --------------------------------------------------------------------------- model ids


def test_model_names_within_a_family_get_did_you_mean(tmp_path, shapes_root):
    recipe = validate_recipe(recipe_dict(shapes_root, tmp_path, model={"id": "torchvision:squeezenet1_9"}))
    problems = check_runnable(recipe)
    assert [p.field for p in problems] == ["model.id"]
    assert isinstance(problems[0].error, UnknownModelError)
    assert "Did you mean 'torchvision:squeezenet1_1'" in str(problems[0]) and "visiontl models --family torchvision" in str(problems[0])


def test_a_model_of_another_task_is_refused(tmp_path, shapes_root):
    recipe = validate_recipe(recipe_dict(shapes_root, tmp_path, model={"id": "torchvision:fasterrcnn_resnet50_fpn"}))
    problems = check_runnable(recipe)
    assert [p.field for p in problems] == ["model.id"]
    assert "is not a model for task 'classification'" in str(problems[0])


def test_listing_covers_tags_and_open_slots():
    names = ["resnet18", "unet-resnet34", "unet-tu-efficientnet_b0"]
    assert _listed("resnet18", names) and _listed("resnet18.a1_in1k", names)
    assert _listed("unet-tu-resnet18", names)  # one listed example stands for every timm encoder
    assert not _listed("resnet19", names) and not _listed("unet-resnet3", names) and not _listed("unt-resnet34", names)


# --------------------------------------------------------------------------- data and weights


def test_missing_dataset_names_the_field_and_the_data_root(tmp_path, shapes_root):
    recipe = validate_recipe(recipe_dict(shapes_root, tmp_path, data={"root": "no_such_dataset"}))
    problems = check_runnable(recipe, data_root=tmp_path / "no_data_root")
    assert [p.field for p in problems] == ["data.root"] and isinstance(problems[0].error, DataError)
    assert "no_such_dataset" in str(problems[0]) and "data root" in str(problems[0]) and "does not exist" in str(problems[0])


def test_data_paths_weights_and_the_scan_are_checked(tmp_path, shapes_root):
    file_root = tmp_path / "file.txt"
    file_root.write_text("x")
    assert [p.field for p in check_runnable(validate_recipe(recipe_dict(file_root, tmp_path)))] == ["data.root"]
    problems = check_runnable(validate_recipe(recipe_dict(shapes_root, tmp_path, data={"train": "nope"})))
    assert [p.field for p in problems] == ["data"] and "nope" in str(problems[0])
    problems = check_runnable(validate_recipe(recipe_dict(shapes_root, tmp_path, model={"id": MODEL, "weights": "missing.pth"})))
    assert [p.field for p in problems] == ["model.weights"] and "missing.pth" in str(problems[0])
    problems = check_runnable(validate_recipe(recipe_dict(shapes_root, tmp_path, loss={"class_weights": [1.0, 2.0]})))
    assert [p.field for p in problems] == ["loss"] and "2 values for 3 classes" in str(problems[0])


def test_a_dataset_to_synthesize_is_not_generated_by_validation(tmp_path):
    root = tmp_path / "later"
    recipe = validate_recipe(recipe_dict(root, tmp_path, data={"synthesize": "shapes"}))
    assert check_runnable(recipe) == [] and not root.exists()


def test_every_problem_is_reported_at_once(tmp_path, shapes_root):
    recipe = validate_recipe(recipe_dict(shapes_root, tmp_path, data={"root": str(tmp_path / "nope")},
                                         model={"id": "torchvision:squeezenet1_9"}, eval={"metric": "acc"}))
    report = preflight(recipe)
    assert [p.field for p in report.problems] == ["model.id", "data.root", "eval.metric"]
    with pytest.raises(ConfigError) as info:
        report.raise_for_problems("Recipe 'x.yaml'")
    text = str(info.value)
    assert text.startswith("Recipe 'x.yaml' cannot run: 3 problems: model.id: ") and str(tmp_path / "nope") in text and "eval.metric 'acc'" in text


def test_one_problem_keeps_its_error_class_and_ok_returns_the_scan(tmp_path, shapes_root):
    with pytest.raises(DataError, match=r"data\.root"):
        ensure_runnable(validate_recipe(recipe_dict(tmp_path / "nope", tmp_path)))
    info = ensure_runnable(validate_recipe(recipe_dict(shapes_root, tmp_path)))
    assert info is not None and info.num_classes == 3
    assert str(Problem("eval.metric", ConfigError("eval.metric 'x' is bad."))) == "eval.metric 'x' is bad."


def test_validate_prints_the_data_summary_or_checks_the_schema_only(tmp_path, shapes_root):
    good = write(tmp_path, recipe_dict(shapes_root, tmp_path))
    result = validate_cli(str(good))
    assert result.exit_code == 0 and "valid" in result.output and "3 classes, train 36 images, val 18 images" in result.output
    missing = write(tmp_path, recipe_dict(tmp_path / "nope", tmp_path), "missing.yaml")
    assert "data.root" in one_line_error(validate_cli(str(missing)))
    assert validate_cli(str(missing), "--schema-only").exit_code == 0


# --------------------------------------------------------------------------- numeric ranges


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("optimizer.lr=-0.1", "optimizer.lr"),
        ("optimizer.lr=0", "optimizer.lr"),
        ("optimizer.lr=.nan", "optimizer.lr"),
        ("optimizer.lr=[1e-4, -1e-2]", "optimizer.lr"),
        ("optimizer.lr={head: -1, default: 0.01}", "optimizer.lr"),
        ("optimizer.lr=[1, 2, 3]", "optimizer.lr"),
        ("optimizer.lr=fast", "optimizer.lr"),
        ("strategy={name: custom, phases: [{name: a, train: head, epochs: 1, lr: -0.5}]}", "strategy.phases.0.lr"),
        ("strategy={name: custom, phases: [{name: a, train: -1, epochs: 1}]}", "strategy.phases.0.train"),
        ("strategy={name: custom, phases: [{name: a, train: head, epochs: 0}]}", "strategy.phases.0.epochs"),
        ("strategy.phase_epochs=[1, -1, 2]", "strategy.phase_epochs"),
        ("train.epochs=-1", "train.epochs"),
        ("train.epochs=true", "train.epochs"),
        ("train.batch_size=0", "train.batch_size"),
        ("optimizer.weight_decay=-0.01", "optimizer.weight_decay"),
        ("optimizer.momentum=1.0", "optimizer.momentum"),
        ("optimizer.momentum=-0.1", "optimizer.momentum"),
        ("optimizer.betas=[0.9, 1.5]", "optimizer.betas"),
        ("optimizer.grad_clip=0", "optimizer.grad_clip"),
        ("scheduler.warmup_epochs=-1", "scheduler.warmup_epochs"),
        ("scheduler.min_lr_ratio=.inf", "scheduler.min_lr_ratio"),
        ("loss.label_smoothing=1.0", "loss.label_smoothing"),
        ("loss.class_weights=[0, 0, 0]", "loss.class_weights"),
        ("loss.class_weights=[1, -1, 1]", "loss.class_weights"),
        ("augmentation.mixup=-0.2", "augmentation.mixup"),
        ("data.val_split=1.5", "data.val_split"),
        ("data.mask_colors=[[0, 0, 300]]", "data.mask_colors"),
        ("eval.topk=0", "eval.topk"),
        ("train.workers=-1", "train.workers"),
    ],
)
def test_numeric_ranges_are_schema_errors_with_the_field_path(override, field):
    base = {"data": {"root": "x"}, "model": {"id": MODEL}}
    with pytest.raises(ConfigError) as info:
        validate_recipe(apply_overrides(base, [override]))
    assert f"{field}: " in str(info.value)


def test_good_learning_rates_still_validate():
    base = {"data": {"root": "x"}, "model": {"id": MODEL}}
    for lr, expected in (("1e-3", 1e-3), ("[1e-5, 1e-3]", (1e-5, 1e-3)), ("{head: 0.01, default: 0.001}", {"head": 0.01, "default": 0.001})):
        assert validate_recipe(apply_overrides(base, [f"optimizer.lr={lr}"])).optimizer.lr == expected


# --------------------------------------------------------------------------- encodings and files


@pytest.mark.parametrize(
    "encode",
    [
        lambda text: text.encode("utf-8"),
        lambda text: codecs.BOM_UTF8 + text.encode("utf-8"),
        lambda text: text.encode("utf-16"),
        lambda text: codecs.BOM_UTF16_BE + text.encode("utf-16-be"),
        lambda text: text.encode("utf-32"),
    ],
    ids=["utf8", "utf8-bom", "utf16-bom", "utf16be-bom", "utf32-bom"],
)
def test_recipes_are_read_in_utf8_and_bom_marked_encodings(tmp_path, encode):
    path = tmp_path / "r.yaml"
    path.write_bytes(encode("# Café recipe\ndata: {root: données}\nmodel: {id: 'timm:resnet18'}\n"))
    assert load_recipe(path).data.root == "données"


def test_other_encodings_name_the_file_the_offset_and_utf8(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes("data: {root: x}\n# caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        read_yaml(path)
    text = str(info.value)
    assert str(path) in text and "byte offset 21" in text and "line 2" in text and "UTF-8" in text
    path.write_bytes("data: {root: x}\n".encode("utf-16-le"))  # no BOM
    with pytest.raises(ConfigError, match="NUL byte at byte offset 1.*UTF-8"):
        read_yaml(path)


def test_a_folder_or_an_unreadable_recipe_is_a_config_error(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="is a folder, not a file"):
        read_yaml(tmp_path)
    path = tmp_path / "r.yaml"
    path.write_text("data: {root: x}\n")

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(ConfigError, match="cannot be read: permission denied"):
        read_yaml(path)


# --------------------------------------------------------------------------- overrides


def test_override_indexes_must_name_existing_items():
    base = {"data": {"root": "x"}, "model": {"id": MODEL}, "strategy": {"name": "custom", "phases": [{"name": "a", "train": "head", "epochs": 1}]}}
    with pytest.raises(ConfigError, match=r"strategy.phases has 1 item \(0 to 0\); there is no item 9"):
        apply_overrides(base, ["strategy.phases.9.epochs=1"])
    with pytest.raises(ConfigError, match="strategy.phases is not set, so it has no item 0"):
        apply_overrides({"data": {"root": "x"}}, ["strategy.phases.0.epochs=1"])
    with pytest.raises(ConfigError, match="empty part"):
        apply_overrides(base, ["train..epochs=1"])
    # a numeric key of a mapping option is a key, not an index
    assert apply_overrides({"data": {"root": "x"}}, ["data.value_map.3=1"])["data"]["value_map"] == {"3": 1}


# --------------------------------------------------------------------------- the CLI never shows a traceback


BAD_TEXT = {
    "top-level list": "- data\n- model\n",
    "null section": "data:\nmodel: {id: 'timm:resnet18'}\n",
    "list for a section": "data: [a, b]\nmodel: {id: 'timm:resnet18'}\n",
    "scalar for a section": "data: {root: x}\nmodel: {id: 'timm:resnet18'}\ntrain: fast\n",
    "wrong type": "data: {root: x}\nmodel: {id: 'timm:resnet18'}\ntrain: {epochs: ten}\n",
    "list for a mapping option": "data: {root: x}\nmodel: {id: 'timm:resnet18', options: [1, 2]}\n",
    "mapping for a list option": "data: {root: x}\nmodel: {id: 'timm:resnet18'}\nstrategy: {name: custom, phases: {a: 1}}\n",
    "union mismatch": "data: {root: x}\nmodel: {id: 'timm:resnet18'}\nstrategy: {name: custom, phases: [{name: a, train: tail, epochs: 1}]}\n",
    "number for the model id": "data: {root: x}\nmodel: {id: 5}\n",
    "bad yaml": "data: {root: [x\nmodel: {id: 'timm:resnet18'}\n",
    "python tag": "data: !!python/object/apply:os.system ['true']\nmodel: {id: 'timm:resnet18'}\n",
}
# The field (or the file fact) each message must name.
BAD_TEXT_NAMES = {
    "top-level list": "mapping of sections", "null section": "data:", "list for a section": "data:",
    "scalar for a section": "train:", "wrong type": "train.epochs", "list for a mapping option": "model.options",
    "mapping for a list option": "strategy.phases", "union mismatch": "strategy.phases.0.train",
    "number for the model id": "model.id", "bad yaml": "line", "python tag": "line",
}
BAD_SETS = {
    "set a section to a number": (["train=3"], "train:"),
    "set past the end of a list": (["strategy.phases.9.epochs=1"], "strategy.phases"),
    "set a negative lr": (["optimizer.lr=-1"], "optimizer.lr"),
    "set a section to null": (["model=null"], "model:"),
    "set into a number": (["train.epochs.x=1"], "train.epochs"),
    "set a typo": (["train.epoch=3"], "train.epoch"),
    "set a malformed override": (["train.epochs"], "key.path=value"),
    "set an unknown metric": (["eval.metric=acc"], "eval.metric"),
    "set an unknown model": (["model.id=torchvision:squeezenet9"], "model.id"),
    "set a missing dataset": (["data.root=/no/such/dataset"], "data.root"),
    "set a missing weights file": (["model.weights=nope.pth"], "model.weights"),
    "set a bool epoch count": (["train.epochs=yes"], "train.epochs"),
}


@pytest.mark.parametrize("case", sorted(BAD_TEXT))
def test_bad_recipe_files_give_one_line_naming_the_field(tmp_path, case):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_TEXT[case])
    line = one_line_error(validate_cli(str(path)))
    assert BAD_TEXT_NAMES[case] in line and str(path) in line


@pytest.mark.parametrize("case", sorted(BAD_SETS))
def test_bad_overrides_give_one_line_naming_the_field(tmp_path, shapes_root, case):
    sets, name = BAD_SETS[case]
    path = write(tmp_path, recipe_dict(shapes_root, tmp_path))
    args = [str(path)]
    for text in sets:
        args += ["--set", text]
    assert name in one_line_error(validate_cli(*args))


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("data: {root: x}\nmodel: {id: 'timm:resnet18'}\n".encode("latin-1") + b"# caf\xe9\n", "byte offset"),
        ("data: {root: x}\n".encode("utf-16-le"), "NUL byte"),
    ],
    ids=["latin-1", "utf16-without-bom"],
)
def test_undecodable_recipes_give_one_line(tmp_path, raw, name):
    path = tmp_path / "enc.yaml"
    path.write_bytes(raw)
    line = one_line_error(validate_cli(str(path)))
    assert name in line and "UTF-8" in line


def test_a_folder_as_recipe_gives_one_line(tmp_path):
    assert "is a folder" in one_line_error(validate_cli(str(tmp_path)))


NEEDS_TRAINED_RUNS = {"distill_mobile.yaml"}  # its teachers are runs of other recipes


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "recipes").glob("*.yaml")))
def test_every_shipped_recipe_is_runnable_on_the_shared_data(name, shared_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the quickstart's dataset is not generated by checking it
    recipe = load_recipe(ROOT / "recipes" / name, ["data.limit=4"])
    problems = check_runnable(recipe, data_root=shared_data)
    if name in NEEDS_TRAINED_RUNS:
        assert problems and all(p.field.startswith("distill.") for p in problems)
    else:
        assert problems == []
