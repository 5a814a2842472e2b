package testenv

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

func mustQ(s string) resource.Quantity { return resource.MustParse(s) }

// The unhealthy workloads: each a Deployment with 0 of 1 ready and one pod in
// the state a kubelet or scheduler would report.
var (
	crashApp = app{ns: "mail", name: "rspamd", image: "docker.io/rspamd/rspamd:3.10.2", chart: "mail-1.4.2", port: 11334, replicas: 1, cpu: "100m", mem: "256Mi", memLimit: "512Mi",
		env: map[string]string{"RSPAMD_REDIS_SERVERS": "rspamd-redis.mail.svc.cluster.local:6379"}}
	oomApp  = app{ns: "media", name: "tdarr", image: "ghcr.io/haveagitgat/tdarr:2.27.02", chart: "tdarr-4.6.2", port: 8265, replicas: 1, cpu: "1", mem: "1Gi", memLimit: "2Gi"}
	pullApp = app{ns: "media", name: "example-app", image: "ghcr.io/example/app:v9.9.9-typo", chart: "example-app-0.3.1", port: 8080, replicas: 1, cpu: "50m", mem: "64Mi", memLimit: "128Mi"}
	pendApp = app{ns: "monitoring", name: "thanos-compactor", image: "quay.io/thanos/thanos:v0.36.1", chart: "thanos-15.8.1", port: 10902, replicas: 1, cpu: "500m", mem: "24Gi", memLimit: "24Gi"}
)

const unschedulableMessage = "0/3 nodes are available: 3 Insufficient memory."

func (s *seeder) problemPods(ctx context.Context) error {
	for _, p := range []struct {
		a      app
		status func(*corev1.Pod) corev1.PodStatus
		ref    *PodRef
		logs   func(*seeder, *corev1.Pod)
	}{
		{crashApp, s.crashLoopStatus, &s.sc.CrashLoopPod, crashLogs},
		{oomApp, s.oomStatus, &s.sc.OOMKilledPod, oomLogs},
		{pullApp, s.pullStatus, &s.sc.ImagePullPod, nil},
		{pendApp, s.pendingStatus, &s.sc.PendingPod, nil},
	} {
		d, err := s.createDeployment(ctx, p.a, 0)
		if err != nil {
			return err
		}
		rs, err := s.createReplicaSet(ctx, d, 0)
		if err != nil {
			return err
		}
		name := rs.Name + "-" + suffix(rng(rs.Name), 5)
		node, ip := s.nextPod()
		if p.a.name == pendApp.name {
			node = ""
		}
		pd := pod(rs.Spec.Template, p.a.ns, name, node, controllerRef("ReplicaSet", rs.ObjectMeta), nil)
		created, err := s.cs.CoreV1().Pods(p.a.ns).Create(ctx, pd, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create pod %s/%s: %w", p.a.ns, name, err)
		}
		created.Status = p.status(created)
		if node != "" {
			created.Status.HostIP, created.Status.HostIPs = nodeIP, []corev1.HostIP{{IP: nodeIP}}
			created.Status.PodIP, created.Status.PodIPs = ip, []corev1.PodIP{{IP: ip}}
		}
		if _, err := s.cs.CoreV1().Pods(p.a.ns).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update pod %s/%s status: %w", p.a.ns, name, err)
		}
		*p.ref = PodRef{p.a.ns, name, p.a.name}
		if p.logs != nil {
			p.logs(s, created)
		}
		s.sc.UnhealthyDeployments = append(s.sc.UnhealthyDeployments, types.NamespacedName{Namespace: p.a.ns, Name: p.a.name})
	}
	s.sc.ImagePullImage = pullApp.image
	return nil
}

