"""`sipang reconcile`: recompute every ledger item from the business tables and compare it
with what the contract holds.

Nothing here trusts the chain outbox's payloads: report anchors come from `verifications`,
issuance ranges from `issuances` and `tonnes`, retirements from `certificates` and
`retirements`, split policies from `bundles`, accruals and settlements (and each
household's totals) from `accruals` and `settlements`, household hashes from the household
codes; what the money and tonnes rest on from `server.anchors` (measurements behind each
issuance, paid orders, bank details at settlement, retired tonnes, the audit log's head).
Each difference names its table and row id.

`items` holds what is compared, `compare` the comparison, `anchored` the anchors' part.
"""

from server.reconcile.compare import Reconciler, reconcile
from server.reconcile.items import Check, Difference

__all__ = ["Check", "Difference", "Reconciler", "reconcile"]
