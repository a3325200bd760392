"""Errors every rank raises alike, and how the CLI tells them from a rank's own.

An error raised the same way on every rank (a refused setting, agreed on by
``Comm.agree``; a diverged loss, judged on the allreduced loss) is marked
``every_rank``: rank 0 prints it and every rank exits with its code. Any other
exception belongs to one rank, which must abort the job (the others would wait in
the next collective forever).
"""
from __future__ import annotations

from ..errors import BarepropError


class ReplicaMismatch(BarepropError):
    """The ranks' parameters are no longer bit-identical (an allreduce that returned
    different bytes on different ranks)."""


def mark_every_rank(exc: BaseException) -> BaseException:
    """Mark ``exc`` as raised identically on every rank (see the module)."""
    exc.every_rank = True
    return exc


def raised_on_every_rank(exc: BaseException) -> bool:
    return bool(getattr(exc, "every_rank", False))