func (s *seeder) podConds(ready bool, started time.Time) []corev1.PodCondition {
	st := metav1.NewTime(started.Truncate(time.Second))
	r := corev1.ConditionTrue
	var reason, msg string
	if !ready {
		r = corev1.ConditionFalse
		reason = "ContainersNotReady"
	}
	return []corev1.PodCondition{
		{Type: "PodReadyToStartContainers", Status: corev1.ConditionTrue, LastTransitionTime: st},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: st},
		{Type: corev1.PodReady, Status: r, Reason: reason, Message: msg, LastTransitionTime: st},
		{Type: corev1.ContainersReady, Status: r, Reason: reason, Message: msg, LastTransitionTime: st},
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: st},
	}
}

func (s *seeder) baseStatus(p *corev1.Pod, started time.Time) corev1.PodStatus {
	st := metav1.NewTime(started.Truncate(time.Second))
	c := p.Spec.Containers[0]
	return corev1.PodStatus{
		Phase:      corev1.PodRunning,
		Conditions: s.podConds(false, started),
		StartTime:  &st, QOSClass: p.Status.QOSClass,
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: c.Name, Image: c.Image, ImageID: imageID(c.Image), Started: ptr.To(false),
			ContainerID: fmt.Sprintf("containerd://%016x%016x%016x%016x", rng(p.Name).Uint64(), rng(p.Name+"1").Uint64(), rng(p.Name+"2").Uint64(), rng(p.Name+"3").Uint64()),
		}},
	}
}

func (s *seeder) crashLoopStatus(p *corev1.Pod) corev1.PodStatus {
	st := s.baseStatus(p, s.now.Add(-3*time.Hour))
	for i := range st.Conditions {
		if st.Conditions[i].Reason == "ContainersNotReady" {
			st.Conditions[i].Message = "containers with unready status: [rspamd]"
		}
	}
	cs := &st.ContainerStatuses[0]
	cs.RestartCount = 14
	cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
		Reason:  "CrashLoopBackOff",
		Message: fmt.Sprintf("back-off 5m0s restarting failed container=rspamd pod=%s_mail(%s)", p.Name, p.UID),
	}}
	cs.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode: 1, Reason: "Error",
		StartedAt:   metav1.NewTime(s.now.Add(-4*time.Minute - 12*time.Second).Truncate(time.Second)),
		FinishedAt:  metav1.NewTime(s.now.Add(-4*time.Minute - 9*time.Second).Truncate(time.Second)),
		ContainerID: cs.ContainerID,
	}}
	return st
}

func (s *seeder) oomStatus(p *corev1.Pod) corev1.PodStatus {
	// Restarted 20 s ago after its fifth OOM kill; not ready again yet.
	st := s.baseStatus(p, s.now.Add(-9*time.Hour))
	for i := range st.Conditions {
		if st.Conditions[i].Reason == "ContainersNotReady" {
			st.Conditions[i].Message = "containers with unready status: [tdarr]"
		}
	}
	cs := &st.ContainerStatuses[0]
	cs.RestartCount = 5
	cs.Started = ptr.To(true)
	cs.State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(s.now.Add(-20 * time.Second).Truncate(time.Second))}}
	cs.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode: 137, Reason: "OOMKilled",
		StartedAt:   metav1.NewTime(s.now.Add(-47 * time.Minute).Truncate(time.Second)),
		FinishedAt:  metav1.NewTime(s.now.Add(-21 * time.Second).Truncate(time.Second)),
		ContainerID: cs.ContainerID,
	}}
	return st
}

func (s *seeder) pullStatus(p *corev1.Pod) corev1.PodStatus {
	st := s.baseStatus(p, s.now.Add(-35*time.Minute))
	st.Phase = corev1.PodPending
	for i := range st.Conditions {
		if st.Conditions[i].Reason == "ContainersNotReady" {
			st.Conditions[i].Message = "containers with unready status: [example-app]"
		}
	}
	cs := &st.ContainerStatuses[0]
	cs.ImageID, cs.ContainerID = "", ""
	cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
		Reason:  "ImagePullBackOff",
		Message: fmt.Sprintf("Back-off pulling image %q", pullApp.image),
	}}
	return st
}

