"""Base models as the API shows them: what a startup uploaded, never the weights."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field


class TensorInfo(BaseModel):
    name: str
    dtype: str
    shape: list[int]


class BaseModelOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    sha256: str = Field(description="name it as the task's base_model; partners' policies "
                                    "accept base models by it")
    size: int = Field(description="bytes, as stored (canonical safetensors)")
    tensors: list[TensorInfo]
    uploaded_at: dt.datetime
