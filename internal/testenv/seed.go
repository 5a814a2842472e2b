package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
)

// nodeIP is every seeded node's InternalIP: the API server dials it for
// pods/log, and only loopback may be dialled here.
const nodeIP = "127.0.0.1"

// Seeded node names.
const (
	NodeControlPlane = "cp-1"
	NodeWorker1      = "worker-1"
	NodeWorker2      = "worker-2"
)

// SeedOptions sizes the scenario; the zero value gives the default home lab.
type SeedOptions struct {
	// Deployments is the number of healthy Deployments (default 40, the
	// catalogue); more are generated in namespaces apps-00..apps-19.
	Deployments int
	// ExtraPods adds that many Running, Ready pods (namespace "load") beyond
	// the workloads' own, for benchmark-sized clusters.
	ExtraPods int
	// Workers is the number of concurrent creators (default 8).
	Workers int
}

// PodRef names one container of one pod.
type PodRef struct {
	Namespace, Name, Container string
}

// Scenario tells tests what Seed created.
type Scenario struct {
	Namespaces   []string
	Nodes        []string
	Deployments  []types.NamespacedName // healthy ones, all replicas ready
	StatefulSets []types.NamespacedName
	// UnhealthyDeployments own the four problem pods below.
	UnhealthyDeployments []types.NamespacedName
	// PodCount is the number of pods created, problem pods included.
	PodCount int

	CrashLoopPod   PodRef // CrashLoopBackOff, restartCount 14, previous log has a stack trace
	OOMKilledPod   PodRef // lastState OOMKilled, restartCount 5
	ImagePullPod   PodRef // ImagePullBackOff on ImagePullImage
	PendingPod     PodRef // Unschedulable, no node
	LogPod         PodRef // healthy pod (immich) whose log holds a database URL with a password
	ImagePullImage string

	// MemoryPressureNode has MemoryPressure True.
	MemoryPressureNode string

	Kustomizations         []types.NamespacedName // all, healthy or not
	FailingKustomization   types.NamespacedName
	FailingMessage         string
	SuspendedKustomization types.NamespacedName

	// CRDGroup is the API group whose CRDs have an orphaned conversion
	// webhook; CRDs lists them, subdomain group included.
	CRDGroup          string
	CRDSubdomainGroup string
	CRDs              []string
	CustomResources   map[string]int // CRD name → custom resources stored
	ConversionService string         // namespace/name of the missing webhook service
	UnrelatedCRD      string         // a CRD whose group merely ends in the same letters

	// SecretValues are planted in container logs and must never reach a model.
	SecretValues []string

	LogServer     *LogServer
	LogServerAddr string
	// SeedTime is how long Seed took.
	SeedTime time.Duration
}

// Close stops the scenario's log server.
func (s *Scenario) Close() error {
	if s == nil {
		return nil
	}
	return s.LogServer.Close()
}

type seeder struct {
	cs     *kubernetes.Clientset
	dyn    *dynamic.DynamicClient
	ext    *apiextclient.Clientset
	logs   map[string][]string
	logsMu sync.Mutex
	sc     *Scenario
	scMu   sync.Mutex
	podIdx int
	now    time.Time
}

// Seed creates the home-lab scenario on an empty cluster and starts the
// stand-in kubelet log server the seeded nodes point at. Call it once per
// cluster; Scenario.Close stops the log server.
func Seed(ctx context.Context, cfg *rest.Config, opts SeedOptions) (*Scenario, error) {
	if opts.Deployments < 0 || opts.ExtraPods < 0 || opts.Workers < 0 {
		return nil, errors.New("seed: Deployments, ExtraPods and Workers must not be negative")
	}
	if opts.Deployments == 0 {
		opts.Deployments = len(healthyApps)
	}
	if opts.Workers == 0 {
		opts.Workers = 8
	}
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = 2000, 4000
	s := &seeder{logs: map[string][]string{}, now: time.Now(), sc: &Scenario{
		CustomResources: map[string]int{},
		SecretValues:    []string{secretPassword, secretBearer, secretAWSKey, secretPGPass, secretRedisPass, secretKeyBody},
	}}
	var err error
	// Protobuf halves the API server's CPU per request; it matters at
	// benchmark sizes on a 2-core machine. CRDs only speak JSON.
	pc := rest.CopyConfig(c)
	pc.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	pc.ContentType = "application/vnd.kubernetes.protobuf"
	if s.cs, err = kubernetes.NewForConfig(pc); err != nil {
		return nil, fmt.Errorf("seed: clientset: %w", err)
	}
	if s.dyn, err = dynamic.NewForConfig(c); err != nil {
		return nil, fmt.Errorf("seed: dynamic client: %w", err)
	}
	if s.ext, err = apiextclient.NewForConfig(c); err != nil {
		return nil, fmt.Errorf("seed: apiextensions client: %w", err)
	}

	// The log server must exist before the nodes, which advertise its port;
	// its content is filled in as pods are created.
	begin := time.Now()
	ls, err := StartLogServer(nil)
	if err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	s.sc.LogServer, s.sc.LogServerAddr = ls, ls.Addr
	if err := s.run(ctx, opts); err != nil {
		_ = ls.Close()
		return nil, fmt.Errorf("seed: %w", err)
	}
	s.logsMu.Lock()
	for k, v := range s.logs {
		ls.SetLog(k, v)
	}
	s.logsMu.Unlock()
	// What the kubelet answers for a container stuck pulling its image.
	ip := s.sc.ImagePullPod
	ls.SetError(LogKey(ip.Namespace, ip.Name, ip.Container, false), http.StatusBadRequest,
		fmt.Sprintf("container %q in pod %q is waiting to start: trying and failing to pull image", ip.Container, ip.Name))
	s.sc.SeedTime = time.Since(begin)
	return s.sc, nil
}

