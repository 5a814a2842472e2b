package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Workload kinds shepherd may restart or scale.
const (
	KindDeployment  = "Deployment"
	KindStatefulSet = "StatefulSet"
)

// NormalizeKind maps the spellings a model uses (deployment, deploy, sts…)
// to the API kind, or "" when the kind is not one shepherd may touch.
func NormalizeKind(kind string) string {
	switch strings.ToLower(strings.TrimSpace(kind)) {
	case "deployment", "deployments", "deploy":
		return KindDeployment
	case "statefulset", "statefulsets", "sts":
		return KindStatefulSet
	}
	return ""
}

// ResolveKind finds which workload kind ns/name is, when the caller did not
// say. Both existing is ambiguous and an error.
func (c *Cache) ResolveKind(ns, name string) (string, error) {
	_, derr := c.Deployments.Deployments(ns).Get(name)
	_, serr := c.StatefulSet.StatefulSets(ns).Get(name)
	switch {
	case derr == nil && serr == nil:
		return "", fmt.Errorf("both a Deployment and a StatefulSet are named %s/%s: say which with kind", ns, name)
	case derr == nil:
		return KindDeployment, nil
	case serr == nil:
		return KindStatefulSet, nil
	}
	return "", &ErrNotFound{What: fmt.Sprintf("workload %s/%s (no Deployment or StatefulSet of that name; see list_workloads)", ns, name)}
}

// Replicas returns the desired replicas of a workload from the cache.
func (c *Cache) Replicas(kind, ns, name string) (int32, error) {
	switch kind {
	case KindDeployment:
		d, err := c.Deployments.Deployments(ns).Get(name)
		if err != nil {
			return 0, &ErrNotFound{What: fmt.Sprintf("Deployment %s/%s", ns, name)}
		}
		return replicas(d.Spec.Replicas), nil
	case KindStatefulSet:
		s, err := c.StatefulSet.StatefulSets(ns).Get(name)
		if err != nil {
			return 0, &ErrNotFound{What: fmt.Sprintf("StatefulSet %s/%s", ns, name)}
		}
		return replicas(s.Spec.Replicas), nil
	}
	return 0, fmt.Errorf("kind %q: want Deployment or StatefulSet", kind)
}

// RestartedAtAnnotation is the pod-template annotation kubectl's rollout
// restart sets; changing it rolls every pod.
const RestartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"

// Restart does what `kubectl rollout restart` does: it stamps the pod
// template, so the controller replaces pods at its own pace.
func (c *Cache) Restart(ctx context.Context, kind, ns, name string, now time.Time) (string, error) {
	if _, err := c.Replicas(kind, ns, name); err != nil {
		return "", err
	}
	stamp := now.UTC().Format(time.RFC3339)
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{RestartedAtAnnotation: stamp}}}}})
	var err error
	switch kind {
	case KindDeployment:
		_, err = c.client.Kube.AppsV1().Deployments(ns).Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{FieldManager: "cluster-shepherd"})
	case KindStatefulSet:
		_, err = c.client.Kube.AppsV1().StatefulSets(ns).Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{FieldManager: "cluster-shepherd"})
	}
	if err != nil {
		return "", fmt.Errorf("restart %s %s/%s: %w", kind, ns, name, err)
	}
	return stamp, nil
}

// Scale sets replicas through the scale subresource and returns the
// previous desired count.
func (c *Cache) Scale(ctx context.Context, kind, ns, name string, replicas int32) (int32, error) {
	prev, err := c.Replicas(kind, ns, name)
	if err != nil {
		return 0, err
	}
	patch := []byte(fmt.Sprintf(`{"spec":{"replicas":%d}}`, replicas))
	switch kind {
	case KindDeployment:
		_, err = c.client.Kube.AppsV1().Deployments(ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "cluster-shepherd"}, "scale")
	case KindStatefulSet:
		_, err = c.client.Kube.AppsV1().StatefulSets(ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "cluster-shepherd"}, "scale")
	}
	if err != nil {
		return 0, fmt.Errorf("scale %s %s/%s: %w", kind, ns, name, err)
	}
	return prev, nil
}

// Flux operations.
const (
	FluxSuspend   = "suspend"
	FluxResume    = "resume"
	FluxReconcile = "reconcile"
	// ReconcileAnnotation asks Flux controllers to reconcile now.
	ReconcileAnnotation = "reconcile.fluxcd.io/requestedAt"
)

