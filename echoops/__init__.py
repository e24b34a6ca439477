"""echoops: SLOs, pager, customer portal, cost guardrails and autoscale for a small SaaS."""

__version__ = "0.1.0"
