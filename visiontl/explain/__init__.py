"""Interpretability: class activation maps for every task, and a score for them.

* :mod:`visiontl.explain.cam`: :class:`~visiontl.explain.cam.Explainer`, CAMs (grad-cam
  package) for classification, semantic segmentation and detection;
* :mod:`visiontl.explain.layers`: the target layer, chosen from the model's layer groups;
* :mod:`visiontl.explain.score`: the share of CAM energy inside ground-truth masks
  (:func:`~visiontl.explain.score.cam_energy_in_mask`);
* :mod:`visiontl.explain.run`: :func:`~visiontl.explain.run.explain`, overlays written next
  to the run (what ``visiontl explain`` calls).

Nothing here imports torch until it is used. See docs/explain.md.
"""
