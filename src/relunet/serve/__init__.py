"""Serving: TF Serving's REST API over a folder of versions, batching, health, metrics, a page.
May import: base, config, reading, inference, preflight."""
