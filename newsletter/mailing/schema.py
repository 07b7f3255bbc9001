"""The store's schema, as the migrations that build it: each entry takes a store from
version N to N+1 (SQLite's ``PRAGMA user_version``, PostgreSQL's ``schema_version``
table), in one transaction (see ``db.Database.migrate``).

Each is written in SQLite's SQL, which ``dialects.ddl`` turns into PostgreSQL's (wider
numbers, identity ids, text compared byte by byte as in SQLite). Where more differs, an
entry is a script per dialect (``_postgresql``): PostgreSQL has no rowid, so its
subscribers and deliveries get ``seq``, an identity column in the order rows came, for
the keyset pages that SQLite reads by rowid (``ORDER``); and no GLOB.
"""

from __future__ import annotations

from newsletter.mailing.dialects import POSTGRES, SQLITE, Migration, ddl

ORDER = {SQLITE: "rowid", POSTGRES: "seq"}  # the column that orders subscribers and deliveries as they came


def _postgresql(script: str, *edits: tuple[str, str]) -> dict[str, str]:
    """A migration whose PostgreSQL script is SQLite's with each (old, new) edit made once."""
    changed = script
    for old, new in edits:
        if changed.count(old) != 1:
            raise ValueError(f"the edit of {old!r} does not apply exactly once")
        changed = changed.replace(old, new)
    return {SQLITE: script, POSTGRES: ddl(changed, POSTGRES)}


_SEQ = "seq INTEGER GENERATED ALWAYS AS IDENTITY,  -- the order rows came in (SQLite: rowid)\n        "

