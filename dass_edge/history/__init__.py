"""The latency history: one row per gated or recorded bench run (store), change points in each series
(changepoints), an offline trend page and a CI job summary (page, summary)."""
