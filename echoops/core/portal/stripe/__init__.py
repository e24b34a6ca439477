"""Stripe integration: `client` (the pinned API version, documented list filters, paging with
backoff), `shapes` (reading Stripe objects of this and older versions), `payments` (which
purchase each payment belongs to, across syncs) and `sync` (invoices and charges into the
purchase ledger, one purchase per payment). The cost guardrails read fees through `client`."""
