"""The registry: verification, issuance into 1-tonne serials, bundles, orders, payments,
certificates. See docs/registry.md.

One module per domain noun. Routes (listed in `blueprints`): `api` (JSON: verification,
issuance, bundles), `market` (JSON: the public market, orders, payment notifications,
certificates), `pages` (HTML: bundles, buying, orders, certificates), `checkout` (HTML:
paying by WeChat Pay, Alipay or the test provider), `buyers` (a buyer's certificates by
phone), `finance_pages` (HTML: payments received, refunds, statements). `chain_hooks` is what
the registry writes to the ledger.
"""
