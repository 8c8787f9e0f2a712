"""`sangsaeng audit empirical`: a one-run privacy audit of the partner's own DP-SGD code.

It lives here, in the assembling layer, because it must run the partner's training code
path itself — client/dp_sgd.py's plan and train, with client/ghost_step.py's Poisson
sampler, clipping, Gaussian noise and step — and account it with shared/accounting.py,
while the audit role may not import the client (the import contracts in pyproject.toml).
Moving the DP step into shared/ would hand the coordinator's and the auditor's processes
the partner's training code for no use of theirs; instead the audit role keeps what is
purely the auditor's — the statistics of the bound (audit/one_run.py), the result, its
verdict and how it is shown (audit/empirical.py, audit/report.py) — and this package only
assembles: canaries (canaries.py), one training run per threat model (white_box.py,
black_box.py), the whole audit (run.py), its command (cli.py). faults.py breaks the
mechanism on purpose, for tests and the benchmark only.
"""
