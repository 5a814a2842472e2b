-- Exact-scan vectors, so PostgreSQL alone is a complete deployment where
-- Qdrant is not wanted. Vectors are stored unit-length: the dot product is
-- then the cosine similarity.
CREATE TABLE cortex_vectors (
    collection text    NOT NULL,
    id         text    NOT NULL,
    cluster    text    NOT NULL DEFAULT '',
    dim        integer NOT NULL,
    vec        real[]  NOT NULL,
    PRIMARY KEY (collection, id)
);
CREATE INDEX cortex_vectors_cluster ON cortex_vectors (cluster, collection);
