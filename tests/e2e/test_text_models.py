"""A startup brings its own pretrained text model, end to end on loopback: it uploads base
weights through the API, three partners fine-tune them with DP on private reviews — the
encoder frozen (head mode) in one run, adapters trained in another — and the startup
takes home a model that loads into the registry architecture and beats its base on the
partners' holdouts. Every ε is the ledger's and survives the auditor's recomputation."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from sangsaeng.api_client import SangsaengApi
from sangsaeng.audit.fetch import AuditApi, fetch
from sangsaeng.audit.verify import LoadedLedger, verify
from sangsaeng.client.data import partner_data
from sangsaeng.client.ledger import (
    BASE_ROUND,
    COMMIT,
    EVALUATE,
    RESERVE,
    Ledger,
    export_ledger,
    init_ledger,
)
from sangsaeng.client.policy import PartnerPolicy
from sangsaeng.demo.baseline import pooled_holdout_scores
from sangsaeng.demo.data import write_partitions, write_policy, write_schema
from sangsaeng.demo.reviews import DESCRIPTION, partners_table, public_table, train_base_model
from sangsaeng.server.accounts import Role, create_token
from sangsaeng.server.deployment.coordinator import Coordinator
from sangsaeng.server.runs.states import COMPLETED
from sangsaeng.shared.models import build_model, load_model, to_safetensors
from sangsaeng.shared.rest.catalogue import DatasetEntry
from sangsaeng.shared.rest.runs import RunOut
from sangsaeng.shared.task import TaskSpec

from ..support.coordinator import join
from ..support.processes import flower_processes
from ..support.records import until_ended

PARTNERS = ["hanbit-bank", "daehan-insurance", "minjung-mutual"]
ROWS_EACH = 400  # 320 training rows each: Poisson rate 32 / 320, the policy's maximum
COMMON = {
    "dataset": "reviews", "features": [{"kind": "text", "name": "review"}],
    "target": {"name": "score", "classes": ["other", "great"]},
    "local_epochs": 2, "batch_size": 32, "learning_rate": 2.0, "min_nodes": 3,
    "round_timeout": 240, "seed": 7,
    "dp": {"max_grad_norm": 1.0, "delta": 1e-5, "noise_multiplier": 0.6,
           "evaluation_noise_multiplier": 5.0},
}
HEAD = TaskSpec.from_dict({**COMMON, "rounds": 3, "model": {
    "kind": "text-classifier", "encoder": "all-MiniLM-L6-v2", "mode": "head",
    "max_tokens": 64}})
ADAPTERS = TaskSpec.from_dict({**COMMON, "rounds": 2, "model": {
    "kind": "text-classifier", "encoder": "all-MiniLM-L6-v2", "mode": "adapters",
    "max_tokens": 32, "adapter_layers": 1, "adapter_rank": 4}})


@dataclass
class Done:
    task: TaskSpec
    base: dict[str, torch.Tensor]
    run: RunOut
    model: bytes


@dataclass
class Deployment:
    runs: list[Done]
    policies: list[Path]
    verification_ok: bool
    findings: list[str]


def base_for(task: TaskSpec) -> dict[str, torch.Tensor]:
    """The startup's base model: its head trained without DP on a handful of public
    reviews, a weak start (adapters start at zero, as FFA-LoRA's B does)."""
    head_task = task.model_copy(update={"model": task.model.model_copy(
        update={"mode": "head", "max_tokens": task.model.max_tokens})})
    head = train_base_model(head_task, public_table().head(30), epochs=2)
    state = build_model(task, seed=task.seed).state_dict()
    if task.model.mode == "head":
        return head
    return {**state, **{f"head.{k}": v for k, v in head.items()}}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    workdir = tmp_path_factory.mktemp("text")
    table = partners_table().head(ROWS_EACH * len(PARTNERS))
    paths = write_partitions(PARTNERS, workdir / "partners", table=table)
    schema = write_schema(workdir / "reviews.catalogue.json", HEAD, paths, DESCRIPTION)
    bases = {task.model.mode: base_for(task) for task in (HEAD, ADAPTERS)}
    digests = [hashlib.sha256(to_safetensors(b)).hexdigest() for b in bases.values()]
    policies = []
    for name, path in zip(PARTNERS, paths, strict=True):
        policy = write_policy(workdir / "partners" / f"{name}.policy.toml", name, "reviews",
                              path, 50.0, schema, ROWS_EACH, models=("text-classifier",),
                              base_models=tuple(digests), text_modes=("head", "adapters"))
        init_ledger(PartnerPolicy.load(policy), "reviews")
        policies.append(policy)
    done = []
    with Coordinator(workdir, f"sqlite:///{workdir / 'store.db'}") as coordinator:
        store = coordinator.store
        store.catalogue.put("reviews", DatasetEntry.from_file(schema).model_dump_json())
        token = create_token(store, "acme-ml", Role.STARTUP, "acme")
        for name, policy in zip(PARTNERS, policies, strict=True):
            join(coordinator, name, policy)
        with SangsaengApi(coordinator.api_url, token, ca_file=coordinator.ca_file) as api:
            for task in (HEAD, ADAPTERS):
                base = bases[task.model.mode]
                uploaded = api.upload_model(to_safetensors(base))
                task = task.model_copy(update={"base_model": uploaded.sha256})
                run = api.start_run(task)
                run = until_ended(api, run.id, timeout=900)
                assert run.status == COMPLETED, run.reason
                done.append(Done(task, base, run, api.model(run.id)))
        auditor = create_token(store, "kfsa", Role.AUDITOR)
        with AuditApi(coordinator.api_url, auditor, ca_file=coordinator.ca_file) as audit_api:
            data = fetch(audit_api)
        ledgers = [LoadedLedger(p.name, export_ledger(PartnerPolicy.load(p), "reviews"))
                   for p in policies]
        verification = verify(data, ledgers)
    assert flower_processes() == []
    yield Deployment(done, policies, verification.ok,
                     [str(f) for f in verification.failures] + verification.incomplete)


@pytest.mark.parametrize("mode", ["head", "adapters"])
def test_the_fine_tuned_model_beats_its_base_on_the_partners_holdouts(
        deployment: Deployment, mode: str) -> None:
    [done] = [d for d in deployment.runs if d.task.model.mode == mode]
    assert done.run.status == COMPLETED, done.run.reason
    parts = [partner_data(p, done.task) for p in deployment.policies]
    improved = load_model(done.task, done.model)  # the registry architecture takes it
    base = load_model(done.task, to_safetensors(done.base))
    base_accuracy, base_auc = pooled_holdout_scores(parts, base)
    accuracy, auc = pooled_holdout_scores(parts, improved)
    assert base_auc is not None and auc is not None
    assert auc > base_auc + 0.02, f"AUC {base_auc:.3f} -> {auc:.3f}"
    print(f"{mode}: accuracy {base_accuracy:.3f} -> {accuracy:.3f}, "
          f"AUC {base_auc:.3f} -> {auc:.3f}")
    # the receipt: the partners' DP releases of the base model and of the last round
    receipt = done.run.receipt
    assert receipt is not None and receipt.final_round == done.task.rounds
    assert receipt.base_partners == receipt.final_partners == 3
    assert {m.metric for m in receipt.metrics} == {"loss", "accuracy"}
    assert done.run.rounds[0].round == BASE_ROUND
    assert 0 <= base_accuracy <= 1 and 0 <= accuracy <= 1


def test_only_trained_parameters_travel(deployment: Deployment) -> None:
    for done in deployment.runs:
        shipped = load_model(done.task, done.model).state_dict()
        assert shipped.keys() == done.base.keys()
        size = sum(t.numel() for t in shipped.values())
        assert size < 10_000  # a head (and rank-4 adapters), never the 22.7M encoder
        for partner in done.run.rounds[1].privacy:  # the report says what was noised
            assert partner.steps > 0 and partner.trained_parameters == size


def test_every_epsilon_is_the_ledgers_and_the_auditor_agrees(deployment: Deployment) -> None:
    assert deployment.verification_ok, deployment.findings
    for policy_path in deployment.policies:
        policy = PartnerPolicy.load(policy_path)
        with Ledger(policy.ledger_path("reviews")) as ledger:
            assert ledger.verify().ok
            kinds = [(e.kind, e.round) for e in ledger.entries()]
            head_rounds = [(RESERVE, 0), (EVALUATE, 0), (COMMIT, 0)] + [
                step for r in range(1, HEAD.rounds + 1)
                for step in ((RESERVE, r), (COMMIT, r), (EVALUATE, r))]
            assert kinds[:len(head_rounds)] == head_rounds
            lifetime = ledger.spending(1e-5).lifetime
        reports = [p for d in deployment.runs for r in d.run.rounds for p in r.privacy
                   if p.partner == policy.partner]
        assert reports[-1].lifetime_epsilon == pytest.approx(lifetime)
        [base_report] = [p for p in deployment.runs[0].run.rounds[0].privacy
                         if p.partner == policy.partner]
        assert base_report.steps == 0 and base_report.epsilon > 0


def test_the_partner_cache_keeps_encoder_outputs_at_home(deployment: Deployment) -> None:
    for policy_path in deployment.policies:
        cache = PartnerPolicy.load(policy_path).cache_path()
        entries = sorted(cache.glob("*.npy"))
        assert len(entries) == 2  # one per encoder setting (head, adapters), each current
        assert all(np.load(e).shape[0] == ROWS_EACH for e in entries)
