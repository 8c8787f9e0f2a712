"""The auditor's accountants, recomputing ε from the recorded mechanisms alone. One file
each, behind one small interface (base.py), as Opacus keeps its own (opacus/accountants/).

- PRV (prv.py): Opacus' PRV accountant, tight, with certified bounds either side. A
  different library and method from the partner's PLD accountant (dp_accounting): a sound
  claim is never below its lower bound.
- RDP (rdp.py): dp_accounting's RDP, the looser bound Sangsaeng claimed before its PLD
  accountant (and older ledgers' reports still carry). No sound claim is above it.
"""

from .base import Accountant
from .prv import Bounds, HistoryTooLarge, PrvAccountant
from .rdp import RdpAccountant

__all__ = ["Accountant", "Bounds", "HistoryTooLarge", "PrvAccountant", "RdpAccountant"]
