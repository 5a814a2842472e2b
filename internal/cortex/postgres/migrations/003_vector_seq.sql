-- A change counter per vector row lets each process keep the vectors in
-- memory and fetch only what changed since its last search. Writers hold an
-- advisory lock until commit, so sequence order is commit order.
CREATE SEQUENCE cortex_vectors_seq;
ALTER TABLE cortex_vectors ADD COLUMN seq bigint NOT NULL DEFAULT nextval('cortex_vectors_seq');
CREATE INDEX cortex_vectors_seq_idx ON cortex_vectors (seq);
