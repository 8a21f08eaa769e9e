"""Spec parts of transfer learning: a base network, image augmentation, training phases.

Pure pydantic. ``check_transfer`` holds the rules that need the whole ExperimentSpec (it is
called by ExperimentSpec's validator) and raises errors located at the offending field.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from backend.spec.catalog import DATASETS
from backend.spec.field_errors import field_error

if TYPE_CHECKING:
    from backend.spec.model import ExperimentSpec

Application = Literal["VGG16", "ResNet50", "MobileNetV2", "EfficientNetB0"]

# smallest image side each keras.applications network accepts with include_top=False
MIN_IMAGE_SIDE: dict[str, int] = dict.fromkeys(
    ("VGG16", "ResNet50", "MobileNetV2", "EfficientNetB0"), 32
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BaseSpec(_Strict):
    """The network under the head layers: a keras.applications model or an earlier run's."""

    application: Application | None = Field(
        default=None,
        description="A keras.applications network, built with include_top=False. Images are "
        "resized to input_shape and turned into 3 channels in the model.",
    )
    weights: Literal["imagenet"] | None = Field(
        default="imagenet",
        description='application only: "imagenet" loads the pretrained weights from Keras\' '
        "cache (~/.keras/models) or downloads them, and the run fails before training when "
        "neither works; null starts from random weights. Not used with from_run.",
    )
    from_run: int | None = Field(
        default=None,
        ge=1,
        description="Use the model.keras an earlier run saved, up to its penultimate layer, as "
        "the base (offline transfer learning). Its input shape must match this dataset's.",
    )
    trainable: bool = Field(
        default=False,
        description="Train the whole base along with the head (its BatchNormalization layers "
        "stay frozen). With fit.phases, leave it false: each phase's unfreeze_last says which "
        "base layers train.",
    )
    input_shape: list[Annotated[int, Field(ge=1, le=4096)]] | None = Field(
        default=None,
        min_length=2,
        max_length=3,
        description="application only: [height, width] (or [height, width, 3]) images are "
        "resized to before the base; default: the dataset's image size, raised to the "
        "application's minimum side (32).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> BaseSpec:
        if (self.application is None) == (self.from_run is None):
            raise field_error("BaseSpec", (), "give either 'application' or 'from_run'")
        if self.from_run is not None:
            if self.weights is not None and "weights" in self.model_fields_set:
                raise field_error(
                    "BaseSpec", ("weights",), "weights apply to an application, not to from_run"
                )
            if self.input_shape is not None:
                raise field_error(
                    "BaseSpec",
                    ("input_shape",),
                    "input_shape applies to an application; from_run takes the earlier "
                    "model's input shape",
                )
            self.weights = None  # the default "imagenet" means nothing for a run's model
        if self.application is not None and self.input_shape is not None:
            minimum = MIN_IMAGE_SIDE[self.application]
            height, width = self.input_shape[0], self.input_shape[1]
            if min(height, width) < minimum:
                raise field_error(
                    "BaseSpec",
                    ("input_shape",),
                    f"{self.application} needs images of at least {minimum}x{minimum}; "
                    f"{height}x{width} is smaller",
                )
            if len(self.input_shape) == 3 and self.input_shape[2] != 3:
                raise field_error(
                    "BaseSpec",
                    ("input_shape", 2),
                    f"{self.application} takes 3 channels; grayscale images are repeated "
                    "into 3 channels in the model",
                )
        return self


class AugmentationSpec(_Strict):
    """Random image changes during training, as Keras preprocessing layers in the model.

    They act in fit() only (inference leaves images unchanged), like the tutorial's
    ImageDataGenerator arguments of the same names.
    """

    rotation: float = Field(
        default=0.0,
        ge=0,
        le=180,
        description="Degrees, like ImageDataGenerator's rotation_range: RandomRotation(d/360).",
    )
    width_shift: float = Field(
        default=0.0, ge=0, lt=1, description="Fraction of the width: RandomTranslation."
    )
    height_shift: float = Field(
        default=0.0, ge=0, lt=1, description="Fraction of the height: RandomTranslation."
    )
    shear: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="RandomShear along x, as a fraction of the image (the tangent of the shear "
        "angle: 0.2 is about 11 degrees). ImageDataGenerator's shear_range was an angle in "
        "degrees, so its 0.2 was almost no shear.",
    )
    zoom: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="RandomZoom by up to this fraction in or out (zoom_range 0.2 = 0.8x-1.2x).",
    )
    horizontal_flip: bool = Field(default=False, description="RandomFlip('horizontal').")
    vertical_flip: bool = Field(default=False, description="RandomFlip('vertical').")
    rescale: float | None = Field(
        default=None,
        gt=0,
        description="Multiply pixel values first (Rescaling), e.g. 1/255 with dataset.normalize "
        "false; always applied, also at inference.",
    )
    fill_mode: Literal["nearest", "reflect", "wrap", "constant"] = Field(
        default="nearest",
        description="How the pixels a rotation, shift, shear or zoom uncovers are filled "
        "(ImageDataGenerator's default: nearest).",
    )


class PhaseSpec(_Strict):
    """One stretch of training; phases run back to back as one continuous fit."""

    epochs: int = Field(ge=1, le=10000, description="Epochs of this phase.")
    learning_rate: float | None = Field(
        default=None,
        gt=0,
        le=10,
        description="The optimizer is rebuilt with this rate at the phase start; default "
        "compile.optimizer.learning_rate.",
    )
    unfreeze_last: int = Field(
        default=0,
        ge=0,
        le=100000,
        description="Train the last N layers of model.base (0: the base is frozen and only "
        "the head trains; more than the base has: all of it). Its BatchNormalization layers "
        "stay frozen, in inference mode, as Keras' fine-tuning guide advises.",
    )


def check_transfer(spec: ExperimentSpec) -> None:
    """Cross-field rules of base, augmentation and phases; raises a located ValidationError."""
    model, fit, dataset = spec.model, spec.fit, spec.dataset
    kind = DATASETS[dataset.name][2] if dataset.name in DATASETS else "image"
    for part in ("base", "augmentation"):
        if getattr(model, part) is not None and kind != "image":
            raise _error(
                ("model", part), f"{part} needs an image dataset; {dataset.name} is {kind}"
            )
    augmentation = model.augmentation
    if augmentation is not None and augmentation.rescale is not None and dataset.normalize:
        raise _error(
            ("model", "augmentation", "rescale"),
            "dataset.normalize already scales pixels to [0, 1]; set dataset.normalize to "
            "false to rescale here, or leave rescale out",
        )
    if not fit.phases:
        return
    if model.base is not None and model.base.trainable:
        raise _error(
            ("model", "base", "trainable"),
            "with fit.phases, leave base.trainable false: each phase's unfreeze_last says "
            "which base layers train",
        )
    if getattr(spec.compile.optimizer, "schedule", None) is not None:
        raise _error(
            ("fit", "phases"),
            "fit.phases set each phase's learning rate; leave compile.optimizer.schedule out",
        )
    for index, phase in enumerate(fit.phases):
        if phase.unfreeze_last and model.base is None:
            raise _error(
                ("fit", "phases", index, "unfreeze_last"),
                "unfreeze_last needs model.base: there is no base to unfreeze",
            )


def _error(loc: tuple[str | int, ...], message: str) -> Exception:
    return field_error("ExperimentSpec", loc, message)
