"""A task checked against its dataset's catalogue entry before it is started, so a typo
fails at once with a 422 instead of at every partner."""

from __future__ import annotations

from sangsaeng.shared.rest.catalogue import DatasetEntry
from sangsaeng.shared.task import TaskSpec


def task_problems(task: TaskSpec, entry: DatasetEntry) -> list[tuple[tuple[str | int, ...], str]]:
    """(field path, reason) for each part of `task` its dataset's schema does not have."""
    columns = {f.name: f for f in entry.features}
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for i, feature in enumerate(task.features):
        known = columns.get(feature.name)
        if known is None:
            problems.append((("features", i, "name"),
                             f"dataset '{entry.name}' has no feature column '{feature.name}'"))
        elif known.kind != feature.kind:
            problems.append((("features", i, "kind"), f"column '{feature.name}' is "
                             f"{known.kind} in dataset '{entry.name}'"))
    if task.target.name != entry.target.name:
        problems.append((("target", "name"), f"dataset '{entry.name}' has target column "
                         f"'{entry.target.name}'"))
    elif {str(c) for c in task.target.classes} != {str(c) for c in entry.target.classes}:
        problems.append((("target", "classes"), f"must be the classes of dataset "
                         f"'{entry.name}': {', '.join(str(c) for c in entry.target.classes)}"))
    return problems
