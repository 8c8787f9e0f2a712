from __future__ import annotations

import json
from pathlib import Path

import pytest

from sangsaeng.shared.task import TaskSpec, TaskSpecError, load_task
from sangsaeng.shared.wire import RUN_CONFIG_TASK

from ..support.tasks import task_with


def test_demo_task_loads(caravan_task: TaskSpec) -> None:
    assert caravan_task.dataset == "caravan"
    assert len(caravan_task.features) == 85
    kinds = {f.name: f.kind for f in caravan_task.features}
    assert kinds["MOSTYPE"] == "categorical" and kinds["PPERSAUT"] == "numeric"


def test_json_round_trip_and_stable_hash(caravan_task: TaskSpec) -> None:
    again = TaskSpec.from_json(caravan_task.to_json())
    assert again == caravan_task
    assert again.sha256() == caravan_task.sha256()
    assert task_with(rounds=6).sha256() != caravan_task.sha256()


def test_run_config_round_trip(caravan_task: TaskSpec) -> None:
    assert TaskSpec.from_run_config({RUN_CONFIG_TASK: caravan_task.to_json()}) == caravan_task
    with pytest.raises(TaskSpecError, match="run config has no 'task'"):
        TaskSpec.from_run_config({})


@pytest.mark.parametrize(("change", "field", "reason"), [
    ({"rounds": 0}, "rounds", "greater than or equal to 1"),
    ({"batch_size": -1}, "batch_size", "greater than or equal to 1"),
    ({"learning_rate": 0}, "learning_rate", "greater than 0"),
    ({"dp": {"delta": 1.5}}, "dp.delta", "less than 1"),
    ({"dp": {"target_epsilon": 3.0}}, "dp", "exactly one of noise_multiplier and target_epsilon"),
    ({"dp": {"noise_multiplier": None}}, "dp", "exactly one of"),
    ({"model": {"kind": "transformer"}}, "model.kind", "'logreg', 'mlp' or 'text-classifier'"),
    ({"model": {"kind": "mlp", "hidden": []}}, "model", "at least one hidden layer"),
    ({"target": {"name": "Purchase", "classes": ["Yes"]}}, "target.classes", "at least 2"),
    ({"surprise": 1}, "surprise", "Extra inputs are not permitted"),
])
def test_bad_fields_are_named(change: dict[str, object], field: str, reason: str) -> None:
    with pytest.raises(TaskSpecError) as err:
        task_with(**change)
    assert f"{field}: " in str(err.value) and reason in str(err.value)


def test_bad_features_are_named(caravan_task: TaskSpec) -> None:
    data = caravan_task.model_dump()
    data["features"][3] = {"name": "MGEMLEEF", "min": 5, "max": 1}
    with pytest.raises(TaskSpecError, match=r"features\.3\.numeric: .*max must be greater"):
        TaskSpec.from_dict(data)
    data = caravan_task.model_dump()
    data["features"].append({"name": "MAANTHUI", "min": 0, "max": 1})
    with pytest.raises(TaskSpecError, match="duplicate feature names: MAANTHUI"):
        TaskSpec.from_dict(data)
    data = caravan_task.model_dump()
    data["features"].append({"name": "Purchase", "min": 0, "max": 1})
    with pytest.raises(TaskSpecError, match="target column 'Purchase' is also listed"):
        TaskSpec.from_dict(data)
    data = caravan_task.model_dump()
    data["features"][0] = {"kind": "image", "name": "MOSTYPE"}
    with pytest.raises(TaskSpecError, match=r"features\.0: .*'image'"):
        TaskSpec.from_dict(data)
    data = caravan_task.model_dump()
    data["features"][0] = {"kind": "text", "name": "MOSTYPE"}  # a logreg reads no text
    with pytest.raises(TaskSpecError, match="text column 'MOSTYPE' needs a text-classifier"):
        TaskSpec.from_dict(data)