// FluxOp suspends, resumes or requests a reconciliation of a Kustomization.
func (c *Cache) FluxOp(ctx context.Context, op, ns, name string, now time.Time) (string, error) {
	l, err := c.fluxLister()
	if err != nil {
		return "", err
	}
	if _, err := l.ByNamespace(ns).Get(name); err != nil {
		return "", &ErrNotFound{What: fmt.Sprintf("Kustomization %s/%s (see get_flux_status)", ns, name)}
	}
	var patch map[string]any
	result := ""
	switch op {
	case FluxSuspend:
		patch, result = map[string]any{"spec": map[string]any{"suspend": true}}, "suspended"
	case FluxResume:
		patch, result = map[string]any{"spec": map[string]any{"suspend": false}}, "resumed"
	case FluxReconcile:
		stamp := now.UTC().Format(time.RFC3339Nano)
		patch, result = map[string]any{"metadata": map[string]any{"annotations": map[string]string{ReconcileAnnotation: stamp}}}, "reconciliation requested at "+stamp
	default:
		return "", fmt.Errorf("operation %q: want suspend, resume or reconcile", op)
	}
	b, _ := json.Marshal(patch)
	if _, err := c.client.Dynamic.Resource(KustomizationGVR).Namespace(ns).Patch(ctx, name, types.MergePatchType, b, metav1.PatchOptions{FieldManager: "cluster-shepherd"}); err != nil {
		return "", fmt.Errorf("%s Kustomization %s/%s: %w", op, ns, name, err)
	}
	return result, nil
}

// CRDInventory is what deleting the CRDs of one API group would remove.
type CRDInventory struct {
	Domain    string
	CRDs      []string
	Resources int      // custom resources that still exist (counted where listable)
	Unlisted  []string // CRDs whose resources could not be counted, with why
	// Terminating lists CRDs still being removed when DeleteCRDs returned.
	Terminating []string
}

// ValidateDomain checks an API group name for delete_crds.
func ValidateDomain(domain string) error {
	if domain == "" {
		return fmt.Errorf("domain is required, e.g. longhorn.io")
	}
	if errs := validation.IsDNS1123Subdomain(domain); len(errs) > 0 {
		return fmt.Errorf("invalid domain %q: %s", domain, errs[0])
	}
	if !strings.Contains(domain, ".") {
		return fmt.Errorf("domain %q is too broad: give a full API group such as longhorn.io", domain)
	}
	return nil
}

// CRDsOf lists the CRDs of domain and its subdomains (x.domain), and counts
// the custom resources they hold, so the risk gate can weigh the data that
// would go with them.
func (c *Cache) CRDsOf(ctx context.Context, domain string) (CRDInventory, error) {
	inv := CRDInventory{Domain: domain}
	if err := ValidateDomain(domain); err != nil {
		return inv, err
	}
	list, err := c.client.APIExt.ApiextensionsV1().CustomResourceDefinitions().List(ctx, metav1.ListOptions{})
	if err != nil {
		return inv, fmt.Errorf("list CRDs: %w", err)
	}
	for _, crd := range list.Items {
		if crd.Spec.Group != domain && !strings.HasSuffix(crd.Spec.Group, "."+domain) {
			continue
		}
		inv.CRDs = append(inv.CRDs, crd.Name)
		n, err := c.countResources(ctx, &crd)
		if err != nil {
			inv.Unlisted = append(inv.Unlisted, fmt.Sprintf("%s: %v", crd.Name, err))
			continue
		}
		inv.Resources += n
	}
	sort.Strings(inv.CRDs)
	return inv, nil
}

func (c *Cache) countResources(ctx context.Context, crd *apiextv1.CustomResourceDefinition) (int, error) {
	version := ""
	for _, v := range crd.Spec.Versions {
		if v.Storage {
			version = v.Name
		}
	}
	gvr := schema.GroupVersionResource{Group: crd.Spec.Group, Version: version, Resource: crd.Spec.Names.Plural}
	n, cont := 0, ""
	for {
		l, err := c.client.Dynamic.Resource(gvr).List(ctx, metav1.ListOptions{Limit: 500, Continue: cont})
		if err != nil {
			return 0, err
		}
		n += len(l.Items)
		if cont = l.GetContinue(); cont == "" {
			return n, nil
		}
	}
}

// DeleteCRDs deletes every CRD of domain and its subdomains; the API server
// deletes their custom resources with them. It returns what was deleted.
func (c *Cache) DeleteCRDs(ctx context.Context, domain string) (CRDInventory, error) {
	inv, err := c.CRDsOf(ctx, domain)
	if err != nil {
		return inv, err
	}
	if len(inv.CRDs) == 0 {
		return inv, &ErrNotFound{What: fmt.Sprintf("CRDs of API group %s or its subdomains", domain)}
	}
	bg := metav1.DeletePropagationBackground
	for _, name := range inv.CRDs {
		err := c.client.APIExt.ApiextensionsV1().CustomResourceDefinitions().Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &bg})
		if err != nil && !apierrors.IsNotFound(err) {
			return inv, fmt.Errorf("delete CRD %s: %w", name, err)
		}
	}
	// The API server removes the custom resources before the CRD itself
	// (the customresourcecleanup finalizer); wait for that, briefly, so the
	// answer and the next alerts reflect the result.
	wait, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for _, name := range inv.CRDs {
		for {
			_, err := c.client.APIExt.ApiextensionsV1().CustomResourceDefinitions().Get(wait, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				break
			}
			if wait.Err() != nil {
				inv.Terminating = append(inv.Terminating, name)
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	c.probe.run(ctx)
	return inv, nil
}