func (s *seeder) pendingStatus(p *corev1.Pod) corev1.PodStatus {
	return corev1.PodStatus{
		Phase:    corev1.PodPending,
		QOSClass: p.Status.QOSClass,
		Conditions: []corev1.PodCondition{{
			Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
			Message: unschedulableMessage, LastTransitionTime: metav1.NewTime(s.now.Add(-2 * time.Hour).Truncate(time.Second)),
		}},
	}
}

func crashLogs(s *seeder, p *corev1.Pod) {
	ns, c := p.Namespace, crashApp.name
	s.addLog(ns, p.Name, c, false, []string{
		"2024-11-24 10:21:03 #1(main) <8a1f2c>; main; main: rspamd 3.10.2 is loading configuration, build id: release",
		"2024-11-24 10:21:03 #1(main) <8a1f2c>; cfg; rspamd_config_read: loading configuration from /etc/rspamd/rspamd.conf",
		"2024-11-24 10:21:04 #1(main) <8a1f2c>; lua; lua_redis.lua:1018: connecting to redis://:" + secretRedisPass + "@rspamd-redis.mail.svc.cluster.local:6379/0",
		"2024-11-24 10:21:04 #1(main) <8a1f2c>; lua; lua_redis.lua:1024: cannot connect to redis: Connection refused",
	})
	s.addLog(ns, p.Name, c, true, []string{
		"2024-11-24 10:16:50 #1(main) <3c9d07>; main; main: rspamd 3.10.2 is loading configuration, build id: release",
		"2024-11-24 10:16:50 #1(main) <3c9d07>; cfg; rspamd_config_read: loading configuration from /etc/rspamd/rspamd.conf",
		"2024-11-24 10:16:51 #1(main) <3c9d07>; lua; lua_redis.lua:1018: connecting to redis://:" + secretRedisPass + "@rspamd-redis.mail.svc.cluster.local:6379/0",
		"2024-11-24 10:16:51 #1(main) <3c9d07>; lua; lua_redis.lua:1024: cannot connect to redis: Connection refused",
		"2024-11-24 10:16:51 #1(main) <3c9d07>; cfg; rspamd_lua_call_post_init: cannot call post-init function: /usr/share/rspamd/lualib/lua_bayes_redis.lua:142: attempt to index a nil value (local 'redis_params'); trace:",
		"[1]:{/usr/share/rspamd/lualib/lua_bayes_redis.lua:142 - lua_bayes_init_statfile [Lua]};",
		"[2]:{/usr/share/rspamd/lualib/lua_bayes_redis.lua:201 - <unknown> [Lua]};",
		"[3]:{/usr/share/rspamd/plugins/bayes_expiry.lua:433 - <unknown> [Lua]};",
		"[4]:{[C]:-1 - xpcall [C]};",
		"2024-11-24 10:16:51 #1(main) <3c9d07>; main; rspamd_main: fatal error: cannot initialize statistics, exiting",
	})
}

func oomLogs(s *seeder, p *corev1.Pod) {
	ns, c := p.Namespace, oomApp.name
	s.addLog(ns, p.Name, c, false, []string{
		"[2024-11-24T10:24:31.120] [INFO] Tdarr_Server - Starting Tdarr_Server",
		"[2024-11-24T10:24:32.401] [INFO] Tdarr_Server - Scanning library 'Movies' (41231 files)",
	})
	s.addLog(ns, p.Name, c, true, []string{
		"[2024-11-24T09:37:02.914] [INFO] Tdarr_Server - Scanning library 'Movies' (41231 files)",
		"[2024-11-24T10:23:58.227] [WARN] Tdarr_Server - Health check queue length 18211, heap used 1.93 GiB",
	})
}

