"""`sangsaeng demo`: every role on one machine, on real data (run.py drives it; data.py
holds the real table and the partners' files; baseline.py the non-private comparison)."""
