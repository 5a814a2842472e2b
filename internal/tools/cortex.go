package tools

func cortexTools() []Tool { return nil }
