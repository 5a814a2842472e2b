package cluster

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// ConversionIssue is a CRD whose conversion webhook fails: every LIST of
// its resources at a converted version errors, which breaks kubectl, Flux's
// health checks and the garbage collector in the whole cluster. It is the
// classic leftover of an uninstalled operator.
type ConversionIssue struct {
	CRD     string
	Group   string
	Version string
	Service string // namespace/name of the webhook service
	Error   string
}

// conversionProbe lists each webhook-converted CRD at every served version,
// because the API server only reports a broken webhook when it is asked to
// convert something.
type conversionProbe struct {
	client *Client
	log    *slog.Logger
	mu     sync.RWMutex
	issues []ConversionIssue
	run1   sync.Mutex
}

func newConversionProbe(c *Client, log *slog.Logger) *conversionProbe {
	return &conversionProbe{client: c, log: log}
}

func (p *conversionProbe) run(ctx context.Context) {
	p.run1.Lock()
	defer p.run1.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	crds, err := p.client.APIExt.ApiextensionsV1().CustomResourceDefinitions().List(ctx, metav1.ListOptions{})
	if err != nil {
		p.log.Warn("conversion probe: list CRDs", "err", err)
		return
	}
	var (
		issues []ConversionIssue
		mu     sync.Mutex
		wg     sync.WaitGroup
	)
	for _, crd := range crds.Items {
		conv := crd.Spec.Conversion
		if conv == nil || conv.Strategy != apiextv1.WebhookConverter {
			continue
		}
		wg.Add(1)
		go func(crd apiextv1.CustomResourceDefinition) {
			defer wg.Done()
			if is, bad := p.check(ctx, &crd); bad {
				mu.Lock()
				issues = append(issues, is)
				mu.Unlock()
			}
		}(crd)
	}
	wg.Wait()
	sort.Slice(issues, func(i, j int) bool { return issues[i].CRD < issues[j].CRD })
	p.mu.Lock()
	p.issues = issues
	p.mu.Unlock()
}

// probeTimeout bounds one LIST: a webhook that hangs is as broken as one
// that refuses.
const probeTimeout = 5 * time.Second

func (p *conversionProbe) check(ctx context.Context, crd *apiextv1.CustomResourceDefinition) (ConversionIssue, bool) {
	conv := crd.Spec.Conversion
	svc := ""
	if conv.Webhook != nil && conv.Webhook.ClientConfig != nil {
		if s := conv.Webhook.ClientConfig.Service; s != nil {
			svc = s.Namespace + "/" + s.Name
			// The operator's usual leftover: its webhook Service is gone.
			// Reading one Service needs far less RBAC than listing the
			// custom resources below, which the base role cannot do.
			gctx, cancel := context.WithTimeout(ctx, probeTimeout)
			_, err := p.client.Kube.CoreV1().Services(s.Namespace).Get(gctx, s.Name, metav1.GetOptions{})
			cancel()
			if apierrors.IsNotFound(err) {
				v := ""
				if len(crd.Spec.Versions) > 0 {
					v = crd.Spec.Versions[0].Name
				}
				return ConversionIssue{CRD: crd.Name, Group: crd.Spec.Group, Version: v, Service: svc,
					Error: "the webhook service does not exist, so no version of " + crd.Name + " can be converted or listed"}, true
			}
		} else if conv.Webhook.ClientConfig.URL != nil {
			svc = *conv.Webhook.ClientConfig.URL
		}
	}
	for _, v := range crd.Spec.Versions {
		if !v.Served {
			continue
		}
		gvr := schema.GroupVersionResource{Group: crd.Spec.Group, Version: v.Name, Resource: crd.Spec.Names.Plural}
		lctx, cancel := context.WithTimeout(ctx, probeTimeout)
		_, err := p.client.Dynamic.Resource(gvr).List(lctx, metav1.ListOptions{Limit: 1})
		cancel()
		if apierrors.IsForbidden(err) || apierrors.IsNotFound(err) {
			// Not allowed to look (RBAC) or already gone: no evidence of a
			// broken webhook, and no false alarm.
			return ConversionIssue{}, false
		}
		if err != nil {
			return ConversionIssue{CRD: crd.Name, Group: crd.Spec.Group, Version: v.Name, Service: svc, Error: err.Error()}, true
		}
	}
	return ConversionIssue{}, false
}

func (p *conversionProbe) current() []ConversionIssue {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return append([]ConversionIssue(nil), p.issues...)
}

// ConversionIssues returns the CRDs whose conversion webhook failed at the
// last probe.
func (c *Cache) ConversionIssues() []ConversionIssue { return c.probe.current() }
