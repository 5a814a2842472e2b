package main

import (
	"fmt"

	"github.com/cluster-shepherd/shepherd/internal/cortex"
)

// openRemoteCortex uses a Cortex served by `shepherd cortex`.
func openRemoteCortex(url string) (cortex.Memory, func(), error) {
	return nil, nil, fmt.Errorf("--cortex-url %s: the remote Cortex client is not available in this build", url)
}