func (s *seeder) run(ctx context.Context, opts SeedOptions) error {
	namespaces := append([]string(nil), seedNamespaces...)
	for i := len(healthyApps); i < opts.Deployments && i-len(healthyApps) < 20; i++ {
		namespaces = append(namespaces, generatedApp(i).ns)
	}
	if opts.ExtraPods > 0 {
		namespaces = append(namespaces, "load")
	}
	s.sc.Namespaces = namespaces
	if err := parallel(ctx, opts.Workers, len(namespaces), func(ctx context.Context, i int) error {
		_, err := s.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespaces[i], Labels: map[string]string{"kustomize.toolkit.fluxcd.io/name": "infrastructure"}}}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create namespace %s: %w", namespaces[i], err)
		}
		return nil
	}); err != nil {
		return err
	}

	// Independent groups run side by side; each is itself parallel where it is big.
	steps := []func(context.Context) error{
		s.nodes,
		s.orphanedCRDs,
		s.kustomizations,
		s.problemPods,
		s.statefulSets,
	}
	if err := parallel(ctx, len(steps), len(steps), func(ctx context.Context, i int) error { return steps[i](ctx) }); err != nil {
		return err
	}

	apps := make([]app, opts.Deployments)
	for i := range apps {
		if i < len(healthyApps) {
			apps[i] = healthyApps[i]
		} else {
			apps[i] = generatedApp(i)
		}
	}
	if err := parallel(ctx, opts.Workers, len(apps), func(ctx context.Context, i int) error {
		return s.healthyDeployment(ctx, apps[i])
	}); err != nil {
		return err
	}
	if err := parallel(ctx, opts.Workers, opts.ExtraPods, func(ctx context.Context, i int) error {
		return s.extraPod(ctx, i)
	}); err != nil {
		return err
	}
	return s.events(ctx)
}

