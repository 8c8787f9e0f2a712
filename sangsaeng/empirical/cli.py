"""`sangsaeng audit empirical`: registered under the auditor's commands by sangsaeng/cli.py
(the audit role's own CLI may not import the client code this runs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from sangsaeng.audit.empirical import ThreatModel, print_empirical
from sangsaeng.client.dp_sgd import PlanLimits
from sangsaeng.client.policy import PartnerPolicy
from sangsaeng.shared.cli import REFUSED, failing_on
from sangsaeng.shared.preprocess import DataValidationError
from sangsaeng.shared.task import TaskSpecError, load_task

from .run import (
    DEFAULT_CANARIES,
    AuditError,
    AuditSettings,
    Planning,
    run_audit,
    threat_models,
)

console = Console()


def empirical_command(
    task: Annotated[Path, typer.Option(help="The task file (.toml or .json) whose DP-SGD is "
                                            "audited.")],
    data: Annotated[Path | None, typer.Option(
        help="The partner's data file (.csv or .parquet); it never leaves this machine. "
             "Default: the one the --policy names for the task's dataset.")] = None,
    policy: Annotated[Path | None, typer.Option(
        help="The partner's policy file: plan as the partner's client does, within its "
             "limits and from its declared row count.")] = None,
    canaries: Annotated[int, typer.Option(help="Canaries m per threat model (white-box: at "
                                               "most the model's parameter count).")]
    = DEFAULT_CANARIES,
    confidence: Annotated[float, typer.Option(help="Confidence of the lower bound.")] = 0.95,
    threat: Annotated[list[str] | None, typer.Option(
        help="white-box or black-box; repeat for both (the default).")] = None,
    seed: Annotated[int | None, typer.Option(
        help="Seed of the canaries' draw and of the training (default: from the OS; the "
             "result records it).")] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="The result as JSON; pass it "
                                         "to `sangsaeng audit report --empirical`.")]
    = Path("empirical-audit.json"),
) -> None:
    """Test empirically that the partner's DP-SGD spends no more than its accountant claims:
    one training run of the partner's own code with canaries, and a lower bound on ε at the
    given confidence (one-run auditing, Steinke, Nasr, Jagielski 2023). Exit 1 if a bound
    exceeds the claimed ε ("fails": the code does not do what it accounts); 0 if none does
    ("consistent": which proves no privacy, only that no contradiction was found)."""
    with failing_on(TaskSpecError, AuditError, DataValidationError, ValueError):
        spec = load_task(task)
        try:
            settings = AuditSettings(threat_models=threat_models(threat or ["white-box",
                                                                            "black-box"]),
                                     canaries=canaries, confidence=confidence, seed=seed)
        except ValidationError as err:  # name the option, as typer would
            raise AuditError("; ".join(f"--{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                       for e in err.errors())) from None
        planning = Planning()
        if policy is not None:
            rules = PartnerPolicy.load(policy).dataset(spec.dataset)
            planning = Planning(limits=PlanLimits(max_sample_rate=rules.max_sample_rate,
                                                  max_local_epochs=rules.max_local_epochs),
                                public_rows=rules.public_train_rows)
            data = data or rules.data_path
        if data is None:
            raise AuditError("give --data, or --policy to read the dataset it names")
    progress = Progress(SpinnerColumn(), TextColumn("[progress.description]{task.description}"),
                        BarColumn(), MofNCompleteColumn(), TextColumn("steps"),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=console)
    bars: dict[ThreatModel, TaskID] = {}

    def advance(threat_model: ThreatModel, done: int, total: int) -> None:
        if threat_model not in bars:
            bars[threat_model] = progress.add_task(f"{threat_model} run, {canaries} canaries",
                                                   total=total)
        progress.update(bars[threat_model], completed=done)

    with failing_on(AuditError, DataValidationError), progress:
        result = run_audit(spec, data, settings, advance, planning)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result.model_dump(mode="json"), indent=1))
    print_empirical(result, console)
    console.print(f"result: {output} (seed {result.seed}, {result.seconds:.1f} s); for the "
                  f"report: sangsaeng audit report --empirical {output}")
    if result.verdict == "fails":
        raise typer.Exit(REFUSED)
