package testenv

import (
	_ "embed"
	"fmt"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// kustomizationCRDYAML is the real Flux CRD, copied unchanged from
// config/crd/bases/kustomize.toolkit.fluxcd.io_kustomizations.yaml in the Go
// module zip of github.com/fluxcd/kustomize-controller@v1.9.6 (the version
// whose api module go.mod requires), so tests validate against Flux's schema.
//
//go:embed crds/kustomize.toolkit.fluxcd.io_kustomizations.yaml
var kustomizationCRDYAML []byte

func kustomizationCRD() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(kustomizationCRDYAML, &crd); err != nil {
		return nil, fmt.Errorf("parse embedded Kustomization CRD: %w", err)
	}
	return []*apiextensionsv1.CustomResourceDefinition{&crd}, nil
}
