"""Payouts (DESIGN.md §8): each paid order split by its bundle's policy, households' shares
accrued pro rata to their grams, T+1 settlement batches, and the finance screens (`pages`:
HTML, `api`: JSON; `blueprints` lists them)."""
