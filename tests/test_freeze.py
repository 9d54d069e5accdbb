"""The freezing engine: plans, requires_grad, BatchNorm policy, learning rates, audits."""

import copy
import io
import pickle

import pytest
import torch
from torch import nn

from visiontl.config.schema import PhaseSpec, StrategySection
from visiontl.contracts import LayerGroup
from visiontl.errors import ConfigError, FreezeAuditError, FreezeError
from visiontl.freeze.apply import apply_phase, check_groups, group_param_counts
from visiontl.freeze.audit import FreezeAudit
from visiontl.freeze.modes import is_locked, lock_eval, unlock
from visiontl.freeze.plan import build_plan, resolve_lrs


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
        self.stage1 = nn.Sequential(nn.Conv2d(4, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.5))
        self.stage2 = nn.Sequential(nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stage2(self.stage1(self.stem(x))))


def groups_of(model: nn.Module) -> list[LayerGroup]:
    names = [n for n, _ in model.named_parameters()]
    spec = [("stem", "stem"), ("stage1", "stage"), ("stage2", "stage"), ("head", "head")]
    return [LayerGroup(g, role, tuple(n for n in names if n.startswith(g + "."))) for g, role in spec]


def plan_for(model, **strategy):
    groups = groups_of(model)
    section = StrategySection(**strategy)
    return groups, build_plan(groups, section, strategy.pop("lr", 0.1) if "lr" in strategy else 0.1, 3, group_param_counts(model, groups))


# ---------------------------------------------------------------- plans


def test_feature_extraction_trains_only_the_head():
    groups, plan = plan_for(Tiny(), name="feature_extraction")
    assert [p.name for p in plan.phases] == ["head"]
    assert plan.phases[0].trainable == ("head",)
    assert plan.phases[0].epochs == 3


def test_progressive_phases_and_epochs():
    groups, plan = plan_for(Tiny(), name="progressive", unfreeze_last=1, phase_epochs=[1, 2, 3])
    assert [(p.name, p.trainable, p.epochs) for p in plan.phases] == [
        ("head", ("head",), 1),
        ("last1", ("stage2", "head"), 2),
        ("all", ("stem", "stage1", "stage2", "head"), 3),
    ]
    assert plan.total_epochs == 6
    assert plan.locate(0) == (0, 0) and plan.locate(1) == (1, 0) and plan.locate(5) == (2, 2)


def test_progressive_without_middle_phase_when_k_covers_the_body():
    _, plan = plan_for(Tiny(), name="progressive", unfreeze_last=5)
    assert [p.name for p in plan.phases] == ["head", "all"]


def test_progressive_phase_epochs_count_must_match():
    with pytest.raises(ConfigError, match="phase_epochs has 2"):
        plan_for(Tiny(), name="progressive", phase_epochs=[1, 2])


def test_custom_phases_with_their_own_lr_and_bn():
    phases = [PhaseSpec(name="warm", train=["head"], epochs=1, lr=0.5), PhaseSpec(name="deep", train=2, epochs=2, bn="train")]
    _, plan = plan_for(Tiny(), name="custom", phases=phases)
    assert plan.phases[0].lrs["head"] == 0.5 and plan.phases[0].bn == "freeze"
    assert plan.phases[1].trainable == ("stage1", "stage2", "head") and plan.phases[1].bn == "train"


def test_custom_phase_with_unknown_group_suggests():
    with pytest.raises(ConfigError, match="Did you mean 'stage1'"):
        plan_for(Tiny(), name="custom", phases=[PhaseSpec(name="x", train=["stage_1"], epochs=1)])


def test_geometric_lr_spread_from_first_group_to_head():
    lrs = resolve_lrs((1e-4, 1e-2), groups_of(Tiny()))
    assert lrs["stem"] == pytest.approx(1e-4)
    assert lrs["head"] == pytest.approx(1e-2)
    ratios = [lrs["stage1"] / lrs["stem"], lrs["stage2"] / lrs["stage1"], lrs["head"] / lrs["stage2"]]
    assert ratios == pytest.approx([ratios[0]] * 3)  # geometric


def test_explicit_lr_map_and_its_errors():
    groups = groups_of(Tiny())
    lrs = resolve_lrs({"head": 1e-2, "default": 1e-4}, groups)
    assert lrs == {"stem": 1e-4, "stage1": 1e-4, "stage2": 1e-4, "head": 1e-2}
    with pytest.raises(ConfigError, match="Did you mean 'head'"):
        resolve_lrs({"haed": 1.0, "default": 1.0}, groups)
    with pytest.raises(ConfigError, match="no rate"):
        resolve_lrs({"head": 1.0}, groups)


