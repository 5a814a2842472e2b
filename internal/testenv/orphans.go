package testenv

import (
	"context"
	"fmt"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
)

// The orphaned CRDs reproduce a Longhorn uninstall that removed the
// conversion webhook's Service but left the CRDs: every read at the
// non-storage version then fails inside the API server.
const (
	OrphanGroup          = "longhorn.io"
	OrphanSubdomainGroup = "backup.longhorn.io"
	orphanServiceNS      = "longhorn-system"
	orphanServiceName    = "longhorn-conversion-webhook"
)

type orphanKind struct {
	group, plural, kind string
	webhook             bool
	count               int
	namespaced          bool
}

var orphanKinds = []orphanKind{
	{OrphanGroup, "volumes", "Volume", true, 3, true},
	{OrphanGroup, "engines", "Engine", true, 3, true},
	{OrphanGroup, "replicas", "Replica", true, 6, true},
	{OrphanSubdomainGroup, "backuptargets", "BackupTarget", true, 2, true},
	// Same trailing letters, different group: deleting "longhorn.io" and its
	// subdomains must leave it alone.
	{"notlonghorn.io", "tunnels", "Tunnel", false, 1, true},
}

func orphanCRD(k orphanKind) *apiextensionsv1.CustomResourceDefinition {
	schemaProps := &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
		Type: "object",
		Properties: map[string]apiextensionsv1.JSONSchemaProps{
			"spec":   {Type: "object", XPreserveUnknownFields: ptr.To(true)},
			"status": {Type: "object", XPreserveUnknownFields: ptr.To(true)},
		},
	}}
	crd := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{
			Name:   k.plural + "." + k.group,
			Labels: map[string]string{"app.kubernetes.io/name": "longhorn", "app.kubernetes.io/instance": "longhorn", "app.kubernetes.io/version": "v1.7.2", "longhorn-manager": ""},
		},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: k.group,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: k.plural, Singular: lower(k.kind), Kind: k.kind, ListKind: k.kind + "List"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{
				{Name: "v1beta1", Served: true, Storage: false, Schema: schemaProps, Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}}},
				{Name: "v1beta2", Served: true, Storage: true, Schema: schemaProps, Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}}},
			},
		},
	}
	if k.webhook {
		crd.Spec.Conversion = &apiextensionsv1.CustomResourceConversion{
			Strategy: apiextensionsv1.WebhookConverter,
			Webhook: &apiextensionsv1.WebhookConversion{
				ConversionReviewVersions: []string{"v1beta2", "v1beta1", "v1"},
				ClientConfig: &apiextensionsv1.WebhookClientConfig{Service: &apiextensionsv1.ServiceReference{
					Namespace: orphanServiceNS, Name: orphanServiceName, Path: ptr.To("/v1/webhook/conversion"), Port: ptr.To(int32(9501)),
				}},
			},
		}
	} else {
		crd.Spec.Versions = crd.Spec.Versions[1:]
		crd.Labels = nil
	}
	return crd
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func (s *seeder) orphanedCRDs(ctx context.Context) error {
	s.sc.CRDGroup, s.sc.CRDSubdomainGroup = OrphanGroup, OrphanSubdomainGroup
	s.sc.ConversionService = orphanServiceNS + "/" + orphanServiceName
	crds := s.ext.ApiextensionsV1().CustomResourceDefinitions()
	for _, k := range orphanKinds {
		if _, err := crds.Create(ctx, orphanCRD(k), metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create CRD %s.%s: %w", k.plural, k.group, err)
		}
	}
	for _, k := range orphanKinds {
		name := k.plural + "." + k.group
		if err := waitEstablished(ctx, s, name); err != nil {
			return err
		}
		gvr := schema.GroupVersionResource{Group: k.group, Version: "v1beta2", Resource: k.plural}
		for i := range k.count {
			crName := fmt.Sprintf("pvc-%08x-%04x-4%03x-8%03x-%012x", rng(name).Uint32()+uint32(i), i, i, i, rng(name+fmt.Sprint(i)).Uint64()&0xffffffffffff)
			if k.plural == "backuptargets" {
				crName = []string{"default", "offsite-s3"}[i%2]
			}
			obj := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": k.group + "/v1beta2", "kind": k.kind,
				"metadata": map[string]any{"name": crName, "namespace": orphanServiceNS, "labels": map[string]any{"longhornvolume": crName}},
				"spec":     map[string]any{"numberOfReplicas": int64(2), "size": "21474836480", "frontend": "blockdev", "dataEngine": "v1"},
			}}
			// The CRD can be Established a moment before its REST handler serves.
			err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 15*time.Second, true, func(ctx context.Context) (bool, error) {
				_, err := s.dyn.Resource(gvr).Namespace(orphanServiceNS).Create(ctx, obj, metav1.CreateOptions{})
				if apierrors.IsNotFound(err) {
					return false, nil
				}
				return err == nil, err
			})
			if err != nil {
				return fmt.Errorf("create %s %s/%s: %w", name, orphanServiceNS, crName, err)
			}
		}
		s.sc.CustomResources[name] = k.count
		if k.webhook {
			s.sc.CRDs = append(s.sc.CRDs, name)
		} else {
			s.sc.UnrelatedCRD = name
		}
	}
	return nil
}

func waitEstablished(ctx context.Context, s *seeder, name string) error {
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		crd, err := s.ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range crd.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("wait for CRD %s to be established: %w", name, err)
	}
	return nil
}
