"""Regenerate docs/benchmarks.md: run every benchmark under bench/ in turn and write what
each printed, with the machine and the command.

    make bench

Each benchmark's output is shown live and pasted as printed; nothing is edited by hand.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "benchmarks.md"
BENCHES = [
    ("DP-SGD step", "bench/dp_step.py",
     "Local training throughput at batch 256 on 51,200 rows held as tensors: plain PyTorch SGD "
     "(no DP, the floor), Opacus 1.6 in `hooks` mode and in `ghost` mode (its fast gradient "
     "clipping), and Sangsaeng's ghost-norm step "
     "(`client/ghost_step.py`, what `client/dp_sgd.train` runs). A ratio is the median over "
     "reps of DP step time over the plain step time measured just before it; the target "
     "for Sangsaeng's step is ≤ 1.3 on the MLP."),
    ("Accounting", "bench/accounting.py",
     "The partner's cap check (`Ledger.reserve`: verify the chain, compose every reserve with "
     "the run's plan, write) as its ledger grows, with the PLD accountant against the RDP "
     "accountant Sangsaeng used before, taking turns in one run; and how much less ε the PLD "
     "accountant claims for the same history. Target: well under a second for hundreds of "
     "entries."),
    ("Round latency", "bench/round.py",
     "Wall time per round with 3 partner SuperNodes on loopback: Sangsaeng's ServerApp and "
     "ClientApp against a bare Flower FedAvg app (`bench/bare_flower_app.py`) with the same "
     "model, data and task — as a startup would write it, and with Sangsaeng's 0.1 s reply "
     "loop, so that only what Sangsaeng does differently remains (its DP-SGD step instead of "
     "autograd SGD, policy, ledger, accounting, store) — taking turns in one run; then where "
     "the time goes. Target: ≤ 1.05 against both."),
    ("Pretrained text models", "bench/text.py",
     "A startup's all-MiniLM-L6-v2 with a classification head on the text demo's reviews: "
     "the DP step in each training mode against the non-private step and Opacus on the "
     "same trained parameters, a partner's round (encoding, once; then training), and what "
     "federated DP fine-tuning gains over the startup's base model at ε = 3 and 8, against "
     "non-private centralized fine-tuning of the same parameters."),
    ("Utility", "bench/utility.py",
     "What a federated DP model reaches for its ε: the demo task's MLP, trained by 3 partners "
     "holding slices of a real table (ISLP's Caravan, the demo's, and Default), at ε 1, 3, 5 "
     "and 8 per partner for the whole run (evaluation releases included), against "
     "non-private centralized training of the same model on the same rows; AUC on the "
     "partners' held-out rows, median over seeds. The partners' planning and DP-SGD "
     "(`client/dp_sgd.py`) and the coordinator's averaging and server optimizer "
     "(`server/flower/strategy.py`) run in one process. Then what each training choice "
     "adds on Caravan at ε 5. The goal: ≥ 0.95 of the centralized AUC at ε 5 on Caravan."),
    ("Empirical audit", "bench/empirical_audit.py",
     "What `sangsaeng audit empirical` proves and costs on the demo task's mechanism (a demo "
     "partner's: σ 3.9, q = 1/6, 480 steps): the ε lower bound one training run proves at "
     "95 % confidence, white-box (Dirac gradient canaries, every step seen) and black-box "
     "(crafted records, final model only), on the correct DP-SGD and with the noise scaled "
     "to 0.1 or clipping off (test-only faults), against the ε the accountant claims; "
     "and the wall time of one audit (both runs)."),
    ("Scale", "bench/scale.py",
     "Sangsaeng's ServerApp and ClientApp in Flower's simulation engine (a SuperLink started "
     "with `--simulation`, Ray) with 10, 100 and 1,000 virtual partners: time per round, peak "
     "memory, CPU, and how they grow."),
]


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.machine())
    kib = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")))
    versions = ", ".join(f"{name} {importlib.metadata.version(name)}"
                         for name in ("torch", "opacus", "flwr", "ray"))
    return (f"{cpu}, {os.cpu_count()} cores, {kib / 2**20:.0f} GiB RAM, no GPU; "
            f"{platform.system()} {platform.release()}; Python {platform.python_version()}; "
            f"{versions}")


def run(script: str) -> tuple[str, float]:
    """The script's standard output (also echoed live) and its wall time."""
    start = time.monotonic()
    with subprocess.Popen([sys.executable, script], cwd=ROOT, stdout=subprocess.PIPE,
                          text=True, bufsize=1) as proc:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            print(line, end="", flush=True)
            lines.append(line)
    if proc.returncode != 0:
        raise SystemExit(f"{script} failed (exit {proc.returncode}); {OUT} left as it was")
    return "".join(lines).strip(), time.monotonic() - start


def main() -> None:
    """Every benchmark; or, with script paths as arguments, only those, their sections
    rewritten in place (each section says the date it was run)."""
    only = sys.argv[1:]
    unknown = set(only) - {script for _, script, _ in BENCHES}
    if unknown:
        raise SystemExit(f"no benchmark {', '.join(sorted(unknown))}; they are: "
                         + ", ".join(script for _, script, _ in BENCHES))
    old = OUT.read_text() if only and OUT.exists() else ""
    kept = _sections(old)
    full = re.search(r"\) on (\d{4}-\d{2}-\d{2})", old)
    full_run = full.group(1) if full else dt.date.today().isoformat()
    sections = []
    for title, script, about in BENCHES:
        if only and script not in only:
            sections.append(kept.get(title, f"## {title}\n\nnot run yet\n"))
            continue
        print(f"== {script}", flush=True)
        output, seconds = run(script)
        rerun = f", rerun alone on {dt.date.today().isoformat()}" if only else ""
        sections.append(f"## {title}\n\n{about}\n\n`.venv/bin/python {script}` "
                        f"({seconds / 60:.1f} min{rerun}):\n\n{output}\n")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(
        "# Benchmarks\n\n"
        f"Generated by `make bench` (`bench/report.py`) on {full_run} (`bench/report.py "
        "SCRIPT` reruns one section, which then says when); do not edit by hand. Speeds "
        "vary between runs on a shared machine: compare the ratios, which are measured "
        "within one run.\n\n"
        f"Machine: {machine()}.\n\n" + "\n".join(sections))
    print(f"wrote {OUT}")


def _sections(text: str) -> dict[str, str]:
    """The page's sections by title, each as written (from its `## ` line)."""
    parts = text.split("\n## ")[1:]
    return {part.split("\n", 1)[0]: "## " + part.rstrip("\n") + "\n" for part in parts}


if __name__ == "__main__":
    main()
