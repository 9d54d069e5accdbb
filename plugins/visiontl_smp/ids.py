"""The ``smp:<architecture>-<encoder>`` id grammar.

``smp:unet-resnet34``, ``smp:deeplabv3plus-mobilenet_v2``, ``smp:unet-tu-efficientnet_b0``,
``smp:segformer-mit_b0``. The architecture is everything before the first ``-`` (SMP's own
lower-case names, plus the aliases ``unet++`` and ``deeplabv3+``); the encoder is the rest: one
of SMP's encoders, or ``tu-<timm model>[.<pretrained tag>]`` for any timm model SMP can use
as a universal encoder.
"""

from __future__ import annotations

from dataclasses import dataclass

from visiontl.ids import ModelId, unknown_model

#: Architecture names in ids -> SMP class names (only those the installed SMP has are offered).
ARCHITECTURES: dict[str, str] = {
    "unet": "Unet",
    "unetplusplus": "UnetPlusPlus",
    "fpn": "FPN",
    "pspnet": "PSPNet",
    "deeplabv3": "DeepLabV3",
    "deeplabv3plus": "DeepLabV3Plus",
    "linknet": "Linknet",
    "manet": "MAnet",
    "pan": "PAN",
    "upernet": "UPerNet",
    "segformer": "Segformer",
    "dpt": "DPT",
}
ALIASES = {"unet++": "unetplusplus", "deeplabv3+": "deeplabv3plus"}


@dataclass(frozen=True)
class SmpName:
    """A parsed SMP model name.

    Attributes:
        arch: the architecture key (``unet`` ...).
        encoder: SMP's encoder name (``resnet34``, ``tu-efficientnet_b0``).
    """

    arch: str
    encoder: str

    @property
    def is_timm_universal(self) -> bool:
        return self.encoder.startswith("tu-")

    @property
    def timm_name(self) -> str:
        """The timm model name of a ``tu-`` encoder (with its tag, if any)."""
        return self.encoder[3:] if self.is_timm_universal else self.encoder

    @property
    def encoder_base(self) -> str:
        """The encoder's architecture without ``tu-`` and without a pretrained tag."""
        return self.timm_name.split(".", 1)[0]


def available_architectures() -> list[str]:
    """Architecture keys the installed SMP provides."""
    import segmentation_models_pytorch as smp

    return [key for key, cls in ARCHITECTURES.items() if hasattr(smp, cls)]


def smp_encoders() -> list[str]:
    """SMP's own encoder names (``tu-`` encoders come from timm)."""
    from segmentation_models_pytorch.encoders import get_encoder_names

    return list(get_encoder_names())


def parse_smp_name(model_id: ModelId) -> SmpName:
    """Split and check ``arch-encoder``.

    Raises:
        UnknownModelError: unknown architecture or encoder, with did-you-mean.
    """
    arch, sep, encoder = model_id.name.partition("-")
    arch = ALIASES.get(arch.lower(), arch.lower())
    archs = available_architectures()
    if arch not in archs:
        return _raise(model_id, [f"{a}-{encoder or 'resnet34'}" for a in archs])
    if not sep or not encoder:
        return _raise(model_id, [f"{arch}-{e}" for e in ("resnet34", "resnet18", "mobilenet_v2", "tu-efficientnet_b0")])
    if encoder.startswith("tu-"):
        import timm
        from timm.models import is_model

        base = encoder[3:].split(".", 1)[0]
        if not is_model(base):
            return _raise(model_id, [f"{arch}-tu-{n}" for n in timm.list_models()])
        return SmpName(arch, encoder)
    names = smp_encoders()
    if encoder not in names:
        return _raise(model_id, [f"{arch}-{e}" for e in names] + [f"{arch}-tu-{encoder}"])
    return SmpName(arch, encoder)


def _raise(model_id: ModelId, known: list[str]) -> SmpName:
    raise unknown_model(model_id, known)
