package testenv

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// KustomizationGVR addresses Flux Kustomizations at the version the embedded CRD serves as storage.
var KustomizationGVR = schema.GroupVersionResource{Group: "kustomize.toolkit.fluxcd.io", Version: "v1", Resource: "kustomizations"}

const (
	revision    = "main@sha1:3f6c2b8e9d1a4f7c0b5e8a2d6c9f1e4b7a0d3c6e"
	oldRevision = "main@sha1:9b2e5d8a1c4f7e0b3d6a9c2f5e8b1d4a7c0e3f6b"
)

// failingMessage is what kustomize-controller reports when a path named in
// kustomization.yaml is missing; long on purpose, as the real ones are.
const failingMessage = "kustomize build failed: accumulating resources: accumulation err='accumulating resources from './nextcloud': " +
	"read /tmp/kustomization-2817093346/apps/nextcloud: is a directory': recursed accumulation of path '/tmp/kustomization-2817093346/apps/nextcloud': " +
	"accumulating resources: accumulation err='accumulating resources from 'cronjob.yaml': evalsymlink failure on " +
	"'/tmp/kustomization-2817093346/apps/nextcloud/cronjob.yaml' : lstat /tmp/kustomization-2817093346/apps/nextcloud/cronjob.yaml: " +
	"no such file or directory': must build at directory: not a valid directory: evalsymlink failure on " +
	"'/tmp/kustomization-2817093346/apps/nextcloud/cronjob.yaml' : lstat /tmp/kustomization-2817093346/apps/nextcloud/cronjob.yaml: no such file or directory"

func (s *seeder) kustomizations(ctx context.Context) error {
	type ks struct {
		name, path string
		deps       []string
		failing    bool
		suspended  bool
	}
	all := []ks{
		{name: "flux-system", path: "./clusters/home"},
		{name: "infrastructure", path: "./infrastructure/controllers", deps: nil},
		{name: "infrastructure-configs", path: "./infrastructure/configs", deps: []string{"infrastructure"}},
		{name: "apps-immich", path: "./apps/immich", deps: []string{"infrastructure-configs"}},
		{name: "apps-authentik", path: "./apps/authentik", deps: []string{"infrastructure-configs"}},
		{name: "apps-mail", path: "./apps/mail", deps: []string{"infrastructure-configs"}},
		{name: "apps-media", path: "./apps/media", deps: []string{"infrastructure-configs"}},
		{name: "monitoring", path: "./monitoring", deps: []string{"infrastructure-configs"}},
		{name: "apps-nextcloud", path: "./apps/nextcloud", deps: []string{"infrastructure-configs"}, failing: true},
		{name: "apps-paperless", path: "./apps/paperless", deps: []string{"infrastructure-configs"}, suspended: true},
	}
	for _, k := range all {
		spec := map[string]any{
			"interval":      "10m0s",
			"retryInterval": "2m0s",
			"timeout":       "5m0s",
			"path":          k.path,
			"prune":         true,
			"wait":          k.name != "flux-system",
			"sourceRef":     map[string]any{"kind": "GitRepository", "name": "flux-system"},
			"decryption":    map[string]any{"provider": "sops", "secretRef": map[string]any{"name": "sops-age"}},
			"postBuild": map[string]any{"substituteFrom": []any{
				map[string]any{"kind": "ConfigMap", "name": "cluster-settings"},
				map[string]any{"kind": "Secret", "name": "cluster-secrets"},
			}},
		}
		if k.suspended {
			spec["suspend"] = true
		}
		if len(k.deps) > 0 {
			var deps []any
			for _, d := range k.deps {
				deps = append(deps, map[string]any{"name": d})
			}
			spec["dependsOn"] = deps
		}
		obj := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "kustomize.toolkit.fluxcd.io/v1",
			"kind":       "Kustomization",
			"metadata": map[string]any{
				"name": k.name, "namespace": "flux-system",
				"labels": map[string]any{"kustomize.toolkit.fluxcd.io/name": "flux-system", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"},
			},
			"spec": spec,
		}}
		rc := s.dyn.Resource(KustomizationGVR).Namespace("flux-system")
		created, err := rc.Create(ctx, obj, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create kustomization flux-system/%s: %w", k.name, err)
		}
		gen := created.GetGeneration()
		ready := map[string]any{
			"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded",
			"message":            "Applied revision: " + revision,
			"observedGeneration": gen,
			"lastTransitionTime": s.now.Add(-6 * time.Minute).UTC().Format(time.RFC3339),
		}
		status := map[string]any{
			"observedGeneration":     gen,
			"lastAppliedRevision":    revision,
			"lastAttemptedRevision":  revision,
			"lastHandledReconcileAt": s.now.Add(-30 * time.Hour).UTC().Format(time.RFC3339Nano),
		}
		switch {
		case k.failing:
			ready["status"], ready["reason"], ready["message"] = "False", "BuildFailed", failingMessage
			ready["lastTransitionTime"] = s.now.Add(-170 * time.Minute).UTC().Format(time.RFC3339)
			status["lastAppliedRevision"] = oldRevision
			s.sc.FailingKustomization = types.NamespacedName{Namespace: "flux-system", Name: k.name}
			s.sc.FailingMessage = failingMessage
		case k.suspended:
			// Suspended nine days ago: still Ready from its last run, on an old revision.
			ready["message"] = "Applied revision: " + oldRevision
			ready["lastTransitionTime"] = s.now.Add(-9 * 24 * time.Hour).UTC().Format(time.RFC3339)
			status["lastAppliedRevision"], status["lastAttemptedRevision"] = oldRevision, oldRevision
			s.sc.SuspendedKustomization = types.NamespacedName{Namespace: "flux-system", Name: k.name}
		}
		conds := []any{ready}
		if !k.failing {
			conds = append(conds, map[string]any{
				"type": "Healthy", "status": "True", "reason": "Succeeded", "message": "Health check passed in 2.04s",
				"observedGeneration": gen, "lastTransitionTime": ready["lastTransitionTime"],
			})
		}
		status["conditions"] = conds
		created.Object["status"] = status
		if _, err := rc.UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update kustomization flux-system/%s status: %w", k.name, err)
		}
		s.sc.Kustomizations = append(s.sc.Kustomizations, types.NamespacedName{Namespace: "flux-system", Name: k.name})
	}
	return nil
}
