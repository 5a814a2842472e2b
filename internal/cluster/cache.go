package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// KustomizationGVR is Flux's Kustomization resource.
var KustomizationGVR = schema.GroupVersionResource{Group: "kustomize.toolkit.fluxcd.io", Version: "v1", Resource: "kustomizations"}

// ErrFluxMissing means the Flux Kustomization CRD is not installed.
var ErrFluxMissing = errors.New("flux is not installed in this cluster: the Kustomization CRD (kustomize.toolkit.fluxcd.io/v1) was not found")

// ErrFluxUnlisted means the Kustomization CRD exists but listing it failed.
var ErrFluxUnlisted = errors.New("flux Kustomizations could not be listed")

// Cache is the shared informer cache every observation tool reads from, so
// that a tool call costs a map lookup, not a LIST against the API server.
type Cache struct {
	client *Client
	log    *slog.Logger

	factory     informers.SharedInformerFactory
	eventsFac   informers.SharedInformerFactory
	Pods        corelisters.PodLister
	Events      corelisters.EventLister
	Nodes       corelisters.NodeLister
	Namespaces  corelisters.NamespaceLister
	Deployments appslisters.DeploymentLister
	StatefulSet appslisters.StatefulSetLister

	mu      sync.RWMutex
	flux    cache.GenericLister // nil until the Flux CRD is seen and listed
	fluxErr error               // why Kustomizations exist but could not be listed
	// fluxStop ends the Flux informer with the cache's context.
	fluxStop context.CancelFunc
	synced   bool
	probe    *conversionProbe
	// problems indexes the pods that have a problem, for alerts.
	problems *podIndex
}

// NewCache prepares informers for pods, Warning events, nodes, namespaces,
// deployments, statefulsets and (when installed) Flux Kustomizations.
func NewCache(c *Client, log *slog.Logger) *Cache {
	if log == nil {
		log = slog.Default()
	}
	f := informers.NewSharedInformerFactory(c.Kube, 0)
	// Only Warning events matter to shepherd; filtering on the server keeps
	// the cache small on chatty clusters.
	ef := informers.NewSharedInformerFactoryWithOptions(c.Kube, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = "type=" + corev1.EventTypeWarning
	}))
	ch := &Cache{
		client:      c,
		log:         log,
		factory:     f,
		eventsFac:   ef,
		Pods:        f.Core().V1().Pods().Lister(),
		Nodes:       f.Core().V1().Nodes().Lister(),
		Namespaces:  f.Core().V1().Namespaces().Lister(),
		Deployments: f.Apps().V1().Deployments().Lister(),
		StatefulSet: f.Apps().V1().StatefulSets().Lister(),
		Events:      ef.Core().V1().Events().Lister(),
	}
	ch.probe = newConversionProbe(c, log)
	// AddEventHandler only fails on a stopped informer; this one is new.
	ch.problems, _ = newPodIndex(f.Core().V1().Pods().Informer())
	return ch
}

// Client returns the clients behind the cache.
func (c *Cache) Client() *Client { return c.client }

// EventInformer exposes the Warning-event informer so ingestion can watch it.
func (c *Cache) EventInformer() cache.SharedIndexInformer {
	return c.eventsFac.Core().V1().Events().Informer()
}

// Start runs the informers until ctx ends and blocks until their first
// LIST is in, or timeout passes. Flux is looked for now and again every
// minute, so installing Flux later needs no restart.
func (c *Cache) Start(ctx context.Context, timeout time.Duration) error {
	c.EventInformer()
	c.factory.Start(ctx.Done())
	c.eventsFac.Start(ctx.Done())
	wait, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for t, ok := range c.factory.WaitForCacheSync(wait.Done()) {
		if !ok {
			return fmt.Errorf("cache of %v did not sync within %s: is the API server reachable and does shepherd's ServiceAccount may list it?", t, timeout)
		}
	}
	for _, ok := range c.eventsFac.WaitForCacheSync(wait.Done()) {
		if !ok {
			return fmt.Errorf("cache of events did not sync within %s", timeout)
		}
	}
	c.startFlux(ctx, timeout)
	c.probe.run(ctx)
	go func() {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				c.startFlux(ctx, timeout)
				c.probe.run(ctx)
			}
		}
	}()
	c.mu.Lock()
	c.synced = true
	c.mu.Unlock()
	return nil
}

// Synced reports whether the first sync is done (readiness).
func (c *Cache) Synced() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.synced
}

func (c *Cache) startFlux(ctx context.Context, timeout time.Duration) {
	c.mu.RLock()
	started := c.flux != nil
	c.mu.RUnlock()
	if started {
		return
	}
	_, err := c.client.Kube.Discovery().ServerResourcesForGroupVersion(KustomizationGVR.GroupVersion().String())
	if err != nil {
		if !apierrors.IsNotFound(err) {
			c.log.Warn("flux discovery failed", "err", err)
		} else {
			c.setFluxErr(nil)
		}
		return
	}
	// The CRD exists; listing it may still fail (RBAC without the Flux
	// rule, a broken conversion webhook). Wait a bounded time, so that
	// neither startup nor the retry loop hangs, and say why.
	fctx, stop := context.WithCancel(ctx)
	df := dynamicinformer.NewDynamicSharedInformerFactory(c.client.Dynamic, 0)
	inf := df.ForResource(KustomizationGVR)
	var lastMu sync.Mutex
	var last error
	_ = inf.Informer().SetWatchErrorHandler(func(_ *cache.Reflector, err error) {
		lastMu.Lock()
		last = err
		lastMu.Unlock()
	})
	df.Start(fctx.Done())
	wait, cancel := context.WithTimeout(fctx, timeout)
	defer cancel()
	if !cache.WaitForCacheSync(wait.Done(), inf.Informer().HasSynced) {
		stop()
		df.Shutdown()
		lastMu.Lock()
		why := ""
		if last != nil {
			why = ": " + last.Error()
		}
		lastMu.Unlock()
		err := fmt.Errorf("%w within %s (shepherd needs list and watch on kustomizations.kustomize.toolkit.fluxcd.io)%s", ErrFluxUnlisted, timeout, why)
		c.setFluxErr(err)
		c.log.Warn("flux kustomizations not listable; retrying every minute", "err", err)
		return
	}
	c.mu.Lock()
	c.flux, c.fluxErr, c.fluxStop = inf.Lister(), nil, stop
	c.mu.Unlock()
	c.log.Info("watching flux kustomizations")
}

func (c *Cache) setFluxErr(err error) {
	c.mu.Lock()
	c.fluxErr = err
	c.mu.Unlock()
}

func (c *Cache) fluxLister() (cache.GenericLister, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.flux == nil {
		if c.fluxErr != nil {
			return nil, c.fluxErr
		}
		return nil, ErrFluxMissing
	}
	return c.flux, nil
}

// RefreshConversionProbe re-checks CRD conversion webhooks now (after a
// CRD deletion, say) instead of waiting for the next minute.
func (c *Cache) RefreshConversionProbe(ctx context.Context) { c.probe.run(ctx) }

// NamespaceExists reports whether ns is known to the cache.
func (c *Cache) NamespaceExists(ns string) bool {
	_, err := c.Namespaces.Get(ns)
	return err == nil
}
