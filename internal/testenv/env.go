// Package testenv runs a real kube-apiserver and etcd (through
// controller-runtime's envtest) and seeds them with a home-lab scenario, so
// tests, benchmarks and the dev cluster exercise the API server's real paths.
package testenv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Versions of the binaries hack/install-control-plane.sh builds; the cache
// directory is named after them so an upgrade never reuses old binaries.
const (
	KubernetesVersion = "v1.37.2"
	EtcdVersion       = "v3.7.3"
)

// Env is a running control plane with admin credentials.
type Env struct {
	// Config authenticates as an admin (group system:masters).
	Config *rest.Config
	// KubeconfigPath names a kubeconfig file (mode 0600) with the same admin
	// credentials; it is removed by Stop.
	KubeconfigPath string
	// Kubeconfig holds the bytes written to KubeconfigPath.
	Kubeconfig []byte
	// StartupTime is how long Start took, CRD installation included.
	StartupTime time.Duration

	env      *envtest.Environment
	dir      string
	stopOnce sync.Once
	stopErr  error
}

// AssetsDir returns the directory holding kube-apiserver and etcd:
// $KUBEBUILDER_ASSETS if set, else the cache directory the install script fills.
func AssetsDir() string {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = os.TempDir()
	}
	return filepath.Join(home, ".cache", "cluster-shepherd", "k8s-"+KubernetesVersion+"-etcd-"+EtcdVersion)
}

func checkAssets(dir string) error {
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		fi, err := os.Stat(filepath.Join(dir, bin))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return fmt.Errorf("control plane binary %s not found in %s: run hack/install-control-plane.sh (or set KUBEBUILDER_ASSETS)", bin, dir)
		}
	}
	return nil
}

var loggerOnce sync.Once

// Option changes how Start builds the control plane.
type Option func(*startOptions)

type startOptions struct{ noFlux bool }

// WithoutFlux leaves the Flux CRDs out: a cluster that does not run Flux.
func WithoutFlux() Option { return func(o *startOptions) { o.noFlux = true } }

// Start launches etcd and kube-apiserver on random loopback ports, installs the
// Flux Kustomization CRD (unless WithoutFlux) and writes an admin kubeconfig
// to a temporary dir.
func Start(ctx context.Context, opts ...Option) (*Env, error) {
	var so startOptions
	for _, o := range opts {
		o(&so)
	}
	begin := time.Now()
	assets := AssetsDir()
	if err := checkAssets(assets); err != nil {
		return nil, err
	}
	// controller-runtime complains loudly (with a stack trace) when its
	// logger is never set; route it to slog instead.
	loggerOnce.Do(func() { ctrllog.SetLogger(logr.FromSlogHandler(slog.Default().Handler())) })

	te := &envtest.Environment{BinaryAssetsDirectory: assets, ErrorIfCRDPathMissing: true}
	if !so.noFlux {
		crd, err := kustomizationCRD()
		if err != nil {
			return nil, err
		}
		te.CRDs = crd
	}
	// Test data need no durability; fsync per write would dominate seeding
	// a benchmark-sized cluster.
	te.ControlPlane.Etcd = &envtest.Etcd{}
	te.ControlPlane.Etcd.Configure().Set("unsafe-no-fsync", "true")
	api := te.ControlPlane.GetAPIServer()
	// Nodes advertise their kubelet (here: the stand-in log server) by
	// InternalIP; dialling a Hostname address would need DNS.
	api.Configure().Set("kubelet-preferred-address-types", "InternalIP")

	type result struct {
		cfg *rest.Config
		err error
	}
	done := make(chan result, 1)
	go func() {
		cfg, err := te.Start()
		done <- result{cfg, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		// envtest has no context; wait for it so nothing is left running.
		res = <-done
		if res.err == nil {
			_ = te.Stop()
			return nil, fmt.Errorf("start control plane: %w", ctx.Err())
		}
	}
	if res.err != nil {
		_ = te.Stop()
		return nil, fmt.Errorf("start control plane from %s: %w", assets, res.err)
	}

	e := &Env{Config: res.cfg, env: te}
	if err := e.writeKubeconfig(); err != nil {
		_ = te.Stop()
		return nil, err
	}
	e.StartupTime = time.Since(begin)
	return e, nil
}

func (e *Env) writeKubeconfig() error {
	user, err := e.env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, rest.CopyConfig(e.Config))
	if err != nil {
		return fmt.Errorf("provision admin user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("render admin kubeconfig: %w", err)
	}
	dir, err := os.MkdirTemp("", "shepherd-testenv-")
	if err != nil {
		return fmt.Errorf("kubeconfig dir: %w", err)
	}
	path := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		_ = os.RemoveAll(dir)
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	e.dir, e.KubeconfigPath, e.Kubeconfig = dir, path, kc
	return nil
}

// Clientset returns a typed client for the admin user.
func (e *Env) Clientset() (*kubernetes.Clientset, error) {
	cs, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		return nil, fmt.Errorf("clientset: %w", err)
	}
	return cs, nil
}

// Stop shuts the control plane down and removes the kubeconfig; it is safe to
// call more than once.
func (e *Env) Stop() error {
	if e == nil {
		return nil
	}
	e.stopOnce.Do(func() {
		var errs []error
		if e.env != nil {
			if err := e.env.Stop(); err != nil {
				errs = append(errs, fmt.Errorf("stop control plane: %w", err))
			}
		}
		if e.dir != "" {
			if err := os.RemoveAll(e.dir); err != nil {
				errs = append(errs, fmt.Errorf("remove kubeconfig dir: %w", err))
			}
		}
		e.stopErr = errors.Join(errs...)
	})
	return e.stopErr
}

// startTimeout bounds control plane start-up in Main; a cold apiserver on a
// busy 2-core machine takes a few seconds, never a minute.
const startTimeout = 2 * time.Minute

// Main is for TestMain: it starts the control plane, runs the tests, stops
// it and exits; if the control plane cannot start it exits 1 with the reason.
func Main(m *testing.M, env **Env) {
	os.Exit(run(m, env, nil))
}

// MainSeeded is Main plus Seed with default options; the scenario's log
// server is stopped after the tests.
func MainSeeded(m *testing.M, env **Env, scenario **Scenario) {
	os.Exit(run(m, env, scenario))
}

func run(m *testing.M, env **Env, scenario **Scenario) int {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	e, err := Start(ctx)
	if err != nil {
		cancel()
		fmt.Fprintf(os.Stderr, "testenv: cannot start the control plane: %v\n", err)
		return 1
	}
	*env = e
	if scenario != nil {
		sc, err := Seed(ctx, e.Config, SeedOptions{})
		if err != nil {
			cancel()
			fmt.Fprintf(os.Stderr, "testenv: seed scenario: %v\n", err)
			_ = e.Stop()
			return 1
		}
		*scenario = sc
	}
	cancel()
	code := m.Run()
	if scenario != nil && *scenario != nil {
		(*scenario).Close()
	}
	if err := e.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}
