"""The progressive freezing engine: plans (pure data), applying phases, audits.

Submodules are imported directly (``visiontl.freeze.plan`` needs no torch;
``visiontl.freeze.apply`` and ``visiontl.freeze.audit`` do).
"""