// parallel runs fn for 0..n-1 on up to workers goroutines and returns the
// first error; the others are cancelled.
func parallel(ctx context.Context, workers, n int, fn func(context.Context, int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	for range min(workers, n) {
		wg.Go(func() {
			for i := range next {
				if err := fn(ctx, i); err != nil {
					once.Do(func() { firstErr = err; cancel() })
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		// The caller's context ended before all work was handed out.
		return ctx.Err()
	}
	return firstErr
}

func (s *seeder) addLog(ns, pod, container string, previous bool, lines []string) {
	s.logsMu.Lock()
	defer s.logsMu.Unlock()
	s.logs[LogKey(ns, pod, container, previous)] = lines
}

// nextPod returns a worker node and a pod IP, spreading pods over workers.
func (s *seeder) nextPod() (string, string) {
	s.scMu.Lock()
	defer s.scMu.Unlock()
	i := s.podIdx
	s.podIdx++
	s.sc.PodCount++
	node := NodeWorker1
	if i%2 == 1 {
		node = NodeWorker2
	}
	return node, fmt.Sprintf("10.42.%d.%d", 1+(i/250)%200, 2+i%250)
}

func (s *seeder) nodes(ctx context.Context) error {
	type spec struct {
		name, role, kubelet string
		memPressure         bool
	}
	nodes := []spec{
		{NodeControlPlane, "control-plane", "v1.37.2", false},
		{NodeWorker1, "worker", "v1.37.2", false},
		{NodeWorker2, "worker", "v1.37.1", true},
	}
	for _, n := range nodes {
		labels := map[string]string{
			"kubernetes.io/hostname": n.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
			"beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
			"node-role.kubernetes.io/" + n.role:    "",
			"node.longhorn.io/create-default-disk": "true",
		}
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.name, Labels: labels, Annotations: map[string]string{
			"node.alpha.kubernetes.io/ttl":                           "0",
			"volumes.kubernetes.io/controller-managed-attach-detach": "true",
		}}}
		if n.role == "control-plane" {
			node.Spec.Taints = []corev1.Taint{{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule}}
		}
		created, err := s.cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create node %s: %w", n.name, err)
		}
		hb := metav1.NewTime(s.now.Add(-20 * time.Second).Truncate(time.Second))
		since := metav1.NewTime(s.now.Add(-72 * time.Hour).Truncate(time.Second))
		cond := func(t corev1.NodeConditionType, status corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
			return corev1.NodeCondition{Type: t, Status: status, Reason: reason, Message: msg, LastHeartbeatTime: hb, LastTransitionTime: since}
		}
		mem := cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available")
		if n.memPressure {
			mem = cond(corev1.NodeMemoryPressure, corev1.ConditionTrue, "KubeletHasInsufficientMemory", "kubelet has insufficient memory available")
			mem.LastTransitionTime = metav1.NewTime(s.now.Add(-14 * time.Minute).Truncate(time.Second))
			s.sc.MemoryPressureNode = n.name
		}
		capacity := corev1.ResourceList{"cpu": mustQ("4"), "memory": mustQ("16318412Ki"), "pods": mustQ("110"), "ephemeral-storage": mustQ("479151816Ki")}
		created.Status = corev1.NodeStatus{
			Capacity:    capacity,
			Allocatable: corev1.ResourceList{"cpu": mustQ("4"), "memory": mustQ("16216012Ki"), "pods": mustQ("110"), "ephemeral-storage": mustQ("441586376796")},
			Phase:       corev1.NodeRunning,
			Conditions: []corev1.NodeCondition{
				mem,
				cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
				cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
				cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "kubelet is posting ready status"),
			},
			// Every node is the stand-in log server on loopback, so pods/log
			// works for any pod and the API server never dials off-host.
			Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: nodeIP}, {Type: corev1.NodeHostName, Address: n.name}},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: s.sc.LogServer.Port}},
			NodeInfo: corev1.NodeSystemInfo{
				MachineID: fmt.Sprintf("%016x%016x", rng(n.name).Uint64(), rng(n.name+"m").Uint64()), SystemUUID: fmt.Sprintf("%08x-0000-4000-8000-%012x", rng(n.name).Uint32(), rng(n.name).Uint64()&0xffffffffffff),
				BootID:        fmt.Sprintf("%08x-1111-4111-8111-%012x", rng(n.name+"b").Uint32(), rng(n.name+"b").Uint64()&0xffffffffffff),
				KernelVersion: "6.1.0-27-amd64", OSImage: "Debian GNU/Linux 12 (bookworm)", ContainerRuntimeVersion: "containerd://1.7.24",
				KubeletVersion: n.kubelet, OperatingSystem: "linux", Architecture: "amd64",
			},
		}
		if _, err := s.cs.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update node %s status: %w", n.name, err)
		}
		s.sc.Nodes = append(s.sc.Nodes, n.name)
	}
	return nil
}

// healthyDeployment creates a Deployment, its ReplicaSet and its Running pods,
// and writes the status a controller and kubelet would have written.
func (s *seeder) healthyDeployment(ctx context.Context, a app) error {
	d, err := s.createDeployment(ctx, a, a.replicas)
	if err != nil {
		return err
	}
	rs, err := s.createReplicaSet(ctx, d, a.replicas)
	if err != nil {
		return err
	}
	for i := range a.replicas {
		name := rs.Name + "-" + suffix(rng(rs.Name+fmt.Sprint(i)), 5)
		node, ip := s.nextPod()
		p := pod(rs.Spec.Template, a.ns, name, node, controllerRef("ReplicaSet", rs.ObjectMeta), nil)
		if err := s.runningPod(ctx, a, p, ip, 26*time.Hour); err != nil {
			return err
		}
		if a.name == "immich" && i == 0 {
			s.sc.LogPod = PodRef{a.ns, name, a.name}
		}
	}
	s.scMu.Lock()
	s.sc.Deployments = append(s.sc.Deployments, types.NamespacedName{Namespace: a.ns, Name: a.name})
	s.scMu.Unlock()
	return nil
}

func (s *seeder) createDeployment(ctx context.Context, a app, ready int32) (*appsv1.Deployment, error) {
	d, err := s.cs.AppsV1().Deployments(a.ns).Create(ctx, deployment(a, a.replicas), metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create deployment %s/%s: %w", a.ns, a.name, err)
	}
	d.Status = deploymentStatus(d, ready)
	if d, err = s.cs.AppsV1().Deployments(a.ns).UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
		return nil, fmt.Errorf("update deployment %s/%s status: %w", a.ns, a.name, err)
	}
	return d, nil
}

