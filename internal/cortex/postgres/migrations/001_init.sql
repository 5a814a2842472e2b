-- Documents of every collection, searched by PostgreSQL full text. The
-- tsvector is generated so no writer can forget to keep it current; only the
-- first 200k characters are indexed because a tsvector is capped at 1 MB.
CREATE TABLE cortex_documents (
    collection text        NOT NULL,
    id         text        NOT NULL,
    cluster    text        NOT NULL DEFAULT '',
    body       text        NOT NULL,
    metadata   jsonb       NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    tsv        tsvector    GENERATED ALWAYS AS (to_tsvector('english'::regconfig, left(body, 200000))) STORED,
    PRIMARY KEY (collection, id)
);
CREATE INDEX cortex_documents_tsv ON cortex_documents USING gin (tsv);
CREATE INDEX cortex_documents_cluster ON cortex_documents (cluster, collection);

CREATE TABLE cortex_known_errors (
    id         text        PRIMARY KEY,
    pattern    text        NOT NULL,
    summary    text        NOT NULL DEFAULT '',
    cluster    text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL
);

CREATE TABLE cortex_solutions (
    id          text        PRIMARY KEY,
    description text        NOT NULL,
    verified    boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE cortex_error_solutions (
    error_id    text NOT NULL REFERENCES cortex_known_errors (id) ON DELETE CASCADE,
    solution_id text NOT NULL REFERENCES cortex_solutions (id) ON DELETE CASCADE,
    PRIMARY KEY (error_id, solution_id)
);
CREATE INDEX cortex_error_solutions_solution ON cortex_error_solutions (solution_id);

CREATE TABLE cortex_incidents (
    error_id    text        NOT NULL REFERENCES cortex_known_errors (id) ON DELETE CASCADE,
    document_id text        NOT NULL,
    added_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (error_id, document_id)
);
