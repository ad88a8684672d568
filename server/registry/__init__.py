"""The registry: verification, issuance into 1-tonne serials, bundles, orders, certificates.

One module per domain noun; `api` and `pages` hold the routes. See docs/registry.md.
"""
