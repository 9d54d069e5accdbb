"""Run exported models without torch: ``visiontl.deploy``.

An artefact written by ``visiontl export`` (ONNX or OpenVINO, with its
``<name>.export.json`` manifest) is all this package needs, with numpy, Pillow and ONNX
Runtime or OpenVINO (``pip install 'visiontl[deploy]'``). It never imports torch,
torchvision, timm or Ultralytics: pre-processing, decoding, NMS and mask assembly are numpy
ports of what visiontl does with PyTorch, and the tests hold them to PyTorch's predictions.

Example:
    >>> from visiontl import deploy  # doctest: +SKIP
    >>> model = deploy.load("runs/segmentation/pennfudan/exports/model-onnx-fp32.export.json")  # doctest: +SKIP
    >>> p = model.predict("street.png")  # doctest: +SKIP
    >>> p.areas, p.label_map.shape  # doctest: +SKIP
    >>> model.evaluate("val/images", masks="val/masks")["miou"]  # doctest: +SKIP

Modules: :mod:`~visiontl.deploy.artefact` (manifests), :mod:`~visiontl.deploy.backends`
(engines), :mod:`~visiontl.deploy.preprocess` and :mod:`~visiontl.deploy.imageops`
(inputs), :mod:`~visiontl.deploy.classify`, :mod:`~visiontl.deploy.segment`,
:mod:`~visiontl.deploy.detect`, :mod:`~visiontl.deploy.yolo` (post-processing per family),
:mod:`~visiontl.deploy.predictor` (predict), :mod:`~visiontl.deploy.evaluate` (scores),
:mod:`~visiontl.deploy.cli` (what ``visiontl predict``/``eval`` call for an artefact).
"""

from visiontl.deploy.artefact import Artefact, is_artefact
from visiontl.deploy.errors import DeployError
from visiontl.deploy.loader import load
from visiontl.deploy.prediction import Prediction
from visiontl.deploy.predictor import Predictor

__all__ = ["Artefact", "DeployError", "Prediction", "Predictor", "is_artefact", "load"]