def test_plan_table_lists_every_group_per_phase():
    _, plan = plan_for(Tiny(), name="progressive", unfreeze_last=1, phase_epochs=[1, 1, 1])
    table = plan.table()
    assert table.count("Phase ") == 3
    assert "eval (stats fixed)" in table and "trainable" in table


# ---------------------------------------------------------------- groups


def test_group_coverage_errors():
    model = Tiny()
    groups = groups_of(model)
    with pytest.raises(FreezeError, match="not in any layer group"):
        check_groups(model, groups[:-1])
    dup = [*groups, LayerGroup("again", "head", groups[-1].params)]
    with pytest.raises(FreezeError, match="both groups"):
        check_groups(model, dup)


# ---------------------------------------------------------------- applying


def test_frozen_groups_get_no_grad_and_bn_stays_in_eval_after_train():
    model = Tiny()
    groups, plan = plan_for(model, name="feature_extraction")
    applied = apply_phase(model, groups, plan.phases[0])
    model.train()
    for name, p in model.named_parameters():
        assert p.requires_grad == name.startswith("head.")
    assert not model.stem[1].training and not model.stage1[1].training
    assert not model.stage1[3].training  # dropout in a frozen group is off too
    assert model.head.training
    assert {"stem", "stage1", "stage2"} <= set(applied.locked_modules)
    assert [g["group"] for g in applied.param_groups] == ["head", "head"]  # decay / no-decay


def test_bn_policy_train_keeps_frozen_bn_trainable():
    model = Tiny()
    groups, plan = plan_for(model, name="feature_extraction", bn="train")
    applied = apply_phase(model, groups, plan.phases[0])
    model.train()
    assert model.stem[1].training and model.stem[1].weight.requires_grad
    assert not model.stem[0].weight.requires_grad
    assert applied.locked_modules == []


def test_bn_policy_eval_locks_every_bn():
    model = Tiny()
    groups, plan = plan_for(model, name="full", bn="eval")
    apply_phase(model, groups, plan.phases[0])
    model.train()
    assert all(not m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert model.stem[0].weight.requires_grad  # affine and convs still train


def test_unfreezing_restores_train_mode():
    model = Tiny()
    groups, plan = plan_for(model, name="progressive", unfreeze_last=1, phase_epochs=[1, 1, 1])
    apply_phase(model, groups, plan.phases[0])
    apply_phase(model, groups, plan.phases[2])
    model.train()
    assert all(m.training for m in model.modules())
    assert not any(is_locked(m) for m in model.modules())


def test_frozen_weights_and_bn_buffers_bit_identical_after_training():
    torch.manual_seed(0)
    model = Tiny()
    groups, plan = plan_for(model, name="feature_extraction")
    applied = apply_phase(model, groups, plan.phases[0], weight_decay=0.1)
    audit = FreezeAudit.snapshot(model, applied.frozen_params, applied.stat_buffers, "head")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW(applied.param_groups, lr=0.1)
    for _ in range(5):
        model.train()
        loss = nn.functional.cross_entropy(model(torch.randn(4, 3, 12, 12)), torch.tensor([0, 1, 2, 0]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    report = audit.verify(model)
    assert report.ok and report.buffers_checked == 9  # 3 BN x (mean, var, count)
    after = model.state_dict()
    for key in before:
        if key.startswith("head."):
            continue
        assert torch.equal(before[key], after[key]), key
    assert not torch.equal(before["head.2.weight"], after["head.2.weight"])


def test_audit_fails_loudly_when_a_frozen_tensor_moves():
    model = Tiny()
    groups, plan = plan_for(model, name="feature_extraction")
    applied = apply_phase(model, groups, plan.phases[0])
    audit = FreezeAudit.snapshot(model, applied.frozen_params, applied.stat_buffers, "head")
    with torch.no_grad():
        model.stage1[0].weight.add_(1e-6)
        model.stem[1].running_mean.add_(1.0)
    with pytest.raises(FreezeAuditError) as info:
        audit.verify(model)
    assert "stage1.0.weight" in str(info.value) and "stem.1.running_mean" in str(info.value)


def test_locked_modules_pickle_and_copy_as_their_own_class():
    bn = nn.BatchNorm2d(3)
    lock_eval(bn)
    assert type(bn).__name__ == "EvalLockedBatchNorm2d" and isinstance(bn, nn.BatchNorm2d)
    bn.train()
    assert not bn.training
    for clone in (copy.deepcopy(bn), pickle.loads(pickle.dumps(bn))):
        assert type(clone) is nn.BatchNorm2d
    buf = io.BytesIO()
    torch.save(bn, buf)
    buf.seek(0)
    assert type(torch.load(buf, weights_only=False)) is nn.BatchNorm2d
    unlock(bn)
    bn.train()
    assert bn.training and type(bn) is nn.BatchNorm2d