// event builds a core/v1 Event as the kubelet, scheduler or a controller
// records it (legacy fields: count, first/lastTimestamp).
func (s *seeder) event(ns string, obj corev1.ObjectReference, typ, reason, msg, component, host string, count int32, first, last time.Duration) *corev1.Event {
	h := rng(fmt.Sprint(obj.Namespace, obj.Name, reason, msg, last))
	return &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: fmt.Sprintf("%s.%016x", obj.Name, h.Uint64()), Namespace: ns},
		InvolvedObject: obj,
		Type:           typ, Reason: reason, Message: msg, Count: count,
		Source:              corev1.EventSource{Component: component, Host: host},
		FirstTimestamp:      metav1.NewTime(s.now.Add(-first).Truncate(time.Second)),
		LastTimestamp:       metav1.NewTime(s.now.Add(-last).Truncate(time.Second)),
		ReportingController: component, ReportingInstance: component + "-" + host,
	}
}

func (s *seeder) events(ctx context.Context) error {
	podObj := func(r PodRef) (corev1.ObjectReference, error) {
		p, err := s.cs.CoreV1().Pods(r.Namespace).Get(ctx, r.Name, metav1.GetOptions{})
		if err != nil {
			return corev1.ObjectReference{}, fmt.Errorf("get pod %s/%s: %w", r.Namespace, r.Name, err)
		}
		return corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID, APIVersion: "v1", ResourceVersion: p.ResourceVersion, FieldPath: "spec.containers{" + r.Container + "}"}, nil
	}
	crash, err := podObj(s.sc.CrashLoopPod)
	if err != nil {
		return err
	}
	oom, err := podObj(s.sc.OOMKilledPod)
	if err != nil {
		return err
	}
	pull, err := podObj(s.sc.ImagePullPod)
	if err != nil {
		return err
	}
	pend, err := podObj(s.sc.PendingPod)
	if err != nil {
		return err
	}
	pend.FieldPath = ""
	healthy, err := podObj(s.sc.LogPod)
	if err != nil {
		return err
	}
	backoff := fmt.Sprintf("Back-off restarting failed container rspamd in pod %s_mail(%s)", crash.Name, crash.UID)
	ks := s.sc.FailingKustomization
	ksObj := corev1.ObjectReference{Kind: "Kustomization", Namespace: ks.Namespace, Name: ks.Name, APIVersion: "kustomize.toolkit.fluxcd.io/v1"}
	nodeObj := corev1.ObjectReference{Kind: "Node", Name: s.sc.MemoryPressureNode, UID: types.UID(s.sc.MemoryPressureNode), APIVersion: "v1"}
	pullMsg := fmt.Sprintf("Failed to pull image %q: rpc error: code = NotFound desc = failed to pull and unpack image %q: failed to resolve reference %q: %s: not found", pullApp.image, pullApp.image, pullApp.image, pullApp.image)
	m := time.Minute
	evs := []*corev1.Event{
		// Three objects for one (pod, BackOff): the recorder starts a new
		// Event when the old one has expired or its message changed.
		s.event(crash.Namespace, crash, corev1.EventTypeWarning, "BackOff", backoff, "kubelet", NodeWorker1, 42, 180*m, 1*m),
		s.event(crash.Namespace, crash, corev1.EventTypeWarning, "BackOff", backoff, "kubelet", NodeWorker1, 12, 300*m, 190*m),
		s.event(crash.Namespace, crash, corev1.EventTypeWarning, "BackOff", backoff, "kubelet", NodeWorker1, 3, 420*m, 400*m),
		s.event(crash.Namespace, crash, corev1.EventTypeNormal, "Pulled", fmt.Sprintf("Container image %q already present on machine", crashApp.image), "kubelet", NodeWorker1, 15, 180*m, 4*m),
		s.event(crash.Namespace, crash, corev1.EventTypeNormal, "Created", "Created container: rspamd", "kubelet", NodeWorker1, 15, 180*m, 4*m),
		s.event(crash.Namespace, crash, corev1.EventTypeNormal, "Started", "Started container rspamd", "kubelet", NodeWorker1, 15, 180*m, 4*m),
		s.event(oom.Namespace, oom, corev1.EventTypeWarning, "BackOff", fmt.Sprintf("Back-off restarting failed container tdarr in pod %s_media(%s)", oom.Name, oom.UID), "kubelet", NodeWorker2, 4, 400*m, 2*m),
		s.event(oom.Namespace, oom, corev1.EventTypeNormal, "Pulled", fmt.Sprintf("Container image %q already present on machine", oomApp.image), "kubelet", NodeWorker2, 6, 540*m, 1*m),
		s.event(pend.Namespace, pend, corev1.EventTypeWarning, "FailedScheduling", unschedulableMessage+" preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.", "default-scheduler", "", 25, 120*m, 3*m),
		s.event(pull.Namespace, pull, corev1.EventTypeNormal, "Pulling", fmt.Sprintf("Pulling image %q", pullApp.image), "kubelet", NodeWorker1, 8, 35*m, 5*m),
		s.event(pull.Namespace, pull, corev1.EventTypeWarning, "Failed", pullMsg, "kubelet", NodeWorker1, 8, 35*m, 5*m),
		s.event(pull.Namespace, pull, corev1.EventTypeWarning, "Failed", "Error: ErrImagePull", "kubelet", NodeWorker1, 8, 35*m, 5*m),
		s.event(pull.Namespace, pull, corev1.EventTypeNormal, "BackOff", fmt.Sprintf("Back-off pulling image %q", pullApp.image), "kubelet", NodeWorker1, 130, 34*m, 1*m),
		s.event(pull.Namespace, pull, corev1.EventTypeWarning, "Failed", "Error: ImagePullBackOff", "kubelet", NodeWorker1, 130, 34*m, 1*m),
		s.event(healthy.Namespace, healthy, corev1.EventTypeNormal, "Scheduled", fmt.Sprintf("Successfully assigned %s/%s to %s", healthy.Namespace, healthy.Name, NodeWorker1), "default-scheduler", "", 1, 26*60*m, 26*60*m),
		s.event(healthy.Namespace, healthy, corev1.EventTypeNormal, "Started", "Started container immich", "kubelet", NodeWorker1, 1, 26*60*m, 26*60*m),
		s.event(ks.Namespace, ksObj, corev1.EventTypeWarning, "ReconciliationFailed", s.sc.FailingMessage, "kustomize-controller", "", 17, 170*m, 2*m),
		s.event(ks.Namespace, corev1.ObjectReference{Kind: "Kustomization", Namespace: "flux-system", Name: "apps-immich", APIVersion: "kustomize.toolkit.fluxcd.io/v1"}, corev1.EventTypeNormal, "ReconciliationSucceeded", "Reconciliation finished in 1.21s, next run in 10m0s", "kustomize-controller", "", 30, 300*m, 6*m),
		s.event("default", nodeObj, corev1.EventTypeWarning, "EvictionThresholdMet", "Attempting to reclaim memory", "kubelet", s.sc.MemoryPressureNode, 3, 14*m, 2*m),
		s.event("default", nodeObj, corev1.EventTypeNormal, "NodeHasInsufficientMemory", fmt.Sprintf("Node %s status is now: NodeHasInsufficientMemory", s.sc.MemoryPressureNode), "kubelet", s.sc.MemoryPressureNode, 1, 14*m, 14*m),
	}
	return parallel(ctx, 8, len(evs), func(ctx context.Context, i int) error {
		if _, err := s.cs.CoreV1().Events(evs[i].Namespace).Create(ctx, evs[i], metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create event %s/%s (%s): %w", evs[i].Namespace, evs[i].Name, evs[i].Reason, err)
		}
		return nil
	})
}
