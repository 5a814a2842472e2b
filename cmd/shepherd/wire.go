package main

import (
	"context"

	"github.com/cluster-shepherd/shepherd/internal/tools"
)

// wireExtras attaches Cortex, the risk gate and its admin API to a shepherd
// being built.
func (f *shepherdFlags) wireExtras(ctx context.Context, a *app, d *tools.Deps) error {
	mem, closeMem, err := f.openMemory(ctx, d)
	if err != nil {
		return err
	}
	a.cleanup = append(a.cleanup, closeMem)
	d.Memory = mem
	if err := a.startIngest(ctx, mem, f.clusterName); err != nil {
		return err
	}
	gate, closeGate, err := f.gate.openGate(ctx, f.dataDir, f.clusterName, mem, d, a.reg)
	if err != nil {
		return err
	}
	a.cleanup = append(a.cleanup, closeGate)
	d.Gate = gate
	if d.GitOps, err = f.outside.openGitOps(f.dataDir); err != nil {
		return err
	}
	if d.Nodes, err = f.outside.openNodes(f.nodeAddrs); err != nil {
		return err
	}
	if f.http {
		routes, err := f.gate.adminRoutes(gate, f.authToken)
		if err != nil {
			return err
		}
		a.routes = routes
	}
	return nil
}
