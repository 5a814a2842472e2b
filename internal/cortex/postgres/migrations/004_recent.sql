-- Recent (the promotion report) reads one cluster's newest documents of one
-- collection in index order. The index leads with (cluster, collection) like
-- the one it replaces, so keyword search filtered by cluster keeps its index.
CREATE INDEX cortex_documents_recent ON cortex_documents (cluster, collection, updated_at DESC, id);
DROP INDEX cortex_documents_cluster;
