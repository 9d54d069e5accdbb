"""Counting where a model's multiply-accumulates go (needs torch; used to build catalogues).

Models are built on the meta device: shapes only, no memory, no weights, a fraction of a
second per model. Operations are counted at the dispatcher (every convolution and matrix
product, whether called through a module or functionally), so two implementations of one
architecture get the same profile. Totals match torchvision's and timm's published GMACs
(resnet50 at 224: 4.089).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from visiontl.cards import MacProfile


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
            return out

    return Counter()


def mac_profile(build: Callable[[], Any], input_size: tuple[int, int], example: Callable[[Any], Any] | None = None) -> MacProfile:
    """Profile the model returned by ``build()`` (called under the meta device) at batch 1.

    Args:
        build: creates the model (``lambda: timm.create_model("resnet18")``).
        input_size: (height, width) of the input.
        example: makes the forward input from a tensor of shape (1, 3, H, W); default: the
            tensor itself.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    device = "meta"
    try:
        with torch.device("meta"):
            model = build()
    except (NotImplementedError, RuntimeError):
        # Some builders compute shapes with tensors (torchvision's RegNet): build for real.
        device = "cpu"
        model = build()
    x = torch.empty(1, 3, *input_size, device=device)
    model.eval()
    flops = FlopCounterMode(display=False)
    counter = _counting_mode()
    with torch.no_grad(), flops, counter:
        model(example(x) if example else x)
    total = flops.get_total_flops() / 2
    depthwise = min(counter.depthwise, total)
    return MacProfile(
        macs=float(total),
        dense=float(total - depthwise),
        depthwise=float(depthwise),
        layers=int(counter.layers),
        activations=float(counter.activations),
    )
