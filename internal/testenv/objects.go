package testenv

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// Object builders: everything a Helm chart would render, so the raw JSON of a
// Deployment is several KB as in a real cluster and summaries have work to do.

func appLabels(a app) map[string]string {
	chartName := a.chart
	if i := strings.LastIndex(chartName, "-"); i > 0 {
		chartName = chartName[:i]
	}
	return map[string]string{
		"app.kubernetes.io/name":                a.name,
		"app.kubernetes.io/instance":            a.name,
		"app.kubernetes.io/component":           "server",
		"app.kubernetes.io/part-of":             a.ns,
		"app.kubernetes.io/version":             imageTag(a.image),
		"app.kubernetes.io/managed-by":          "Helm",
		"helm.sh/chart":                         a.chart,
		"kustomize.toolkit.fluxcd.io/name":      "apps-" + chartName,
		"kustomize.toolkit.fluxcd.io/namespace": "flux-system",
	}
}

func selectorLabels(a app) map[string]string {
	return map[string]string{"app.kubernetes.io/name": a.name, "app.kubernetes.io/instance": a.name}
}

func podTemplate(a app) corev1.PodTemplateSpec {
	env := []corev1.EnvVar{
		{Name: "TZ", Value: "Europe/Berlin"},
		{Name: "LOG_LEVEL", Value: "info"},
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
		{Name: "GOMEMLIMIT", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory", ContainerName: a.name}}},
		{Name: "DB_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: a.name + "-secrets"}, Key: "db-password", Optional: ptr.To(true)}}},
	}
	for _, k := range slices.Sorted(maps.Keys(a.env)) {
		env = append(env, corev1.EnvVar{Name: k, Value: a.env[k]})
	}
	probe := func(path string, delay int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:        corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("http"), Scheme: corev1.URISchemeHTTP}},
			InitialDelaySeconds: delay, PeriodSeconds: 10, TimeoutSeconds: 3, SuccessThreshold: 1, FailureThreshold: 5,
		}
	}
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{
			Labels: selectorLabels(a),
			Annotations: map[string]string{
				"checksum/config":                         fmt.Sprintf("%x", rng(a.ns+a.name).Uint64()),
				"prometheus.io/scrape":                    "true",
				"prometheus.io/port":                      fmt.Sprint(a.port),
				"kubectl.kubernetes.io/default-container": a.name,
			},
		},
		Spec: corev1.PodSpec{
			ServiceAccountName:            a.name,
			AutomountServiceAccountToken:  ptr.To(false),
			TerminationGracePeriodSeconds: ptr.To(int64(30)),
			EnableServiceLinks:            ptr.To(false),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To(int64(1000)), RunAsGroup: ptr.To(int64(1000)), FSGroup: ptr.To(int64(1000)),
				FSGroupChangePolicy: ptr.To(corev1.FSGroupChangeOnRootMismatch),
				SeccompProfile:      &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name:            a.name,
				Image:           a.image,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Ports:           []corev1.ContainerPort{{Name: "http", ContainerPort: a.port, Protocol: corev1.ProtocolTCP}, {Name: "metrics", ContainerPort: 9100, Protocol: corev1.ProtocolTCP}},
				Env:             env,
				EnvFrom:         []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: a.name + "-config"}, Optional: ptr.To(true)}}},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(a.cpu), corev1.ResourceMemory: resource.MustParse(a.mem)},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(a.memLimit)},
				},
				LivenessProbe:  probe("/healthz", 30),
				ReadinessProbe: probe("/readyz", 5),
				StartupProbe:   probe("/healthz", 0),
				VolumeMounts: []corev1.VolumeMount{
					{Name: "config", MountPath: "/config"},
					{Name: "data", MountPath: "/data"},
					{Name: "tmp", MountPath: "/tmp"},
				},
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
				TerminationMessagePath:   "/dev/termination-log",
				TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
			}},
			Volumes: []corev1.Volume{
				{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: a.name + "-config"}, Optional: ptr.To(true)}}},
				{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: a.name + "-data"}}},
				{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: ptr.To(resource.MustParse("64Mi"))}}},
			},
			Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
				PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
					Weight: 100,
					PodAffinityTerm: corev1.PodAffinityTerm{
						LabelSelector: &metav1.LabelSelector{MatchLabels: selectorLabels(a)},
						TopologyKey:   "kubernetes.io/hostname",
					},
				}},
			}},
			Tolerations: []corev1.Toleration{
				{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To(int64(300))},
				{Key: "node.kubernetes.io/unreachable", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To(int64(300))},
			},
		},
	}
}

func appAnnotations(a app) map[string]string {
	return map[string]string{
		"meta.helm.sh/release-name":            a.name,
		"meta.helm.sh/release-namespace":       a.ns,
		"deployment.kubernetes.io/revision":    "3",
		"reloader.stakater.com/auto":           "true",
		"kustomize.toolkit.fluxcd.io/checksum": fmt.Sprintf("%040x", rng(a.name).Uint64()),
	}
}

func deployment(a app, replicas int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: a.name, Namespace: a.ns, Labels: appLabels(a), Annotations: appAnnotations(a)},
		Spec: appsv1.DeploymentSpec{
			Replicas:             ptr.To(replicas),
			RevisionHistoryLimit: ptr.To(int32(3)),
			Selector:             &metav1.LabelSelector{MatchLabels: selectorLabels(a)},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
				MaxUnavailable: ptr.To(intstr.FromString("25%")), MaxSurge: ptr.To(intstr.FromString("25%")),
			}},
			Template: podTemplate(a),
		},
	}
}

