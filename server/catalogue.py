"""A task checked against its dataset's catalogue entry before it is started, so a typo
fails at once with a 422 instead of at every partner: partners accept exactly the schema
they declared (columns, kinds, ranges, categories, fill values, classes)."""

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
        elif known != feature:  # partners accept exactly their declared schema
            problems.append((("features", i), f"column '{feature.name}' must be declared as "
                             f"in dataset '{entry.name}': {known.model_dump_json()}"))
    if task.target.name != entry.target.name:
        problems.append((("target", "name"), f"dataset '{entry.name}' has target column "
                         f"'{entry.target.name}'"))
    elif task.target.classes != entry.target.classes:
        problems.append((("target", "classes"), f"must be the classes of dataset "
                         f"'{entry.name}', in order: "
                         f"{', '.join(str(c) for c in entry.target.classes)}"))
    return problems
