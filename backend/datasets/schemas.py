"""Request and response bodies of the datasets API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Kind = Literal["csv", "npz", "image_zip"]


class UploadForm(BaseModel):
    """The multipart fields beside ``file``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="A name to find it by.")
    kind: Kind = Field(
        description="csv (tabular or text + label), npz (x_train, y_train, optional x_test, "
        "y_test) or image_zip (one folder of images per class)."
    )
    target_column: str | None = Field(
        default=None, max_length=200, description="csv: the column holding the labels."
    )
    text_column: str | None = Field(
        default=None,
        max_length=200,
        description="csv: a column of text to classify; the other columns are then ignored.",
    )

    @field_validator("name", "target_column", "text_column")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        value = value.strip() if value is not None else None
        return value or None

    @field_validator("name")
    @classmethod
    def _named(cls, value: str | None) -> str:
        if not value:
            raise ValueError("name is empty")
        return value


class DatasetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    kind: Kind
    filename: str
    size_bytes: int
    num_examples: int
    num_classes: int
    class_names: list[str]
    input_shape: list[int]
    options: dict[str, Any]
    created_at: datetime


class DatasetList(BaseModel):
    items: list[DatasetOut]
