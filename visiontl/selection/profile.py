"""Counting where a model's multiply-accumulates go (needs torch; used to build catalogues).

Models are built on the meta device: shapes only, no memory, no weights, a fraction of a
second per model. Operations are counted at the dispatcher (every convolution and matrix
product, whether called through a module or functionally), so two implementations of one
architecture get the same profile. Totals match torchvision's and timm's published GMACs
(resnet50 at 224: 4.089).

Some models cannot run on the meta device: builders that compute shapes with tensor values
(torchvision's RegNet, SegFormer's MiT encoders), and forwards whose shapes depend on the data
(a detector's NMS, ``nonzero``, ``.item()``). Those are built and run for real on the CPU,
with seeded weights and a seeded random input of the stated size: the same dispatcher-level
counts, a few seconds instead of a fraction of one. Operators of other libraries (torchvision's
``nms``, ``roi_align``) have no FLOP formula and are not counted; :func:`profile_report` lists
the ones a forward ran, so catalogues can say so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from visiontl.cards import MacProfile

#: Seed of the weights and the input when a model has to run for real.
SEED = 0


@dataclass(frozen=True)
class ProfileReport:
    """A MAC profile with how it was counted.

    Attributes:
        profile: the counts.
        device: ``meta`` (shapes only) or ``cpu`` (built and run for real).
        uncounted: operators outside ATen that the forward ran (``torchvision::nms``): they
            have no FLOP formula, so their work is in no count.
    """

    profile: MacProfile
    device: str
    uncounted: tuple[str, ...] = ()


def _counting_mode() -> Any:
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    aten = torch.ops.aten
    convs = {aten.convolution.default, aten._convolution.default}
    products = {aten.mm.default, aten.addmm.default, aten.bmm.default, aten.baddbmm.default}

    class Counter(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.depthwise = 0.0
            self.layers = 0
            self.activations = 0.0
            self.foreign: set[str] = set()

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            out = func(*args, **(kwargs or {}))
            if func in convs:
                weight, groups = args[1], args[-1]
                self.layers += 1
                self.activations += out.numel()
                if groups > 1:
                    kernel = 1
                    for k in weight.shape[2:]:
                        kernel *= k
                    self.depthwise += out.numel() * weight.shape[1] * kernel
            elif func in products:
                self.layers += 1
                self.activations += out.numel()
            elif getattr(func, "namespace", "aten") not in ("aten", "prim", "prims"):
                self.foreign.add(func.name().split(".")[0])
            return out

    return Counter()


def _count(model: Any, x: Any, example: Callable[[Any], Any] | None, device: str) -> ProfileReport:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    flops = FlopCounterMode(display=False)
    counter = _counting_mode()
    with torch.no_grad(), flops, counter:
        model(example(x) if example else x)
    total = flops.get_total_flops() / 2
    depthwise = min(counter.depthwise, total)
    profile = MacProfile(
        macs=float(total),
        dense=float(total - depthwise),
        depthwise=float(depthwise),
        layers=int(counter.layers),
        activations=float(counter.activations),
    )
    return ProfileReport(profile, device, tuple(sorted(counter.foreign)))


def profile_report(build: Callable[[], Any], input_size: tuple[int, int], example: Callable[[Any], Any] | None = None) -> ProfileReport:
    """Profile the model returned by ``build()`` at batch 1, and say how it was counted.

    The model is built and run on the meta device; when the builder or the forward needs real
    values, it is built on the CPU with seeded weights and run on a seeded random input of the
    same size (the global random state is left as it was).

    Args:
        build: creates the model (``lambda: timm.create_model("resnet18")``).
        input_size: (height, width) of the input.
        example: makes the forward input from a tensor of shape (1, 3, H, W) (a detector's
            ``lambda x: [x[0]]``); default: the tensor itself.

    Returns:
        The profile, the device it was counted on and the operators it could not count.

    Raises:
        Whatever the CPU build or forward raises: a model that fails for real is broken.

    Example:
        >>> from torchvision.models import resnet50  # doctest: +SKIP
        >>> profile_report(resnet50, (224, 224)).profile.macs / 1e9  # doctest: +SKIP
        4.089184256
    """
    import torch

    try:
        with torch.device("meta"):
            model = build()
    except (NotImplementedError, RuntimeError):
        model = None  # the builder computes shapes with tensors (torchvision's RegNet)
    if model is not None:
        try:
            return _count(model, torch.empty(1, 3, *input_size, device="meta"), example, "meta")
        except (NotImplementedError, RuntimeError):
            pass  # data-dependent shapes (nonzero, NMS, .item()): run it for real below
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = build()
        x = torch.rand(1, 3, *input_size)
        return _count(model, x, example, "cpu")


def mac_profile(build: Callable[[], Any], input_size: tuple[int, int], example: Callable[[Any], Any] | None = None) -> MacProfile:
    """Profile the model returned by ``build()`` at batch 1 (see :func:`profile_report`).

    Args:
        build: creates the model (``lambda: timm.create_model("resnet18")``).
        input_size: (height, width) of the input.
        example: makes the forward input from a tensor of shape (1, 3, H, W); default: the
            tensor itself.
    """
    return profile_report(build, input_size, example).profile
