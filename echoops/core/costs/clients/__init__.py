"""AI clients wrapped with per-call cost enforcement (a module per client library)."""

from echoops.core.costs.clients.openai import GuardedStream, estimate_tokens, guard_openai

__all__ = ["GuardedStream", "estimate_tokens", "guard_openai"]
