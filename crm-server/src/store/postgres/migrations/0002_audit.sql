-- The audit trail (crm-model's `AuditEntry`): every write inserts its entries in its own
-- transaction. Numbered by the `last_audit_seq` counter row, locked until the writing
-- transaction commits, so that entries are numbered in commit order as tickets are.
INSERT INTO counters (name, value) VALUES ('last_audit_seq', 0);

CREATE TABLE audit (
    seq       BIGINT PRIMARY KEY,
    at        TIMESTAMPTZ NOT NULL,
    actor     TEXT NOT NULL,
    route     TEXT NOT NULL,
    id_client UUID,
    summary   TEXT NOT NULL
);
CREATE INDEX audit_by_customer ON audit (id_client, seq) WHERE id_client IS NOT NULL;