func deploymentStatus(d *appsv1.Deployment, ready int32) appsv1.DeploymentStatus {
	want := *d.Spec.Replicas
	now := metav1.NewTime(time.Now().Add(-2 * time.Hour).Truncate(time.Second))
	st := appsv1.DeploymentStatus{
		ObservedGeneration: d.Generation,
		Replicas:           want, UpdatedReplicas: want, ReadyReplicas: ready, AvailableReplicas: ready,
		UnavailableReplicas: want - ready,
	}
	if ready >= want {
		st.Conditions = []appsv1.DeploymentCondition{
			{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable", Message: "Deployment has minimum availability.", LastUpdateTime: now, LastTransitionTime: now},
			{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable", Message: fmt.Sprintf("ReplicaSet %q has successfully progressed.", d.Name+"-"+templateHash(d.Namespace, d.Name)), LastUpdateTime: now, LastTransitionTime: now},
		}
	} else {
		st.Conditions = []appsv1.DeploymentCondition{
			{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionFalse, Reason: "MinimumReplicasUnavailable", Message: "Deployment does not have minimum availability.", LastUpdateTime: now, LastTransitionTime: now},
			{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded", Message: fmt.Sprintf("ReplicaSet %q has timed out progressing.", d.Name+"-"+templateHash(d.Namespace, d.Name)), LastUpdateTime: now, LastTransitionTime: now},
		}
	}
	return st
}

func templateHash(ns, name string) string { return suffix(rng("rs/"+ns+"/"+name), 10) }

func replicaSet(d *appsv1.Deployment) *appsv1.ReplicaSet {
	hash := templateHash(d.Namespace, d.Name)
	tmpl := *d.Spec.Template.DeepCopy()
	tmpl.Labels["pod-template-hash"] = hash
	sel := d.Spec.Selector.DeepCopy()
	sel.MatchLabels["pod-template-hash"] = hash
	labels := maps.Clone(tmpl.Labels)
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name: d.Name + "-" + hash, Namespace: d.Namespace, Labels: labels,
			Annotations: map[string]string{
				"deployment.kubernetes.io/desired-replicas": fmt.Sprint(*d.Spec.Replicas),
				"deployment.kubernetes.io/max-replicas":     fmt.Sprint(*d.Spec.Replicas + 1),
				"deployment.kubernetes.io/revision":         "3",
			},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID, Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}},
		},
		Spec: appsv1.ReplicaSetSpec{Replicas: d.Spec.Replicas, Selector: sel, Template: tmpl},
	}
}

func statefulSet(a app) *appsv1.StatefulSet {
	tmpl := podTemplate(a)
	tmpl.Spec.Volumes = tmpl.Spec.Volumes[:1:1]
	tmpl.Spec.Volumes = append(tmpl.Spec.Volumes, corev1.Volume{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: a.name, Namespace: a.ns, Labels: appLabels(a), Annotations: appAnnotations(a)},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr.To(a.replicas),
			ServiceName: a.name + "-hl",
			Selector:    &metav1.LabelSelector{MatchLabels: selectorLabels(a)},
			Template:    tmpl,
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					StorageClassName: ptr.To("longhorn"),
					Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("20Gi")}},
				},
			}},
		},
	}
}

// pod returns a pod as its controller would have created it, bound to node.
func pod(tmpl corev1.PodTemplateSpec, ns, name, node string, owner metav1.OwnerReference, extraLabels map[string]string) *corev1.Pod {
	labels := maps.Clone(tmpl.Labels)
	maps.Copy(labels, extraLabels)
	spec := *tmpl.Spec.DeepCopy()
	spec.NodeName = node
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels, Annotations: maps.Clone(tmpl.Annotations), GenerateName: ""},
		Spec:       spec,
	}
	if owner.UID != "" {
		p.OwnerReferences = []metav1.OwnerReference{owner}
	}
	return p
}

// runningStatus is the status a kubelet reports for a healthy pod.
func runningStatus(p *corev1.Pod, podIP string, started time.Time) corev1.PodStatus {
	st := metav1.NewTime(started.Truncate(time.Second))
	cond := func(t corev1.PodConditionType) corev1.PodCondition {
		return corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: st}
	}
	var cs []corev1.ContainerStatus
	for _, c := range p.Spec.Containers {
		cs = append(cs, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: imageID(c.Image),
			ContainerID: "containerd://" + fmt.Sprintf("%016x%016x%016x%016x", rng(p.Name+c.Name).Uint64(), rng(c.Name).Uint64(), rng(p.Namespace).Uint64(), rng(p.Name).Uint64()),
			Ready:       true, Started: ptr.To(true),
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: st}},
		})
	}
	return corev1.PodStatus{
		Phase: corev1.PodRunning,
		Conditions: []corev1.PodCondition{
			cond("PodReadyToStartContainers"), cond(corev1.PodInitialized), cond(corev1.PodReady),
			cond(corev1.ContainersReady), cond(corev1.PodScheduled),
		},
		HostIP: nodeIP, HostIPs: []corev1.HostIP{{IP: nodeIP}},
		PodIP: podIP, PodIPs: []corev1.PodIP{{IP: podIP}},
		StartTime: &st, QOSClass: p.Status.QOSClass, ContainerStatuses: cs,
	}
}

func imageID(image string) string {
	repo := image
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		repo = image[:i]
	}
	r := rng(image)
	return fmt.Sprintf("%s@sha256:%016x%016x%016x%016x", repo, r.Uint64(), r.Uint64(), r.Uint64(), r.Uint64())
}
