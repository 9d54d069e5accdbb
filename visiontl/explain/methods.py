"""The CAM methods ``visiontl explain`` offers (kept free of heavy imports for the CLI).

CLI name -> class of the grad-cam package. ``eigencam`` needs no gradients and no target
(the first principal component of the layer's activations), so it works for any model,
detectors included; the others weigh the activations by the target's gradients.
"""

from __future__ import annotations

METHODS: dict[str, str] = {
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "hirescam": "HiResCAM",
    "xgradcam": "XGradCAM",
    "layercam": "LayerCAM",
    "eigencam": "EigenCAM",
    "eigengradcam": "EigenGradCAM",
}

#: Methods that need no backward pass.
GRADIENT_FREE = frozenset({"eigencam"})
