"""The plugin contract kit: checks any plugin's tests can run against their models.

Example (in a plugin's own test suite)::

    import my_plugin
    from visiontl.testing import check_model_contract

    def test_contract():
        check_model_contract(my_plugin, "myfamily:tiny", task="classification",
                             input_size=(64, 64))

Across plugins: ``plugin=None`` uses the *installed* plugins (entry points), so an installed
task plugin can check its task over the built-in families' models, and a family plugin its
models under another plugin's task::

    def test_my_task_over_built_in_backbones():
        check_model_contract(None, "timm:resnet10t", task="my_task", input_size=(32, 32))
        check_model_contract(None, "torchvision:squeezenet1_1", task="my_task", input_size=(32, 32))

A plugin under development that is not installed joins the installed ones with
``plugins=plugins_for(my_plugin, installed=True)``.

What is checked, for one model id:

1. ``visiontl_build`` returns a model for ``num_classes`` classes;
2. a training forward on a tiny batch gives a finite scalar loss whose backward reaches
   the head, and an eval forward gives outputs of the task's form;
3. ``visiontl_freeze`` groups cover every parameter exactly once, are ordered from input to
   output (by first parameter) with the head group(s) last;
4. freezing really freezes: after a few optimizer steps at a large learning rate in a
   head-only phase, with ``model.train()`` called, every frozen weight and BatchNorm buffer
   is bit-identical, frozen BatchNorm layers are in eval mode, and the head did change;
5. ``visiontl_benchmark`` returns every required field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from visiontl.contracts import (
    BenchmarkRequest,
    BenchmarkResult,
    BuildRequest,
    BuiltModel,
    LayerGroup,
)
from visiontl.ids import parse_model_id
from visiontl.plugin_manager import Plugins, build_plugin_manager


@dataclass
class ContractReport:
    """What the kit checked for one model (useful in assertion messages and docs)."""

    model_id: str
    groups: list[str] = field(default_factory=list)
    params: int = 0
    frozen_checked: int = 0
    buffers_checked: int = 0
    loss: float = float("nan")
    benchmark: BenchmarkResult | None = None


def plugins_for(plugin: object | None, name: str = "plugin-under-test", *, installed: bool = False) -> Plugins:
    """A manager with the core plus ``plugin`` (or the installed entry points if ``None``).

    Args:
        plugin: the plugin module/object under test, or ``None`` for the installed plugins.
        name: its plugin name.
        installed: also load the installed plugins (entry points), so that ``plugin`` meets
            the built-in families and tasks (a new task over ``timm:`` models ...). The plugin
            must not be installed itself then (it would be registered twice).
    """
    if plugin is None:
        return build_plugin_manager()
    return build_plugin_manager([(name, plugin)], entry_points=installed, disabled=())


def check_groups_ordered(model: Any, groups: Sequence[LayerGroup]) -> None:
    """Groups cover every parameter once, run input to output, and end with the head(s)."""
    from visiontl.freeze.apply import check_groups

    check_groups(model, groups)
    position = {n: i for i, (n, _) in enumerate(model.named_parameters())}
    firsts = [min(position[p] for p in g.params) for g in groups]
    body = [f for f, g in zip(firsts, groups, strict=True) if g.role != "head"]
    assert body == sorted(body), f"groups are not in input-to-output order: {[g.name for g in groups]}"
    roles = [g.role for g in groups]
    assert "head" in roles, "no group has role 'head'"
    first_head = roles.index("head")
    assert all(r == "head" for r in roles[first_head:]), f"head groups must come last: {roles}"


def check_model_contract(
    plugin: object | None,
    model_id: str,
    *,
    task: str = "classification",
    num_classes: int = 3,
    input_size: tuple[int, int] = (64, 64),
    batch_size: int = 2,
    options: dict[str, Any] | None = None,
    steps: int = 3,
    benchmark: bool = True,
    plugins: Plugins | None = None,
) -> ContractReport:
    """Run every contract check for ``model_id``; raise ``AssertionError`` on the first failure.

    Args:
        plugin: the plugin module/object under test (``None``: use installed plugins, for
            checks across plugins: a task of one over the models of another).
        model_id: ``family:name`` to build (pick a tiny configuration).
        task: the task to build for.
        num_classes: classes of the new head.
        input_size: (height, width) of the example batch.
        batch_size: images in the example batch (2 or more, for BatchNorm).
        options: ``model.options`` to pass to the build.
        steps: optimizer steps in the freezing check.
        benchmark: also check ``visiontl_benchmark``.
        plugins: the manager to use instead of one built from ``plugin`` (e.g.
            ``plugins_for(my_task_plugin, installed=True)``).

    Example:
        >>> report = check_model_contract(None, "timm:resnet10t", input_size=(32, 32))  # doctest: +SKIP
        >>> report.groups[-1]  # doctest: +SKIP
        'head'
    """
    import torch

    from visiontl.config.schema import StrategySection
    from visiontl.freeze.apply import apply_phase, is_batchnorm
    from visiontl.freeze.audit import FreezeAudit
    from visiontl.freeze.plan import build_plan
    from visiontl.trained import resolve_task

    torch.manual_seed(0)
    plugins = plugins or plugins_for(plugin)
    adapter = resolve_task(plugins, task)
    mid = parse_model_id(model_id)
    report = ContractReport(model_id)

    # 1. build
    built: BuiltModel | None = plugins.hook.visiontl_build(
        request=BuildRequest(model_id=mid, task=task, num_classes=num_classes, options=dict(options or {}),
                             class_names=tuple(f"c{i}" for i in range(num_classes)), output=adapter.output)
    )
    assert built is not None, f"no plugin built {model_id}"
    assert isinstance(built, BuiltModel), f"visiontl_build must return a BuiltModel, got {type(built).__name__}"
    built.output = built.output or adapter.output
    model = built.model
    report.params = sum(p.numel() for p in model.parameters())

    # 2. forward and backward
    batch = adapter.example_batch(num_classes, input_size, batch_size)
    loss_fn = _loss(adapter, task, num_classes)
    model.train()
    loss, _ = adapter.forward_train(model, batch, loss_fn)
    assert loss.ndim == 0 and torch.isfinite(loss), f"training loss must be a finite scalar, got {loss}"
    loss.backward()
    report.loss = float(loss.item())

    # 3. groups
    groups = plugins.hook.visiontl_freeze(built=built)
    assert groups, "visiontl_freeze returned no groups"
    check_groups_ordered(model, groups)
    report.groups = [g.name for g in groups]
    head_params = {p for g in groups if g.role == "head" for p in g.params}
    named = dict(model.named_parameters())
    assert any(named[p].grad is not None and named[p].grad.abs().sum() > 0 for p in head_params), "the loss's gradient does not reach the head"

    # 4. freezing really freezes
    model.zero_grad(set_to_none=True)
    plan = build_plan(groups, StrategySection(name="feature_extraction"), 0.05, 1)
    phase = plan.phases[0]
    applied = apply_phase(model, groups, phase)
    audit = FreezeAudit.snapshot(model, applied.frozen_params, applied.stat_buffers, phase.name)
    before_head = {p: named[p].detach().clone() for p in head_params}
    optimizer = torch.optim.SGD([{"params": pg["params"]} for pg in applied.param_groups], lr=0.05)
    for _ in range(steps):
        model.train()
        frozen_prefixes = tuple(f"{m}." for m in applied.locked_modules)
        for name, module in model.named_modules():
            if is_batchnorm(module) and (name in applied.locked_modules or name.startswith(frozen_prefixes)):
                assert not module.training, f"frozen BatchNorm '{name}' is in training mode after model.train()"
        loss, _ = adapter.forward_train(model, batch, loss_fn)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    result = audit.verify(model)
    report.frozen_checked, report.buffers_checked = result.params_checked, result.buffers_checked
    assert any(not torch.equal(before_head[p], named[p].detach()) for p in head_params), "the head did not change while training"
    from visiontl.freeze.modes import unlock_all

    unlock_all(model)
    for p in model.parameters():
        p.requires_grad_(True)

    # eval forward has the task's form
    model.eval()
    with torch.no_grad():
        outputs = adapter.forward_eval(model, batch)
    adapter.check_outputs(outputs, num_classes, batch)

    # 5. benchmark
    if benchmark:
        request = BenchmarkRequest(input_size=input_size, batch_size=1, warmup=1, min_repeats=2, min_seconds=0.0)
        bench = plugins.hook.visiontl_benchmark(model=model, built=built, request=request)
        assert isinstance(bench, BenchmarkResult), "visiontl_benchmark must return a BenchmarkResult"
        missing = [f for f in BenchmarkResult.REQUIRED_FIELDS if getattr(bench, f) is None]
        assert not missing, f"benchmark result lacks {missing}"
        assert bench.latency_ms_p50 > 0 and bench.params == report.params
        report.benchmark = bench
    return report


def _loss(adapter: Any, task: str, num_classes: int) -> Any:
    """The task's default loss for a minimal recipe."""
    from visiontl.config.schema import DataSection, ModelSection, Recipe
    from visiontl.tasks.base import DataInfo

    recipe = Recipe(task=task, data=DataSection(root="unused"), model=ModelSection(id="contract:kit"))
    info = DataInfo(class_names=[f"c{i}" for i in range(num_classes)], counts={"train": {f"c{i}": 1 for i in range(num_classes)}})
    return adapter.loss_function(recipe, info)


__all__ = ["ContractReport", "check_groups_ordered", "check_model_contract", "plugins_for"]
