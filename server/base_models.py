"""Startups' base models: uploaded weights, stored canonically and named by their sha256,
and checked against a task's architecture before a run starts from them."""

from __future__ import annotations

import hashlib

from sangsaeng.server.db import Store
from sangsaeng.server.db.tables import BaseModelRecord
from sangsaeng.shared.models import WeightsMismatch, check_fits, read_weights, to_safetensors
from sangsaeng.shared.task import TaskSpec

MAX_PER_OWNER = 100  # base models a startup may keep: uploads cannot fill the store


class QuotaReached(RuntimeError):
    pass


def register(store: Store, owner: str | None, body: bytes) -> BaseModelRecord:
    """Store safetensors weights (WeightsMismatch if they are not, or too big). They are
    re-serialised by to_safetensors first, so the same tensors always get the same name
    (the sha256 partners list in their policies) whatever wrote the file."""
    state = read_weights(body)
    if not state:
        raise WeightsMismatch("the file holds no tensors")
    weights = to_safetensors(state)
    digest = hashlib.sha256(weights).hexdigest()
    if (store.base_models.find(owner, digest) is None
            and len(store.base_models.list(owner)) >= MAX_PER_OWNER):
        raise QuotaReached(f"this account already keeps {MAX_PER_OWNER} base models, the "
                           "most it may")
    tensors: list[dict[str, object]] = [
        {"name": name, "dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape)}
        for name, t in sorted(state.items())]
    return store.base_models.add(owner, digest, weights, tensors)


def task_problems(store: Store, task: TaskSpec, owner: str | None
                  ) -> list[tuple[tuple[str | int, ...], str]]:
    """Why the task's base model cannot start it: not uploaded by `owner`, or not the
    task's architecture (the first tensor that differs)."""
    if task.base_model is None:
        return []
    weights = store.base_models.weights(owner, task.base_model)
    if weights is None:
        return [(("base_model",), f"no base model {task.base_model} uploaded by this "
                                  "account")]
    try:
        check_fits(task, read_weights(weights))
    except WeightsMismatch as err:
        return [(("base_model",), f"does not fit the task's model: {err}")]
    return []