func (s *seeder) createReplicaSet(ctx context.Context, d *appsv1.Deployment, ready int32) (*appsv1.ReplicaSet, error) {
	rs, err := s.cs.AppsV1().ReplicaSets(d.Namespace).Create(ctx, replicaSet(d), metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create replicaset for %s/%s: %w", d.Namespace, d.Name, err)
	}
	rs.Status = appsv1.ReplicaSetStatus{Replicas: *rs.Spec.Replicas, FullyLabeledReplicas: *rs.Spec.Replicas, ReadyReplicas: ready, AvailableReplicas: ready, ObservedGeneration: rs.Generation}
	if rs, err = s.cs.AppsV1().ReplicaSets(d.Namespace).UpdateStatus(ctx, rs, metav1.UpdateOptions{}); err != nil {
		return nil, fmt.Errorf("update replicaset %s/%s status: %w", d.Namespace, rs.Name, err)
	}
	return rs, nil
}

func controllerRef(kind string, m metav1.ObjectMeta) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: "apps/v1", Kind: kind, Name: m.Name, UID: m.UID, Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}
}

func (s *seeder) statefulSets(ctx context.Context) error {
	for _, a := range statefulApps {
		sts, err := s.cs.AppsV1().StatefulSets(a.ns).Create(ctx, statefulSet(a), metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create statefulset %s/%s: %w", a.ns, a.name, err)
		}
		rev := a.name + "-" + suffix(rng("sts/"+a.name), 10)
		sts.Status = appsv1.StatefulSetStatus{
			ObservedGeneration: sts.Generation, Replicas: a.replicas, ReadyReplicas: a.replicas, CurrentReplicas: a.replicas,
			UpdatedReplicas: a.replicas, AvailableReplicas: a.replicas, CurrentRevision: rev, UpdateRevision: rev, CollisionCount: ptr.To(int32(0)),
		}
		if sts, err = s.cs.AppsV1().StatefulSets(a.ns).UpdateStatus(ctx, sts, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update statefulset %s/%s status: %w", a.ns, a.name, err)
		}
		for i := range a.replicas {
			name := fmt.Sprintf("%s-%d", a.name, i)
			node, ip := s.nextPod()
			p := pod(sts.Spec.Template, a.ns, name, node, controllerRef("StatefulSet", sts.ObjectMeta),
				map[string]string{"controller-revision-hash": rev, "statefulset.kubernetes.io/pod-name": name, "apps.kubernetes.io/pod-index": fmt.Sprint(i)})
			p.Spec.Hostname, p.Spec.Subdomain = name, sts.Spec.ServiceName
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data-" + name},
			}})
			if err := s.runningPod(ctx, a, p, ip, 50*time.Hour); err != nil {
				return err
			}
		}
		s.scMu.Lock()
		s.sc.StatefulSets = append(s.sc.StatefulSets, types.NamespacedName{Namespace: a.ns, Name: a.name})
		s.scMu.Unlock()
	}
	return nil
}

func (s *seeder) extraPod(ctx context.Context, i int) error {
	a := app{ns: "load", name: fmt.Sprintf("batch-%05d", i), image: "ghcr.io/home-lab/batch-worker:2.3.1", chart: "batch-1.0.0", port: 8080, replicas: 1, cpu: "10m", mem: "32Mi", memLimit: "64Mi"}
	node, ip := s.nextPod()
	p := pod(podTemplate(a), a.ns, a.name, node, metav1.OwnerReference{}, nil)
	created, err := s.cs.CoreV1().Pods(a.ns).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create pod %s/%s: %w", a.ns, a.name, err)
	}
	created.Status = runningStatus(created, ip, s.now.Add(-3*time.Hour))
	if _, err := s.cs.CoreV1().Pods(a.ns).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update pod %s/%s status: %w", a.ns, a.name, err)
	}
	s.addLog(a.ns, a.name, a.name, false, genericLogs(a, a.name))
	return nil
}

// runningPod creates p, marks it Running and Ready since age ago, and serves
// the app's logs for it.
func (s *seeder) runningPod(ctx context.Context, a app, p *corev1.Pod, ip string, age time.Duration) error {
	created, err := s.cs.CoreV1().Pods(a.ns).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create pod %s/%s: %w", a.ns, p.Name, err)
	}
	created.Status = runningStatus(created, ip, s.now.Add(-age))
	if _, err := s.cs.CoreV1().Pods(a.ns).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update pod %s/%s status: %w", a.ns, p.Name, err)
	}
	lines := a.logs
	if lines == nil {
		lines = genericLogs(a, p.Name)
	}
	s.addLog(a.ns, p.Name, a.name, false, lines)
	return nil
}