# Each entry migrates the schema from version N to N+1.
MIGRATIONS: list[Migration] = [
    _postgresql(
    """
    CREATE TABLE subscribers (
        email_key TEXT PRIMARY KEY,          -- the address, lower-cased
        email TEXT NOT NULL,                 -- as given
        name TEXT NOT NULL DEFAULT '',
        fields TEXT NOT NULL DEFAULT '{}',   -- extra CSV columns, as JSON
        status TEXT NOT NULL CHECK (status IN ('subscribed', 'unsubscribed', 'bounced')),
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE events (                    -- the consent record: every change, when, why
        id INTEGER PRIMARY KEY,
        email_key TEXT NOT NULL,
        at TEXT NOT NULL,
        change TEXT NOT NULL,
        source TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX events_by_address ON events (email_key);
    CREATE TABLE deliveries (                -- the send journal, one row per issue and address
        issue INTEGER NOT NULL,
        email_key TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'unknown')),
        attempts INTEGER NOT NULL DEFAULT 0,
        code INTEGER,
        detail TEXT NOT NULL DEFAULT '',
        updated_at TEXT NOT NULL,
        PRIMARY KEY (issue, email_key)
    );
    CREATE INDEX deliveries_by_state ON deliveries (issue, state);
    """,
    ("email_key TEXT PRIMARY KEY,", _SEQ.replace("IDENTITY,", "IDENTITY UNIQUE,") + "email_key TEXT PRIMARY KEY,"),
    ("issue INTEGER NOT NULL,\n        email_key TEXT NOT NULL,\n        state", _SEQ + "issue INTEGER NOT NULL,\n"
     "        email_key TEXT NOT NULL,\n        state"),
    ("deliveries (issue, state);", "deliveries (issue, state, seq);"),  # SQLite's index holds the rowid
    ),
    # 2: `skipped` (unsubscribed during the send), why a row failed (`kind`), and one row
    # per issue's send: its fixed audience, who is sending it now, its pruned totals.
    _postgresql(
    """
    CREATE TABLE deliveries_new (
        issue INTEGER NOT NULL,
        email_key TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'unknown', 'skipped')),
        attempts INTEGER NOT NULL DEFAULT 0,
        code INTEGER,
        detail TEXT NOT NULL DEFAULT '',
        kind TEXT NOT NULL DEFAULT '',       -- failed: address | refused | unsupported | temporary
        updated_at TEXT NOT NULL,
        PRIMARY KEY (issue, email_key)
    );
    INSERT INTO deliveries_new (issue, email_key, state, attempts, code, detail, kind, updated_at)
        SELECT issue, email_key, state, attempts, code, detail,
               CASE WHEN state = 'failed' AND detail GLOB '*5.1.[0-9]*' THEN 'address'
                    WHEN state = 'failed' THEN 'refused' ELSE '' END, updated_at FROM deliveries;
    DROP TABLE deliveries;
    ALTER TABLE deliveries_new RENAME TO deliveries;
    CREATE INDEX deliveries_by_state ON deliveries (issue, state);
    CREATE TABLE sends (
        issue INTEGER PRIMARY KEY,
        started_at TEXT NOT NULL,
        owner TEXT NOT NULL DEFAULT '',      -- "pid@host" of the send running now, '' when none
        heartbeat REAL NOT NULL DEFAULT 0,   -- unix time the owner last said it is alive
        audience INTEGER NOT NULL DEFAULT 0, -- 1 once the first run has fixed who the issue is for
        pruned TEXT NOT NULL DEFAULT ''      -- JSON totals once `journal prune` dropped the rows
    );
    INSERT INTO sends (issue, started_at, audience) SELECT issue, min(updated_at), 1 FROM deliveries GROUP BY issue;
    """,
    ("issue INTEGER NOT NULL,\n        email_key TEXT NOT NULL,\n        state", _SEQ + "issue INTEGER NOT NULL,\n"
     "        email_key TEXT NOT NULL,\n        state"),
    ("detail GLOB '*5.1.[0-9]*'", "detail ~ '5\\.1\\.[0-9]'"),
    ("updated_at FROM deliveries;", "updated_at FROM deliveries ORDER BY seq;"),
    ("deliveries (issue, state);", "deliveries (issue, state, seq);"),
    ),
    # 3: every web sign-up, and the confirmation mail that `serve` delivers outside the request.
    """
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        email TEXT NOT NULL,
        mailbox TEXT NOT NULL,               -- lower-cased, +suffix dropped: the hourly rule's key
        client TEXT NOT NULL,                -- who asked: the per-client limit's key
        created_at REAL NOT NULL,            -- unix time
        state TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'failed', 'subscribed', 'limited')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at REAL NOT NULL DEFAULT 0,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX outbox_due ON outbox (state, next_at);
    CREATE INDEX outbox_by_mailbox ON outbox (mailbox, created_at);
    CREATE INDEX outbox_by_client ON outbox (client, created_at);
    CREATE INDEX outbox_by_time ON outbox (created_at);
    """,
    # 4: what `publish` and the first send make public; scheduled sends; inbound mail
    # (bounces, complaints, mailto unsubscribes) processed once; soft bounces counted.
    """
    CREATE TABLE published (
        issue INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        how TEXT NOT NULL                    -- 'send' (its first run started) or 'publish'
    );
    INSERT INTO published (issue, at, how) SELECT issue, started_at, 'send' FROM sends;
    CREATE TABLE schedules (
        issue INTEGER PRIMARY KEY,
        path TEXT NOT NULL,                  -- the issue file, as given
        due REAL NOT NULL,                   -- unix time
        created_at TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('scheduled', 'started', 'cancelled')),
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE inbound (
        id TEXT PRIMARY KEY,                 -- Message-ID, or a hash of the message
        kind TEXT NOT NULL,                  -- hard | soft | complaint | unsubscribe | ignored
        email_key TEXT,
        at TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX inbound_by_address ON inbound (email_key, kind);
    """,
    # 5: subscribers' tags (segments); the issue an unsubscribe or complaint came from;
    # the links of a sent issue and the clicks through serve's redirect.
    """
    ALTER TABLE subscribers ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';  -- JSON array of text
    ALTER TABLE events ADD COLUMN issue INTEGER;  -- the issue whose link or message led to it
    ALTER TABLE inbound ADD COLUMN issue INTEGER;
    CREATE TABLE links (                     -- every tracked link of an issue, numbered
        issue INTEGER NOT NULL,
        id INTEGER NOT NULL,
        url TEXT NOT NULL,                   -- where the redirect goes (UTM parameters kept)
        section TEXT NOT NULL DEFAULT '',
        title TEXT NOT NULL DEFAULT '',      -- the item's title, or the link's text
        PRIMARY KEY (issue, id)
    );
    CREATE TABLE clicks (                    -- one row per request to /c/<id>
        id INTEGER PRIMARY KEY,
        issue INTEGER NOT NULL,
        link INTEGER NOT NULL,
        at REAL NOT NULL,                    -- unix time
        client TEXT NOT NULL,                -- a keyed hash of address and user agent, never the address
        email_key TEXT,                      -- only with tracking.per_subscriber
        verdict TEXT NOT NULL DEFAULT 'counted'  -- counted | repeat | scanner
    );
    CREATE INDEX clicks_by_issue ON clicks (issue, link);
    CREATE INDEX clicks_by_client ON clicks (client, at);
    """,
    # 6: how each send's audience was put together: the first run, --include-new, and
    # each --where segment, with when and how many readers each added.
    """
    ALTER TABLE sends ADD COLUMN segments TEXT NOT NULL DEFAULT '[]';  -- JSON [{at, how, where, added}]
    """,
    # 7: several senders of one issue (PostgreSQL; SQLite has the columns, unused): who
    # claimed a pending row and until when, and the shared rate budget of every sender.
    """
    ALTER TABLE deliveries ADD COLUMN owner TEXT;        -- pid@host of the sender that claimed it
    ALTER TABLE deliveries ADD COLUMN lease_until REAL;  -- unix time the claim runs out unless renewed
    CREATE TABLE rates (name TEXT PRIMARY KEY, next_at REAL NOT NULL);  -- the next free slot (unix time)
    """,
]
