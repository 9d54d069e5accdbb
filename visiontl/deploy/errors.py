"""The one error the torch-free runtime raises on purpose (a :class:`~visiontl.errors.VisiontlError`)."""

from __future__ import annotations

from visiontl.errors import VisiontlError

#: What installs the runtime (numpy, pillow, onnxruntime; openvino for OpenVINO artefacts).
INSTALL_DEPLOY = "pip install 'visiontl[deploy]'"


class DeployError(VisiontlError):
    """An artefact cannot be loaded or run: no manifest, several to choose from, a format that
    needs torch, a runtime that is not installed, an input the model cannot take."""
