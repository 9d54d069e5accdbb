"""The segmentation dataset read by the shared loop."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from visiontl.data.classification import Unreadable
from visiontl.data.images import UnreadableImage, load_rgb
from visiontl.data.segmentation.masks import MaskDecoder, MaskError, describe_unknown
from visiontl.data.segmentation.scan import Pair
from visiontl.data.segmentation.transforms import JointTransform


@dataclass(frozen=True)
class SegItem:
    """One dataset item.

    Attributes:
        image: normalised image ``float [3, H, W]``.
        mask: labels ``int64 [H', W']`` (``ignore_index`` for ignored pixels).
        index: dataset index.
        path: the image file.
        window: sliding-window size for evaluation at the image's own size, else ``None``.
        overlap: overlap of sliding windows.
        letterboxed: the image is letterboxed (``data.resize: letterbox``) and the mask kept
            at the image's own size: the logits' padding is cropped before they are compared.
    """

    image: Any
    mask: Any
    index: int
    path: str
    window: tuple[int, int] | None = None
    overlap: float = 0.0
    letterboxed: bool = False


class SegmentationDataset:
    """Items :class:`SegItem`, or :class:`~visiontl.data.classification.Unreadable` for pairs
    whose files fail when decoded (the collate step drops and reports them).

    Args:
        pairs: image/mask pairs (already checked by the scan).
        decoder: stored mask values -> labels.
        transform: joint transform of image and mask.
        window: sliding-window size when evaluating images at their own size.
        overlap: sliding-window overlap.
        letterboxed: evaluation items whose images are letterboxed (masks at their own size).
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        decoder: MaskDecoder,
        transform: JointTransform,
        *,
        window: tuple[int, int] | None = None,
        overlap: float = 0.0,
        letterboxed: bool = False,
    ) -> None:
        self.pairs = list(pairs)
        self.decoder = decoder
        self.transform = transform
        self.window = window
        self.overlap = overlap
        self.letterboxed = letterboxed

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> SegItem | Unreadable:
        pair = self.pairs[index]
        try:
            image = load_rgb(pair.image)
            decoded = self.decoder.decode(pair.mask)
        except (UnreadableImage, MaskError) as exc:
            return Unreadable(index, str(pair.image), str(exc))
        # The scan checked these already; files changed since then are reported, not used.
        if decoded.unknown:
            return Unreadable(index, str(pair.image), describe_unknown(decoded.unknown, self.decoder))
        if decoded.labels.shape != (image.height, image.width):
            return Unreadable(index, str(pair.image), f"mask {pair.mask.name} no longer matches the image size")
        tensor, mask = self.transform(image, decoded.labels)
        return SegItem(tensor, mask, index, str(pair.image), self.window, self.overlap, self.letterboxed)
