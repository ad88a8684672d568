"""The carbon methodology: parameter sets, per-tree stock, plausibility checks, crediting.

`method`, `estimate`, `plausibility` and `crediting` are pure Python (no Flask, no database);
`records` stores estimates and flags with measurements; `api` is the HTTP API and `pages`
the methodology page (`blueprints` lists them).
"""
