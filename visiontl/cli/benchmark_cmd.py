"""``visiontl benchmark``: latency, throughput, size, memory and accuracy, every format, one harness."""

from __future__ import annotations

from pathlib import Path

import click

from visiontl.cli.options import data_root_option, set_option


@click.command("benchmark")
@click.argument("targets", nargs=-1, required=True)
@click.option("--task", default=None, help="Task of bare model ids (default: the card's first task, else classification).")
@click.option("--input-size", default=None, metavar="N|HxW", help="Input size (default: the model's).")
@click.option("--batch", "batch", default="1", show_default=True, metavar="B1,B2", help="Batch sizes, comma-separated.")
@click.option("--threads", type=int, default=None, help="CPU threads for torch and every runtime (default: torch's current).")
@click.option("--precision", "precision", default="fp32", show_default=True, metavar="P1,P2",
              help="fp32, bf16, fp16 (CUDA): autocast for torch, the runtime precision for exports that take one.")
@click.option("--formats", "formats", default="torch", show_default=True, metavar="F1,F2|all",
              help="torch, torchscript, onnx, onnx-int8, openvino, openvino-int8 (or all).")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda (exports are measured on the CPU).")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Dataset to score accuracy on (the target recipe's format; bare ids: imagefolder with train/ and val/); "
                   "a relative path is looked up under the data root, then the working directory, as recipes' data.root.")
@click.option("--calib", type=click.Path(exists=True, path_type=Path), default=None,
              help="Folder of int8 calibration images (default: the run's or --data's training images, else noise).")
@click.option("--limit", type=int, default=None, help="Score accuracy on the first N validation images only.")
@click.option("--pretrained", is_flag=True, help="Bare model ids: load published weights when available offline (else random, said in the row).")
@click.option("--num-classes", type=int, default=None, help="Classes of a bare model id's random head (default per task).")
@click.option("--warmup", type=int, default=5, show_default=True, help="Untimed calls before timing.")
@click.option("--repeats", "min_repeats", type=int, default=20, show_default=True, help="Timed calls at least.")
@click.option("--min-seconds", type=float, default=1.0, show_default=True, help="Time each measurement for at least this long.")
@click.option("--exports-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the exported files here (default: a temporary folder).")
@click.option("--masks", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Object masks (named like the images): score each target's CAM energy inside them.")
@click.option("--mask-images", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="The images of --masks (default: the images/ folder beside them).")
@click.option("--target-class", default=None, help="Class the CAMs of --masks explain (default: the predicted one).")
@click.option("--cam-method", default=None, help="CAM method for --masks (default: the task's, see visiontl explain).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (rows, skipped, verdicts, conditions).")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (one line per measurement).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write the JSON/CSV/table here instead of printing it.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write the Pareto chart (accuracy vs latency) PNG.")
@set_option
@data_root_option
def benchmark_command(targets: tuple[str, ...], task: str | None, input_size: str | None, batch: str, threads: int | None,
                      precision: str, formats: str, device: str, data: Path | None, calib: Path | None, limit: int | None,
                      pretrained: bool, num_classes: int | None, warmup: int, min_repeats: int, min_seconds: float,
                      exports_dir: Path | None, masks: Path | None, mask_images: Path | None, target_class: str | None, cam_method: str | None, as_json: bool, as_csv: bool, out: Path | None, plot: Path | None,
                      overrides: tuple[str, ...], data_root: Path | None) -> None:
    """Measure TARGETS: model ids, run directories, checkpoints or (ensemble) recipes.

    \b
    Every target x format x precision x batch is timed by the same harness (warm-up, device
    synchronised around every call, repeats until the median is stable): p50 and p90
    latency, throughput, parameters, MACs, file size, peak memory, and the task's primary
    metric on --data. Threads, batch, precision, device and versions go with every row.
    Exported formats are the files 'visiontl export' writes; the verdicts say which is
    fastest here, and whether int8 beat the float format it came from (it does not always).

    \b
    Examples:
      visiontl benchmark timm:efficientnet_b0 timm:resnet50 timm:mobilenetv2_100 \\
          timm:convnext_tiny timm:swin_tiny_patch4_window7_224 --threads 2 --plot pareto.png
      visiontl benchmark runs/classification/hymenoptera --formats all --threads 2 \\
          --data hymenoptera_data --batch 1,8
      visiontl benchmark runs/segmentation/pennfudan --masks pennfudan/masks \\
          --target-class person --limit 50
    """
    from visiontl.benchmark import report
    from visiontl.benchmark.formats import (
        PRECISIONS,
        parse_batches,
        parse_formats,
        parse_list,
        parse_size,
    )
    from visiontl.benchmark.suite import SuiteSpec, run_suite
    from visiontl.errors import ConfigError

    if as_json and as_csv:
        raise ConfigError("--json and --csv are exclusive.", fix="pick one (the other can be made from --out of the first)")
    if data is not None:
        from visiontl.data.paths import resolve_data_path

        # Resolved as a recipe's data.root is: the --help example's `--data hymenoptera_data` works.
        data = resolve_data_path(data, data_root.resolve() if data_root else None, what="--data")
    spec = SuiteSpec(
        formats=parse_formats(formats), precisions=parse_list(precision, "precision", PRECISIONS), batches=parse_batches(batch),
        threads=threads, device=device, input_size=parse_size(input_size), task=task, num_classes=num_classes,
        pretrained=pretrained, data=data, overrides=list(overrides), calib=calib, limit=limit, warmup=warmup,
        min_repeats=min_repeats, min_seconds=min_seconds, workdir=exports_dir,
        data_root=data_root.resolve() if data_root else None, masks=masks, mask_images=mask_images, target_class=target_class, cam_method=cam_method,
    )
    result = run_suite(list(targets), spec, progress=lambda message: click.echo(message, err=True))
    if as_json:
        text = report.to_json(result)
    elif as_csv:
        text = report.to_csv(result.rows)
    else:
        text = report.render(result)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + ("" if text.endswith("\n") else "\n"), encoding="utf-8")
        click.echo(f"wrote {out}", err=True)
    else:
        click.echo(text)
    if plot is not None:
        from visiontl.benchmark.plot import plot_pareto

        click.echo(f"wrote {plot_pareto(result.rows, plot)}", err=True)


COMMANDS = [benchmark_command]
