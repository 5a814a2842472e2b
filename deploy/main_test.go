package deploy_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/cluster-shepherd/shepherd/deploy"
	"github.com/cluster-shepherd/shepherd/internal/testenv"
)

// One control plane for the package: admin applies the manifests, the
// tests then act as shepherd's ServiceAccount.
var (
	env      *testenv.Env
	scenario *testenv.Scenario
	admin    *kubernetes.Clientset
	adminDyn dynamic.Interface
	// saConfig impersonates the ServiceAccount exactly as the API server
	// would authenticate its token.
	saConfig *rest.Config
	// applyWarnings are the API server's warnings while applying the
	// manifests, Pod Security admission's among them.
	applyWarnings = &warnings{}
)

type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeader(code int, agent, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warnings) list() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.msgs...)
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var err error
	env, err = testenv.Start(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "deploy: start control plane: %v\n", err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "deploy: %v\n", err)
		}
	}()
	scenario, err = testenv.Seed(ctx, env.Config, testenv.SeedOptions{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "deploy: seed scenario: %v\n", err)
		return 1
	}
	defer scenario.Close()
	if admin, err = kubernetes.NewForConfig(env.Config); err != nil {
		fmt.Fprintf(os.Stderr, "deploy: %v\n", err)
		return 1
	}
	if adminDyn, err = dynamic.NewForConfig(env.Config); err != nil {
		fmt.Fprintf(os.Stderr, "deploy: %v\n", err)
		return 1
	}
	objs, err := deploy.Objects()
	if err != nil {
		fmt.Fprintf(os.Stderr, "deploy: %v\n", err)
		return 1
	}
	if err := apply(ctx, objs); err != nil {
		fmt.Fprintf(os.Stderr, "deploy: apply manifests: %v\n", err)
		return 1
	}
	saConfig = rest.CopyConfig(env.Config)
	saConfig.Impersonate = rest.ImpersonationConfig{
		UserName: deploy.Username,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + deploy.Namespace, "system:authenticated"},
	}
	return m.Run()
}

// apply creates objs as admin, in order, through the dynamic client, the
// way `kubectl apply` would on an empty cluster.
func apply(ctx context.Context, objs []*unstructured.Unstructured) error {
	cfg := rest.CopyConfig(env.Config)
	cfg.WarningHandler = applyWarnings
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	groups, err := restmapper.GetAPIGroupResources(dc)
	if err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	mapper := restmapper.NewDiscoveryRESTMapper(groups)
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		mp, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return fmt.Errorf("%s %s: %w", gvk.Kind, o.GetName(), err)
		}
		var ri dynamic.ResourceInterface = dyn.Resource(mp.Resource)
		if mp.Scope.Name() == "namespace" {
			ri = dyn.Resource(mp.Resource).Namespace(o.GetNamespace())
		}
		if _, err := ri.Create(ctx, o, metav1.CreateOptions{FieldManager: "deploy-test"}); err != nil {
			return fmt.Errorf("create %s %s/%s: %w", gvk.Kind, o.GetNamespace(), o.GetName(), err)
		}
	}
	return nil
}

// remove deletes objs as admin (for the optional manifests a test adds).
func remove(ctx context.Context, objs []*unstructured.Unstructured) error {
	dc, err := discovery.NewDiscoveryClientForConfig(env.Config)
	if err != nil {
		return err
	}
	groups, err := restmapper.GetAPIGroupResources(dc)
	if err != nil {
		return err
	}
	mapper := restmapper.NewDiscoveryRESTMapper(groups)
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		mp, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return err
		}
		var ri dynamic.ResourceInterface = adminDyn.Resource(mp.Resource)
		if mp.Scope.Name() == "namespace" {
			ri = adminDyn.Resource(mp.Resource).Namespace(o.GetNamespace())
		}
		if err := ri.Delete(ctx, o.GetName(), metav1.DeleteOptions{}); err != nil {
			return fmt.Errorf("delete %s %s: %w", gvk.Kind, o.GetName(), err)
		}
	}
	return nil
}

func contextFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}
