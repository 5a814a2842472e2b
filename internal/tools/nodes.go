package tools

// nodeTools declares run_node_cmd (Needs "nodes").
func nodeTools() []Tool { return nil }
