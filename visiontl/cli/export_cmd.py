"""``visiontl export``: a trained run to ONNX, OpenVINO or TorchScript, verified on real images."""

from __future__ import annotations

from pathlib import Path

import click

from visiontl.cli.options import data_root_option, echo_json, json_option, set_option

FORMAT_NAMES = ("onnx", "openvino", "torchscript")
PRECISIONS = ("fp32", "bf16", "int8")


@click.command("export")
@click.argument("target", type=click.Path(exists=True, path_type=Path))
@click.option("--format", "fmt", required=True, type=click.Choice(FORMAT_NAMES), help="Export format.")
@click.option("--precision", default="fp32", show_default=True, type=click.Choice(PRECISIONS),
              help="onnx: fp32, int8 (ONNX Runtime static); openvino: fp32, bf16, int8 (NNCF); torchscript: fp32, bf16.")
@click.option("--calib", type=click.Path(exists=True, path_type=Path), default=None,
              help="int8: a folder of calibration images (default: the run's training images).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="The export file (with the format's suffix) or a folder for it (default: <run>/exports/).")
@click.option("--limit", type=int, default=None, help="Verify on the first N validation images only.")
@click.option("--tolerance", type=float, default=0.01, show_default=True,
              help="Largest accepted drop of the primary metric against PyTorch fp32 (0.01 = 1 point).")
@click.option("--threads", type=int, default=None, help="CPU threads of the runtime during verification.")
@click.option("--strict", is_flag=True, help="Exit with code 1 when verification fails (default: report it).")
@click.option("--force", is_flag=True, help="Keep a bf16/int8 export whose measured cost is beyond --tolerance "
              "(default: refuse it, exit 1, saying what to use instead).")
@set_option
@data_root_option
@json_option
def export_command(target: Path, fmt: str, precision: str, calib: Path | None, out: Path | None, limit: int | None,
                   tolerance: float, threads: int | None, strict: bool, force: bool, overrides: tuple[str, ...],
                   data_root: Path | None, as_json: bool) -> None:
    """Export TARGET (a run directory or checkpoint) and verify it against PyTorch.

    \b
    Every export is run on the validation images next to the PyTorch model: the largest
    absolute output difference, the agreement of predictions and the primary metric of both
    are printed and stored in <name>.export.json beside the export (and in the run's
    summary.json and report.md). Ultralytics models go through Ultralytics' exporter.

    \b
    Examples:
      visiontl export runs/classification/hymenoptera --format onnx
      visiontl export runs/classification/hymenoptera --format openvino --precision int8
      visiontl export runs/classification/hymenoptera --format openvino --precision int8 --calib my_images/
    """
    from visiontl.export.pipeline import export

    report = export(target, fmt, precision, calib=calib, out=out, overrides=list(overrides),
                    data_root=data_root.resolve() if data_root else None, limit=limit, tolerance=tolerance, threads=threads,
                    force=force)
    if as_json:
        echo_json(report.as_dict())
    else:
        click.echo(render(report))
    if strict and not report.passed:
        raise click.exceptions.Exit(1)


def render(report: object) -> str:
    """The human summary of an :class:`~visiontl.export.pipeline.ExportReport`."""
    manifest = report.manifest  # type: ignore[attr-defined]
    ver = manifest.verification
    metric = ver["primary_metric"]
    lines = [
        f"exported {manifest.model_id} -> {manifest.format} {manifest.precision} ({manifest.exporter} exporter)",
        f"  files     : {', '.join(str(f) for f in report.files)} ({report.size_bytes / 1e6:.2f} MB)",  # type: ignore[attr-defined]
        f"  manifest  : {report.manifest_path}",  # type: ignore[attr-defined]
    ]
    if manifest.calibration:
        cal = manifest.calibration
        lines.append(f"  calibrated: {cal.get('images', '?')} images from {cal.get('source', '?')}")
    lines += [
        f"  verified on {ver['images']} validation images:",
        f"    max abs diff {ver['max_abs_diff']:.3g} (mean {ver['mean_abs_diff']:.3g}); "
        f"agreement {ver['agreement'] * 100:.2f}% of {ver['compared']} {ver['agreement_unit']}",
        f"    {metric}: PyTorch fp32 {ver['pytorch_fp32'].get(metric, float('nan')):.4f}, "
        f"export {ver['export'].get(metric, float('nan')):.4f} ({ver['delta'] * 100:+.2f} points)",
    ]
    if ver.get("disagreements"):
        lines.append(f"    predictions differ on: {', '.join(ver['disagreements'][:5])}" + (" ..." if len(ver["disagreements"]) > 5 else ""))
    lines.append("  verification: passed" if report.passed else "  verification: FAILED: " + "; ".join(report.problems))  # type: ignore[attr-defined]
    return "\n".join(lines)


COMMANDS = [export_command]
