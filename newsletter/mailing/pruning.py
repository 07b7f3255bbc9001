"""Pruning a finished send's journal: the rows that need no look go, their totals stay."""

from __future__ import annotations

import json

from newsletter.errors import NewsletterError
from newsletter.mailing.journal import Journal, SendRunning, _alive


def prune(journal: Journal) -> dict[str, int]:
    """Drop the rows of a finished send that need no look (sent, skipped), keeping
    their totals; failed and unknown rows stay. Refused while anything is pending."""
    with journal.db.transaction(journal.lock) as db:
        row = db.execute("SELECT owner, heartbeat, pruned FROM sends WHERE issue = ?", (journal.issue,)).fetchone()
        if row is None:
            raise NewsletterError(f"issue {journal.issue} has no send to prune")
        if row[0] and _alive(row[0], row[1]):
            raise SendRunning(f"issue {journal.issue} is being sent now; prune it when the send is done")
        open_rows = db.execute("SELECT count(*) FROM deliveries WHERE issue = ? AND state IN"
                               " ('pending', 'sending')", (journal.issue,)).fetchone()[0]
        if open_rows:
            raise NewsletterError(f"issue {journal.issue} still has {open_rows} recipient(s) to send to",
                                  hint="finish the send first; a pruned journal cannot resume")
        totals = json.loads(row[2] or "{}")
        for state, n in db.execute("SELECT state, count(*) FROM deliveries WHERE issue = ? AND state IN"
                                   " ('sent', 'skipped') GROUP BY state", (journal.issue,)):
            totals[state] = totals.get(state, 0) + n
        dropped = db.execute("DELETE FROM deliveries WHERE issue = ? AND state IN ('sent', 'skipped')",
                             (journal.issue,)).rowcount
        db.execute("UPDATE sends SET pruned = ? WHERE issue = ?", (json.dumps(totals), journal.issue))
    return {"dropped": dropped, **totals}
