// Command devcluster runs a real kube-apiserver and etcd seeded with the
// home-lab scenario, for trying shepherd by hand:
//
//	go run ./hack/devcluster --kubeconfig-out /tmp/dev.kubeconfig
//
// It runs until SIGINT or SIGTERM, then stops everything and removes the
// kubeconfig it wrote.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/cluster-shepherd/shepherd/internal/testenv"
)

type options struct {
	kubeconfigOut string
	deployments   int
	extraPods     int
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("devcluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.kubeconfigOut, "kubeconfig-out", "", "write the admin kubeconfig to this `path` (required)")
	fs.IntVar(&o.deployments, "deployments", 40, "number of healthy Deployments to seed")
	fs.IntVar(&o.extraPods, "extra-pods", 0, "extra Running pods to seed (namespace load)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected argument %q (all options are flags)", fs.Arg(0))
	case o.kubeconfigOut == "":
		return o, errors.New("--kubeconfig-out is required")
	case o.deployments < 1 || o.deployments > 10000:
		return o, fmt.Errorf("--deployments %d: must be between 1 and 10000", o.deployments)
	case o.extraPods < 0 || o.extraPods > 50000:
		return o, fmt.Errorf("--extra-pods %d: must be between 0 and 50000", o.extraPods)
	}
	if fi, err := os.Stat(o.kubeconfigOut); err == nil && fi.IsDir() {
		return o, fmt.Errorf("--kubeconfig-out %s is a directory; name a file", o.kubeconfigOut)
	}
	if fi, err := os.Stat(filepath.Dir(o.kubeconfigOut)); err != nil || !fi.IsDir() {
		return o, fmt.Errorf("--kubeconfig-out %s: directory %s does not exist", o.kubeconfigOut, filepath.Dir(o.kubeconfigOut))
	}
	return o, nil
}

func main() {
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "devcluster: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "devcluster: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, stdout io.Writer) (err error) {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	begin := time.Now()
	env, err := testenv.Start(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if stopErr := env.Stop(); stopErr != nil && err == nil {
			err = stopErr
		}
	}()
	log.Info("control plane started", "took", env.StartupTime.Round(time.Millisecond).String(), "api", env.Config.Host)

	sc, err := testenv.Seed(ctx, env.Config, testenv.SeedOptions{Deployments: o.deployments, ExtraPods: o.extraPods})
	if err != nil {
		return err
	}
	defer sc.Close()
	log.Info("scenario seeded", "took", time.Since(begin).Round(time.Millisecond).String(),
		"pods", sc.PodCount, "deployments", len(sc.Deployments)+len(sc.UnhealthyDeployments), "kubelet_log_server", sc.LogServerAddr)

	if err := writeFileAtomic(o.kubeconfigOut, env.Kubeconfig); err != nil {
		return err
	}
	defer os.Remove(o.kubeconfigOut)
	fmt.Fprintln(stdout, o.kubeconfigOut)
	fmt.Fprintf(stdout, "start shepherd against it: shepherd serve --kubeconfig %s --listen 127.0.0.1:8080 --data-dir \"$(mktemp -d)\"\n", o.kubeconfigOut)

	<-ctx.Done()
	log.Info("stopping")
	return nil
}

// writeFileAtomic never leaves a half-written kubeconfig behind.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".kubeconfig-*")
	if err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return nil
}
