"""Text classifiers: their trained parameters (all that travels), the general DP step that
trains the adapters, text columns in the partner's encoding, and the weights checks a
base model goes through."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from sangsaeng.client.data import cached_text_inputs
from sangsaeng.client.ghost_step import GhostDPSGD, clipped_sum, linear_layers
from sangsaeng.client.per_sample_step import PerSampleDPSGD
from sangsaeng.client.policy import PartnerPolicy, TaskRefused, check_task
from sangsaeng.demo.data import write_policy, write_schema
from sangsaeng.shared import encoders
from sangsaeng.shared.models import (
    TextAdapters,
    WeightsMismatch,
    build_model,
    check_fits,
    load_model,
    read_weights,
    to_safetensors,
)
from sangsaeng.shared.preprocess import encode, input_dim, parameter_count, row_width
from sangsaeng.shared.task import TaskSpec, TextFeature

REVIEWS = pd.DataFrame({
    "review": ["great taste, will buy again", "arrived stale, awful", None, "ok I guess",
               "the best coffee I have had", "tasted like cardboard"] * 5,
    "stars": ["5", "1", "3", "", "5", "x"] * 5,
    "score": ["great", "other", "great", "other", "great", "other"] * 5,
})


TEXT = TextFeature(kind="text", name="review")


def text_task(mode: str = "head", **model: Any) -> TaskSpec:
    return TaskSpec.from_dict({
        "dataset": "reviews", "target": {"name": "score", "classes": ["other", "great"]},
        "features": [{"kind": "text", "name": "review"}, {"name": "stars", "min": 1, "max": 5}],
        "model": {"kind": "text-classifier", "encoder": "all-MiniLM-L6-v2", "mode": mode,
                  "max_tokens": 16, **model},
        "rounds": 1, "local_epochs": 1, "batch_size": 8, "learning_rate": 0.5,
        "dp": {"max_grad_norm": 1.0, "delta": 1e-5, "noise_multiplier": 1.0},
        "min_nodes": 1, "round_timeout": 60})


def per_sample_clipped(model: nn.Module, x: torch.Tensor, y: torch.Tensor, clip: float
                       ) -> list[torch.Tensor]:
    """By brute force: one backward pass per row, its gradient clipped, summed."""
    params = [p for p in model.parameters() if p.requires_grad]
    sums = [torch.zeros_like(p) for p in params]
    for xi, yi in zip(x, y, strict=True):
        grads = torch.autograd.grad(nn.functional.cross_entropy(model(xi[None]), yi[None]),
                                    params)
        norm = torch.cat([g.flatten() for g in grads]).norm()
        factor = min(1.0, clip / (norm.item() + 1e-6))
        for s, g in zip(sums, grads, strict=True):
            s += factor * g
    return sums


def test_the_text_encoding_puts_embeddings_first_and_reads_missing_text_as_empty() -> None:
    task = text_task()
    x, y, labelled = encode(REVIEWS, task)
    assert x.shape == (30, 385) == (30, input_dim(task))
    empty = encoders.embed("all-MiniLM-L6-v2", [""], 16)[0]
    np.testing.assert_allclose(x[2, :384], empty, atol=1e-5)  # None is the empty text
    assert x[3, 384] == 0.0 and x[5, 384] == 0.0  # no number: the declared fill (min)
    assert labelled.all() and list(y[:2]) == [1, 0]


def test_adapters_inputs_are_the_states_before_the_adapted_layers() -> None:
    task = text_task("adapters", adapter_layers=2)
    x, _, _ = encode(REVIEWS.head(6), task)
    assert x.shape[1] == row_width(task) == 16 * 384 + 16 + 1
    model = build_model(task, seed=0)
    # with B at zero the adapters change nothing: the model is the head on the encoder's
    # own sentence embedding (the same function head mode trains)
    head_x, _, _ = encode(REVIEWS.head(6), text_task())
    assert isinstance(model, TextAdapters)
    with torch.no_grad():
        np.testing.assert_allclose(model(torch.from_numpy(x)).numpy(),
                                   model.head(torch.from_numpy(head_x)).numpy(), atol=1e-4)


def test_only_trained_parameters_are_in_the_state() -> None:
    head, adapters = build_model(text_task()), build_model(text_task("adapters"))
    assert sorted(head.state_dict()) == ["0.bias", "0.weight"]
    assert sorted(adapters.state_dict()) == ["head.0.bias", "head.0.weight", "query.0.b",
                                             "value.0.b"]
    for task, model in ((text_task(), head), (text_task("adapters"), adapters)):
        trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
        assert trained == parameter_count(task) == sum(
            t.numel() for t in model.state_dict().values())
    # the fixed A matrices come from the task's seed: the same at every partner
    again = build_model(text_task("adapters"))
    assert isinstance(again, TextAdapters) and isinstance(adapters, TextAdapters)
    assert torch.equal(again.query[0].get_buffer("a"), adapters.query[0].get_buffer("a"))


def test_the_general_step_clips_as_the_ghost_step_does() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    x, y = torch.randn(40, 12) * 3, torch.randint(0, 3, (40,))
    ours = PerSampleDPSGD(model, lr=1, max_grad_norm=0.5, noise_multiplier=0,
                          expected_batch_size=1).clipped_sum(x, y)
    ghost = clipped_sum(linear_layers(model), x, y, 0.5)
    for a, b in zip(ours, ghost, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_the_adapters_step_clips_each_sample_over_every_trained_parameter() -> None:
    task = text_task("adapters")
    x, y, _ = encode(REVIEWS.head(12), task)
    model = build_model(task, seed=0)
    for p in model.parameters():  # away from B = 0, so every gradient is non-trivial
        if p.requires_grad:
            p.data.normal_(0, 0.2)
    features, labels = torch.from_numpy(x), torch.from_numpy(y)
    clip = 0.05
    ours = PerSampleDPSGD(model, lr=1, max_grad_norm=clip, noise_multiplier=0,
                          expected_batch_size=1).clipped_sum(features, labels)
    brute = per_sample_clipped(model, features, labels, clip)
    for a, b in zip(ours, brute, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    # a step without noise: p -= lr / B · clipped sum
    before = copy.deepcopy(model)
    PerSampleDPSGD(model, lr=0.5, max_grad_norm=clip, noise_multiplier=0,
                   expected_batch_size=4).step(features, labels)
    moved = [p for p in model.parameters() if p.requires_grad]
    for p, q, s in zip(moved, [p for p in before.parameters() if p.requires_grad], brute,
                       strict=True):
        torch.testing.assert_close(p, q - 0.5 / 4 * s, atol=1e-6, rtol=1e-4)


def test_the_general_step_noise_is_gaussian_with_the_ghost_step_scale() -> None:
    """An empty batch: the update is N(0, (σC)²) per coordinate times lr / B, as the ghost
    step (and Opacus) add it."""
    model = nn.Sequential(nn.Linear(100, 256), nn.ReLU(), nn.Linear(256, 2))
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    sigma, clip, lr, expected = 1.1, 0.9, 2.0, 4
    PerSampleDPSGD(model, lr=lr, max_grad_norm=clip, noise_multiplier=sigma,
                   expected_batch_size=expected).step(torch.zeros(0, 100),
                                                      torch.zeros(0, dtype=torch.long))
    noise = (torch.cat([p.detach().flatten() for p in model.parameters()]) - before)
    noise = noise / (-lr / expected)
    assert noise.std().item() == pytest.approx(sigma * clip, rel=0.02)  # 26k draws
    assert abs(noise.mean().item()) < 0.02
    ghost = nn.Sequential(nn.Linear(3, 2))
    assert type(GhostDPSGD(ghost, lr=1, max_grad_norm=1, noise_multiplier=1,
                           expected_batch_size=1).noise) is type(PerSampleDPSGD(
        ghost, lr=1, max_grad_norm=1, noise_multiplier=1, expected_batch_size=1).noise)


def test_weights_that_do_not_fit_are_named() -> None:
    task = text_task()
    good = build_model(task, seed=1).state_dict()
    assert load_model(task, to_safetensors(good)).state_dict().keys() == good.keys()
    cases = [
        ({**good, "extra": torch.zeros(1)}, "tensor 'extra' is not a parameter"),
        ({"0.weight": good["0.weight"]}, "tensor '0.bias' of the task's model is missing"),
        ({**good, "0.weight": torch.zeros(2, 10)},
         r"tensor '0.weight' is torch.float32 \[2, 10\]; the task's model needs "
         r"torch.float32 \[2, 385\]"),
        ({**good, "0.bias": good["0.bias"].double()}, "tensor '0.bias' is torch.float64"),
        ({**good, "0.bias": torch.tensor([0.0, float("nan")])}, "non-finite values"),
        ({**good, "0.bias": torch.tensor([0.0, 3e38])}, r"values beyond ±10000"),
    ]
    for state, message in cases:
        with pytest.raises(WeightsMismatch, match=message):
            check_fits(task, state)
    for data, message in [
            (b"PK\x03\x04 a zip file, perhaps a pickle", "not a safetensors file"),
            (to_safetensors({"w": torch.zeros(2, dtype=torch.float16)}), "'w' is not float32"),
            (to_safetensors({"w": torch.zeros(0)}), "'w' is empty"),
            (to_safetensors({f"w{i}": torch.zeros(1) for i in range(1001)}),
             "1001 tensors, over the limit of 1000")]:
        with pytest.raises(WeightsMismatch, match=message):
            read_weights(data)


def test_safetensors_bytes_name_the_tensors_not_their_order() -> None:
    state = build_model(text_task(), seed=2).state_dict()
    backwards = dict(reversed(list(state.items())))
    assert to_safetensors(state) == to_safetensors(backwards)


def test_the_cache_keeps_current_texts_only(tmp_path: Path) -> None:
    cached = cached_text_inputs(tmp_path)
    head, adapters = text_task(), text_task("adapters")
    first = cached(head, TEXT, ["good", "bad"])
    assert np.array_equal(first, encoders.embed("all-MiniLM-L6-v2", ["good", "bad"], 16))
    cached(adapters, TEXT, ["good", "bad"])  # another setting of the same texts: both kept
    assert len(list(tmp_path.glob("*.npy"))) == 2
    assert np.array_equal(cached(head, TEXT, ["good", "bad"]), first)  # read back
    cached(head, TEXT, ["good", "worse"])  # the data changed: no copy of the old rows left
    assert len(list(tmp_path.glob("*.npy"))) == 1


def test_a_partner_bounds_what_a_text_task_may_cost(tmp_path: Path) -> None:
    schema = write_schema(tmp_path / "reviews.json", text_task(), [])
    data = tmp_path / "reviews.csv"
    REVIEWS.to_csv(data, index=False)
    policy = PartnerPolicy.load(write_policy(tmp_path / "p.toml", "acme", "reviews", data,
                                             10.0, schema, 100, models=("text-classifier",)))
    check_task(policy, text_task())
    for task, reason in [
            (text_task(max_tokens=256), "256 tokens per text exceed its maximum of 128"),
            (text_task("adapters"), "training mode 'adapters' is not allowed by its policy"),
            (text_task().model_copy(update={"base_model": "ab" * 32}),
             f"base model {'ab' * 32} is not among the base models its policy accepts")]:
        with pytest.raises(TaskRefused, match=reason):
            check_task(policy, task)


def test_the_general_step_weights_classes_as_the_ghost_step_does() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    x, y = torch.randn(40, 12) * 3, torch.randint(0, 3, (40,))
    weights = torch.tensor([0.2, 1.0, 0.5])
    ours = PerSampleDPSGD(model, lr=1, max_grad_norm=0.5, noise_multiplier=0,
                          expected_batch_size=1, class_weights=weights).clipped_sum(x, y)
    ghost = clipped_sum(linear_layers(model), x, y, 0.5, weights)
    unweighted = clipped_sum(linear_layers(model), x, y, 0.5)
    for a, b, c in zip(ours, ghost, unweighted, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
        assert not torch.allclose(a, c)  # the weights changed the sum
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        PerSampleDPSGD(model, lr=1, max_grad_norm=0.5, noise_multiplier=0,
                       expected_batch_size=1, class_weights=torch.tensor([2.0, 1.0, 1.0]))
