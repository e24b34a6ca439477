"""Customer portal (phase 78).

A purchase ledger (`ledger`) filled by file imports (`importer`), the Stripe sync
(`stripe/`) and the demo; `access` lists a customer's purchases with signed, expiring links,
serves downloads (stored files, Stripe URLs or receipts rendered by `documents`), handles
one-click unsubscribe, and audits every access in `portal_access.ndjson`.

Interface to the other controls: `fees_by_day` (Stripe fees for the cost guardrails) and
`import_purchases`; the rest is for the CLI and the HTTP routes.
"""

from echoops.core.portal.access import (
    AUDIT_FILE,
    DOWNLOAD_PATH,
    PURPOSE_DOWNLOAD,
    PURPOSE_UNSUBSCRIBE,
    UNSUBSCRIBE_PATH,
    Document,
    audit,
    download,
    link,
    receipts,
    set_subscription,
    unsubscribe_one_click,
    unsubscribe_url,
    unsubscribe_view,
    unsubscribed_page,
    verify,
)
from echoops.core.portal.importer import import_purchases
from echoops.core.portal.ledger import fees_by_day

__all__ = [
    "AUDIT_FILE",
    "DOWNLOAD_PATH",
    "PURPOSE_DOWNLOAD",
    "PURPOSE_UNSUBSCRIBE",
    "UNSUBSCRIBE_PATH",
    "Document",
    "audit",
    "download",
    "fees_by_day",
    "import_purchases",
    "link",
    "receipts",
    "set_subscription",
    "unsubscribe_one_click",
    "unsubscribe_url",
    "unsubscribe_view",
    "unsubscribed_page",
    "verify",
]
