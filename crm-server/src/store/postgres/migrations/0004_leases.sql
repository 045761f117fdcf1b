-- Leases several servers on one database take turns with (the payment run): a row is
-- held by `holder` until `until`, by the database's clock; an expired row may be taken.
CREATE TABLE leases (
    name   TEXT PRIMARY KEY,
    holder UUID NOT NULL,
    until  TIMESTAMPTZ NOT NULL
);
