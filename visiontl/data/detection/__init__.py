"""Detection and instance-segmentation data: COCO JSON and YOLO labels, read into one record
type (:class:`~visiontl.data.detection.records.DetectionRecord`), split, transformed with
images, boxes and masks kept together, and written back out (a YOLO copy, COCO JSON).

Modules: ``records`` (the record, the label-problem log and its messages), ``coco``, ``yolo``,
``scan`` (a recipe's data section -> records), ``split``, ``masks``, ``transforms``,
``dataset`` (items of the detection contract), ``export`` (``write_yolo_dataset``).
"""

from visiontl.data.detection.records import DetectionRecord, LabelProblems

__all__ = ["DetectionRecord", "LabelProblems"]
