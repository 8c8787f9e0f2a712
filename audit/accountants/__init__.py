"""The auditor's accountants: Google's dp_accounting, a different library from the
partner's (Opacus), recomputing ε from the recorded mechanisms alone. One file each,
behind one small interface (base.py), as Opacus keeps its own (opacus/accountants/).

- RDP (rdp.py): the analysis the partner's Opacus RDP accountant claims to run, written
  independently. A claim must match it within the verification's tolerance.
- PLD (pld.py): a tighter accounting of the same mechanisms. A sound RDP claim is never
  below it; it shows how much the RDP bound over-states.
"""

from .base import Accountant
from .pld import PldAccountant
from .rdp import CLAIMED_ORDERS, RdpAccountant

__all__ = ["CLAIMED_ORDERS", "Accountant", "PldAccountant", "RdpAccountant"]
