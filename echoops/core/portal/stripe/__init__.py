"""Stripe integration: `client` (authenticated list paging with backoff) and `sync` (charges
and invoices into the purchase ledger). The cost guardrails read fees through `client`."""
