-- The crm register in PostgreSQL. Amounts are cents in BIGINT (at most 2^53 - 1, checked
-- by the store before it writes), sequence numbers come from `counters` rows updated in
-- the writing transaction (see store/postgres/mod.rs for why not sequences).

-- Named counters: next customer id, live customers, last ticket, last article, last
-- card issued, last payment.
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES
    ('next_customer_id', 0),
    ('live_customers', 0),
    ('last_ticket_seq', 0),
    ('last_article_id', 0),
    ('last_issued_card', 0),
    ('last_payment_id', 0);

CREATE TABLE customers (
    id               BIGINT PRIMARY KEY,
    id_client        UUID NOT NULL UNIQUE,
    nom              TEXT NOT NULL,
    prenom           TEXT NOT NULL,
    email            TEXT NOT NULL,
    -- The e-mail as crm-model keys it (trimmed, lower-cased by Rust's Unicode rules, not
    -- the database locale's); NULL when empty, since empty e-mails are not unique.
    email_key        TEXT,
    phone            TEXT NOT NULL,
    compte           TEXT NOT NULL,
    age              SMALLINT,
    sexe             TEXT NOT NULL,
    carte_fid        BIGINT,
    credit           BIGINT NOT NULL,
    nb_refus         INTEGER NOT NULL,
    next_payment     DATE,
    pending_payments BIGINT NOT NULL,
    ledger_entries   BIGINT NOT NULL,
    ticket_count     BIGINT NOT NULL,
    ticket_total     BIGINT NOT NULL,
    panier_moyen     BIGINT GENERATED ALWAYS AS (CASE WHEN ticket_count = 0 THEN 0 ELSE ticket_total / ticket_count END) STORED,
    erased           BOOLEAN NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    -- The name as the Nom sort orders it (crm-model's `normalize`), compared bytewise
    -- ("C") so that the order is the sled store's and the same on every server locale.
    nom_key          TEXT COLLATE "C" NOT NULL
);
CREATE UNIQUE INDEX customers_email_key ON customers (email_key) WHERE NOT erased;
CREATE UNIQUE INDEX customers_card ON customers (carte_fid) WHERE NOT erased;
CREATE INDEX customers_by_nom ON customers (nom_key, id) WHERE NOT erased;
CREATE INDEX customers_by_credit ON customers (credit, id) WHERE NOT erased;
CREATE INDEX customers_by_panier ON customers (panier_moyen, id) WHERE NOT erased;
CREATE INDEX customers_live ON customers (id) WHERE NOT erased;

-- The search index: every token of a live customer (crm-model's `search_tokens`); a
-- query term matches the tokens it prefixes, a range of this index.
CREATE TABLE customer_tokens (
    token       TEXT COLLATE "C" NOT NULL,
    customer_id BIGINT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    PRIMARY KEY (token, customer_id)
);
CREATE INDEX customer_tokens_customer ON customer_tokens (customer_id);

CREATE TABLE ledger (
    -- Deferred: a customer's first entries (opening credit, matched tickets) are written
    -- before the customer row, in the same transaction.
    customer_id BIGINT NOT NULL REFERENCES customers (id) DEFERRABLE INITIALLY DEFERRED,
    seq         BIGINT NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    amount      BIGINT NOT NULL,
    balance     BIGINT NOT NULL,
    cause       TEXT NOT NULL,
    key         TEXT,
    PRIMARY KEY (customer_id, seq)
);

-- Keys of `POST /api/credit` items already applied, with the customer credited.
CREATE TABLE credit_keys (
    key         TEXT PRIMARY KEY,
    customer_id BIGINT NOT NULL
);

CREATE TABLE tickets (
    seq              BIGINT PRIMARY KEY,
    uid              TEXT NOT NULL UNIQUE,
    customer_id      BIGINT,
    first_article_id BIGINT NOT NULL,
    -- crm-model's `Ticket` (its `unmatched` flag included).
    ticket           JSONB NOT NULL
);
CREATE INDEX tickets_by_customer ON tickets (customer_id, seq) WHERE customer_id IS NOT NULL;

-- Unmatched tickets waiting for a customer with this IdClient (`u:`), e-mail (`e:`) or
-- card (`c:`).
CREATE TABLE ticket_pending (
    client_key TEXT NOT NULL,
    seq        BIGINT NOT NULL REFERENCES tickets (seq),
    PRIMARY KEY (client_key, seq)
);
CREATE INDEX ticket_pending_seq ON ticket_pending (seq);

-- The last ticket each consumer (`get_tickets` reader) has received.
CREATE TABLE consumers (
    name TEXT PRIMARY KEY,
    seq  BIGINT NOT NULL
);

CREATE TABLE payments (
    id          BIGINT PRIMARY KEY,
    customer_id BIGINT NOT NULL REFERENCES customers (id) DEFERRABLE INITIALLY DEFERRED,
    id_client   UUID NOT NULL,
    montant     BIGINT NOT NULL,
    date        DATE NOT NULL,
    status      TEXT NOT NULL,
    attempts    INTEGER NOT NULL,
    sent_at     TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX payments_by_customer ON payments (customer_id, id);
CREATE INDEX payments_due ON payments (date, id) WHERE status = 'pending';

-- Rows of an import being checked, copied in with COPY: one import's rows are told
-- apart by `import_id`, so that imports never see each other's rows.
CREATE UNLOGGED TABLE import_rows (
    import_id UUID NOT NULL,
    row_no    BIGINT NOT NULL,
    id_client UUID,
    email_key TEXT,
    carte_fid BIGINT,
    row_data  JSONB NOT NULL,
    PRIMARY KEY (import_id, row_no)
);
