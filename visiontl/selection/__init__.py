"""The selection engine: which model for this task, target, data size and budget, and why.

``visiontl.selection.select(...)`` (also ``visiontl.select`` at the package top level) answers
without importing torch; ``measure``, ``probe`` and ``calibrate`` time or run models.
"""

from visiontl.selection.engine import Candidate, Rejected, Selection, select

__all__ = ["Candidate", "Rejected", "Selection", "select"]
