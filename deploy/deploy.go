// Package deploy embeds shepherd's Kubernetes manifests, so that tests can
// apply exactly what operators apply with `kubectl apply -k deploy/`.
package deploy

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

//go:embed *.yaml
var files embed.FS

// Namespace and ServiceAccount shepherd runs as.
const (
	Namespace      = "shepherd"
	ServiceAccount = "shepherd"
)

// Username is the ServiceAccount's name as the API server authorizes it.
const Username = "system:serviceaccount:" + Namespace + ":" + ServiceAccount

// CustomResourcesExample is the optional file granting list on chosen
// custom-resource groups; kustomization.yaml leaves it out on purpose.
const CustomResourcesExample = "custom-resources.example.yaml"

// Files returns the manifest file names kustomization.yaml lists, in order.
func Files() ([]string, error) {
	b, err := files.ReadFile("kustomization.yaml")
	if err != nil {
		return nil, fmt.Errorf("read kustomization.yaml: %w", err)
	}
	var k struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(b, &k); err != nil {
		return nil, fmt.Errorf("parse kustomization.yaml: %w", err)
	}
	if len(k.Resources) == 0 {
		return nil, errors.New("kustomization.yaml lists no resources")
	}
	return k.Resources, nil
}

// Objects decodes every object of the manifests kustomization.yaml lists,
// in apply order.
func Objects() ([]*unstructured.Unstructured, error) {
	names, err := Files()
	if err != nil {
		return nil, err
	}
	var out []*unstructured.Unstructured
	for _, n := range names {
		objs, err := Decode(n)
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
	return out, nil
}

// Decode returns the objects of one embedded manifest file.
func Decode(name string) ([]*unstructured.Unstructured, error) {
	b, err := files.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", name, err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("decode %s: %w", name, err)
		}
		if len(m) == 0 { // an empty document between separators
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetKind() == "" || u.GetAPIVersion() == "" || u.GetName() == "" {
			return nil, fmt.Errorf("decode %s: object %d lacks apiVersion, kind or name", name, len(out)+1)
		}
		out = append(out, u)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("manifest %s holds no object", name)
	}
	return out, nil
}
