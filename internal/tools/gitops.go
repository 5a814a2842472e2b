package tools

// gitopsTools declares gitops_change (Needs "gitops").
func gitopsTools() []Tool { return nil }
