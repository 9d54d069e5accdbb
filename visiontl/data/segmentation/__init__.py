"""Semantic segmentation data: image and mask folders, mask decoding, value maps, joint
augmentation, inference on images of any size, and coloured overlays.

* :mod:`.masks`: class-index, palette and RGB colour-coded masks to class labels;
* :mod:`.classes`: class names and value maps (recipe, classes yaml, or the masks themselves);
* :mod:`.scan`: pairing images and masks by file stem, checks, splits;
* :mod:`.transforms`: geometric transforms applied identically to image and mask;
* :mod:`.dataset`: the dataset the shared loop reads;
* :mod:`.inference`: resize or sliding-window prediction at any image size;
* :mod:`.overlay`: class colours and overlays for ``visiontl predict``.
"""
