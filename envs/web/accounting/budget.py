"""Caps on provider calls and money, per run and per env, with a price per call.

Users ask what a training run will cost in search calls and how to stay under a
monthly quota. Every provider call reserves its price from the run's ledger and
from the env's before it is sent; a call the budget cannot cover is not sent and
the model reads why. Cache and snapshot hits are free. A failed call is given
back whole, its price and its place under the call caps (providers bill answered
requests, and an outage of a whole step batch must not use up a run's searches).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Mapping

# USD per search request at list price (pay-as-you-go tiers, 2025): Serper 50k queries for $50,
# Brave Search API $5 per 1,000, Tavily $0.008 per basic-search credit, SearxNG self-hosted.
# Plans differ: override with ``prices_usd={"serper": ...}``. "page" prices one page fetch.
DEFAULT_PRICES_USD: dict[str, float] = {"serper": 0.001, "brave": 0.005, "tavily": 0.008, "searxng": 0.0, "page": 0.0}


def price_table(overrides: Mapping[str, float] | None) -> dict[str, float]:
    """The default prices with ``overrides`` applied; a negative or non-numeric price is refused."""
    table = dict(DEFAULT_PRICES_USD)
    for name, price in (overrides or {}).items():
        if isinstance(price, bool) or not isinstance(price, (int, float)) or price < 0:
            raise ValueError(f"prices_usd[{name!r}] must be a number >= 0, got {price!r}")
        table[str(name)] = float(price)
    return table


@dataclass(frozen=True)
class BudgetLimits:
    """``None`` means no cap."""

    max_search_calls: int | None = None
    max_cost_usd: float | None = None

    def __post_init__(self) -> None:
        if self.max_search_calls is not None and self.max_search_calls < 0:
            raise ValueError(f"max_search_calls must be >= 0, got {self.max_search_calls}")
        if self.max_cost_usd is not None and self.max_cost_usd < 0:
            raise ValueError(f"max_cost_usd must be >= 0, got {self.max_cost_usd}")


class Ledger:
    """What one scope (the run, or one env) has spent, against its limits; safe across threads."""

    def __init__(self, limits: BudgetLimits, scope: str) -> None:
        self.limits = limits
        self.scope = scope
        self.calls = 0
        self.cost_usd = 0.0
        self._lock = threading.Lock()

    def reserve(self, price: float, search: bool) -> str | None:
        """Take one call (if ``search``) and ``price``; returns why not (and takes nothing) when over a limit."""
        with self._lock:
            calls, cap = self.limits.max_search_calls, self.limits.max_cost_usd
            if search and calls is not None and self.calls + 1 > calls:
                return f"{self.scope}'s limit of {calls} search calls is used up"
            if cap is not None and price > 0 and self.cost_usd + price > cap + 1e-12:
                return f"{self.scope}'s budget of ${cap:g} is spent (${self.cost_usd:.4f} used)"
            self.calls += int(search)
            self.cost_usd += price
            return None

    def unreserve(self, price: float, search: bool) -> None:
        """Undo a reservation: its call was never sent, or failed."""
        with self._lock:
            self.calls -= int(search)
            self.cost_usd -= price


def reserve_all(ledgers: list[Ledger], price: float, search: bool) -> str | None:
    """Reserve from every ledger or from none: the first refusal undoes the reservations before it."""
    taken: list[Ledger] = []
    for ledger in ledgers:
        refusal = ledger.reserve(price, search)
        if refusal is not None:
            for earlier in taken:
                earlier.unreserve(price, search)
            return refusal
        taken.append(ledger)
    return None