def test_load_task_files(tmp_path: Path, caravan_task: TaskSpec) -> None:
    as_json = tmp_path / "t.json"
    as_json.write_text(json.dumps(caravan_task.model_dump()))
    assert load_task(as_json) == caravan_task
    with pytest.raises(TaskSpecError, match="task file not found"):
        load_task(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("rounds = = 3")
    with pytest.raises(TaskSpecError, match="not valid TOML"):
        load_task(broken)
    other = tmp_path / "t.yaml"
    other.write_text("rounds: 3")
    with pytest.raises(TaskSpecError, match=r"must end in \.toml or \.json"):
        load_task(other)


INF, NAN = float("inf"), float("nan")


@pytest.mark.parametrize(("change", "field"), [
    ({"learning_rate": NAN}, "learning_rate"),
    ({"round_timeout": NAN}, "round_timeout"),
    ({"holdout_fraction": NAN}, "holdout_fraction"),
    ({"dp": {"max_grad_norm": INF}}, "dp.max_grad_norm"),
    ({"dp": {"noise_multiplier": INF}}, "dp.noise_multiplier"),
    ({"dp": {"noise_multiplier": None, "target_epsilon": INF}}, "dp.target_epsilon"),
])
def test_non_finite_numbers_are_refused(change: dict[str, object], field: str) -> None:
    """issue 15, finding 8: non-finite values were accepted (and a task that cannot be
    written as JSON broke every later answer about its run)."""
    with pytest.raises(TaskSpecError) as err:
        task_with(**change)
    assert f"{field}: " in str(err.value)


@pytest.mark.parametrize("bound", [(-INF, 1.0), (0.0, INF), (NAN, 1.0), (-1e308, 1e308)])
def test_a_numeric_range_must_be_finite(caravan_task: TaskSpec,
                                        bound: tuple[float, float]) -> None:
    data = caravan_task.model_dump()
    data["features"][1] = {"name": "MAANTHUI", "min": bound[0], "max": bound[1]}
    with pytest.raises(TaskSpecError, match=r"features\.1\.numeric"):
        TaskSpec.from_dict(data)


@pytest.mark.parametrize(("change", "field"), [
    ({"model": {"kind": "mlp", "hidden": [4096] * 2000}}, "model.hidden"),
    ({"seed": 2**70}, "seed"),
    ({"seed": -1}, "seed"),
    ({"dp": {"noise_multiplier": 1e9}}, "dp.noise_multiplier"),
    ({"batch_size": 10**9}, "batch_size"),
    ({"min_nodes": 10**9}, "min_nodes"),
    ({"dataset": "x" * 1000}, "dataset"),
])
def test_sizes_are_bounded(change: dict[str, object], field: str) -> None:
    """issue 15, finding 8: a task asked for unbounded work (2,000 hidden layers of 4,096,
    any seed, any σ)."""
    with pytest.raises(TaskSpecError) as err:
        task_with(**change)
    assert f"{field}: " in str(err.value)


def test_categories_are_bounded(caravan_task: TaskSpec) -> None:
    data = caravan_task.model_dump()
    data["features"][0] = {"kind": "categorical", "name": "MOSTYPE",
                           "categories": list(range(100_001))}
    with pytest.raises(TaskSpecError, match=r"features\.0\.categorical\.categories"):
        TaskSpec.from_dict(data)


def test_every_accepted_task_survives_its_json(caravan_task: TaskSpec) -> None:
    """What the API accepts is stored as JSON and read back for every later answer."""
    extreme = task_with(learning_rate=10, seed=2**32 - 1, batch_size=100_000,
                        dp={"noise_multiplier": 1000.0, "max_grad_norm": 1e6})
    assert TaskSpec.from_json(extreme.to_json()) == extreme


@pytest.mark.parametrize(("change", "field", "reason"), [
    ({"class_weights": [0.5]}, "class_weights", "1 weights for the target's 2 classes"),
    ({"class_weights": [0.5, 1.5]}, "class_weights.1", "less than or equal to 1"),
    ({"class_weights": [0.0, 1.0]}, "class_weights.0", "greater than 0"),
    ({"learning_rate_schedule": {"kind": "step"}}, "learning_rate_schedule.kind",
     "'constant' or 'cosine'"),
    ({"learning_rate_schedule": {"final": -0.1}}, "learning_rate_schedule.final",
     "greater than or equal to 0"),
    ({"server_optimizer": {"kind": "yogi"}}, "server_optimizer.kind", "'sgd' or 'adam'"),
    ({"server_optimizer": {"momentum": 1.0}}, "server_optimizer.momentum", "less than 1"),
])
def test_bad_training_choices_are_named(change: dict[str, object], field: str,
                                        reason: str) -> None:
    with pytest.raises(TaskSpecError) as err:
        task_with(**change)
    assert f"{field}: " in str(err.value) and reason in str(err.value)


def test_training_choices_default_to_plain_dp_sgd_and_fedavg(caravan_task: TaskSpec) -> None:
    assert task_with(class_weights=[0.1, 1.0]).class_weights == [0.1, 1.0]
    bare = TaskSpec.from_dict({k: v for k, v in caravan_task.model_dump().items()
                               if k not in {"learning_rate_schedule", "class_weights",
                                            "server_optimizer"}})
    assert bare.learning_rate_schedule.kind == "constant"
    assert bare.class_weights is None
    assert bare.server_optimizer.is_fedavg
