package testenv

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
)

// app describes one home-lab workload; the seed turns it into a full-size
// Deployment or StatefulSet with pods and logs.
type app struct {
	ns, name, image, chart string
	port                   int32
	replicas               int32
	cpu, mem, memLimit     string
	env                    map[string]string
	logs                   []string
}

// seedNamespaces are created before anything else; the first ones carry the
// catalogue, the rest are realistic but nearly empty.
var seedNamespaces = []string{
	"immich", "authentik", "mail", "media", "nextcloud", "monitoring",
	"flux-system", "longhorn-system", "home-automation", "vaultwarden",
	"ingress-nginx", "cert-manager", "paperless",
}

// Secret-looking values planted in container logs, so redaction can be tested
// on the real pods/log path.
const (
	secretPassword  = "hunter2"
	secretBearer    = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjNmMmE5YiJ9.eyJzdWIiOiJha2FkbWluIiwiaXNzIjoiYXV0aGVudGlrIn0.Qm9ndXNTaWduYXR1cmVGb3JUZXN0c09ubHk"
	secretAWSKey    = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	secretPGPass    = "Sup3rS3cretPg!"
	secretRedisPass = "Rsp4mdR3dis"
	// The body of a private key a misconfigured app prints over several lines.
	secretKeyBody = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gt"
)

// healthyApps is the default set of 40 Deployments; "immich" and
// "authentik-server" come first so any count keeps them.
var healthyApps = []app{
	{ns: "immich", name: "immich", image: "ghcr.io/immich-app/immich-server:v1.119.0", chart: "immich-0.9.0", port: 2283, replicas: 1, cpu: "500m", mem: "1Gi", memLimit: "4Gi",
		env: map[string]string{"DB_HOSTNAME": "postgres.immich.svc.cluster.local", "DB_USERNAME": "immich", "DB_DATABASE_NAME": "immich", "REDIS_HOSTNAME": "immich-redis", "IMMICH_MACHINE_LEARNING_URL": "http://immich-machine-learning:3003"},
		logs: []string{
			"[Nest] 7  - 11/24/2024, 9:58:01 AM     LOG [Api:EventRepository] Initialized websocket server",
			"[Nest] 7  - 11/24/2024, 9:58:01 AM     LOG [Api:DatabaseRepository] connecting to postgresql://immich:" + secretPGPass + "@postgres.immich.svc.cluster.local:5432/immich",
			"[Nest] 7  - 11/24/2024, 9:58:02 AM     LOG [Api:ServerService] Feature Flags: {\"smartSearch\":true,\"facialRecognition\":true}",
			"[Nest] 7  - 11/24/2024, 9:58:02 AM   DEBUG [Api:StorageService] remote backup key -----BEGIN OPENSSH PRIVATE KEY-----",
			secretKeyBody,
			"ZWQyNTUxOQAAACBoZXJlaXNhc2VjcmV0a2V5Ym9keWZvcnRlc3RzAAAAAAAAAA==",
			"-----END OPENSSH PRIVATE KEY-----",
			"[Nest] 7  - 11/24/2024, 9:58:02 AM     LOG [Api:Bootstrap] Immich Server is listening on http://[::1]:2283 [v1.119.0] [PRODUCTION]",
		}},
	{ns: "authentik", name: "authentik-server", image: "ghcr.io/goauthentik/server:2024.10.4", chart: "authentik-2024.10.4", port: 9000, replicas: 2, cpu: "200m", mem: "512Mi", memLimit: "1Gi",
		env: map[string]string{"AUTHENTIK_POSTGRESQL__HOST": "authentik-postgresql", "AUTHENTIK_POSTGRESQL__NAME": "authentik", "AUTHENTIK_REDIS__HOST": "authentik-redis-master", "AUTHENTIK_LOG_LEVEL": "info"},
		logs: []string{
			`{"event": "Starting authentik bootstrap", "level": "info", "logger": "authentik.lib.config", "timestamp": 1732442281.02}`,
			`{"event": "PostgreSQL connection successful", "level": "info", "logger": "authentik.lib.config", "timestamp": 1732442281.31}`,
			`{"event": "/api/v3/core/users/me/", "host": "auth.home.example", "level": "info", "logger": "authentik.asgi", "method": "GET", "status": 200, "header": "Authorization: Bearer ` + secretBearer + `"}`,
			`{"event": "Task published", "level": "info", "logger": "authentik.root.celery", "task_name": "authentik.outposts.tasks.outpost_controller"}`,
		}},
	{ns: "immich", name: "immich-machine-learning", image: "ghcr.io/immich-app/immich-machine-learning:v1.119.0", chart: "immich-0.9.0", port: 3003, replicas: 1, cpu: "500m", mem: "2Gi", memLimit: "6Gi"},
	{ns: "authentik", name: "authentik-worker", image: "ghcr.io/goauthentik/server:2024.10.4", chart: "authentik-2024.10.4", port: 9000, replicas: 1, cpu: "100m", mem: "512Mi", memLimit: "1Gi"},
	{ns: "authentik", name: "authentik-redis", image: "docker.io/library/redis:7.4.1-alpine", chart: "redis-20.3.0", port: 6379, replicas: 1, cpu: "50m", mem: "64Mi", memLimit: "256Mi"},
	{ns: "mail", name: "postfix", image: "docker.io/boky/postfix:v4.3.0", chart: "mail-1.4.2", port: 587, replicas: 1, cpu: "50m", mem: "128Mi", memLimit: "256Mi",
		env: map[string]string{"ALLOWED_SENDER_DOMAINS": "home.example", "RELAYHOST": "[smtp.relay.example]:587", "RELAYHOST_USERNAME": "relay@home.example"},
		logs: []string{
			"2024-11-24T09:58:11.201Z postfix/master[1]: daemon started -- version 3.9.0, configuration /etc/postfix",
			"2024-11-24T09:58:12.004Z ★★★★★ Setting up relay host [smtp.relay.example]:587 with user relay@home.example password=" + secretPassword,
			"2024-11-24T10:02:40.517Z postfix/smtpd[311]: connect from nextcloud.nextcloud.svc.cluster.local[10.42.1.23]",
			"2024-11-24T10:02:40.902Z postfix/smtp[313]: 4Xk2p1y0: to=<admin@home.example>, relay=smtp.relay.example[203.0.113.25]:587, delay=0.4, status=sent (250 2.0.0 OK)",
		}},
	{ns: "mail", name: "dovecot", image: "docker.io/dovecot/dovecot:2.3.21", chart: "mail-1.4.2", port: 993, replicas: 1, cpu: "50m", mem: "128Mi", memLimit: "512Mi"},
	{ns: "mail", name: "roundcube", image: "docker.io/roundcube/roundcubemail:1.6.9-apache", chart: "roundcube-1.2.0", port: 80, replicas: 1, cpu: "50m", mem: "128Mi", memLimit: "256Mi"},
	{ns: "media", name: "jellyfin", image: "docker.io/jellyfin/jellyfin:10.10.3", chart: "jellyfin-2.1.0", port: 8096, replicas: 1, cpu: "1", mem: "1Gi", memLimit: "4Gi"},
	{ns: "media", name: "sonarr", image: "lscr.io/linuxserver/sonarr:4.0.11", chart: "sonarr-16.3.2", port: 8989, replicas: 1, cpu: "100m", mem: "256Mi", memLimit: "1Gi"},
	{ns: "media", name: "radarr", image: "lscr.io/linuxserver/radarr:5.15.1", chart: "radarr-16.3.2", port: 7878, replicas: 1, cpu: "100m", mem: "256Mi", memLimit: "1Gi"},
	{ns: "media", name: "prowlarr", image: "lscr.io/linuxserver/prowlarr:1.27.0", chart: "prowlarr-4.5.2", port: 9696, replicas: 1, cpu: "50m", mem: "128Mi", memLimit: "512Mi"},
	{ns: "media", name: "qbittorrent", image: "lscr.io/linuxserver/qbittorrent:5.0.2", chart: "qbittorrent-13.5.2", port: 8080, replicas: 1, cpu: "200m", mem: "512Mi", memLimit: "2Gi"},
	{ns: "nextcloud", name: "nextcloud", image: "docker.io/library/nextcloud:30.0.2-apache", chart: "nextcloud-6.2.4", port: 80, replicas: 1, cpu: "300m", mem: "512Mi", memLimit: "2Gi",
		env: map[string]string{"NEXTCLOUD_TRUSTED_DOMAINS": "cloud.home.example", "OBJECTSTORE_S3_BUCKET": "nextcloud", "OBJECTSTORE_S3_HOST": "minio.storage.svc", "POSTGRES_HOST": "nextcloud-postgresql"},
		logs: []string{
			"Configuring Redis as session handler",
			"AH00558: apache2: Could not reliably determine the server's fully qualified domain name, using 10.42.2.17.",
			"Initializing S3 primary storage: bucket=nextcloud region=us-east-1 AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE AWS_SECRET_ACCESS_KEY=" + secretAWSKey,
			`10.42.0.9 - admin [24/Nov/2024:10:01:13 +0000] "PROPFIND /remote.php/dav/files/admin/ HTTP/1.1" 207 1520 "-" "Mozilla/5.0 (Linux) mirall/3.14.3"`,
		}},
	{ns: "nextcloud", name: "nextcloud-redis", image: "docker.io/library/redis:7.4.1-alpine", chart: "redis-20.3.0", port: 6379, replicas: 1, cpu: "50m", mem: "64Mi", memLimit: "256Mi"},
	{ns: "nextcloud", name: "collabora", image: "docker.io/collabora/code:24.04.10.2.1", chart: "collabora-online-1.1.24", port: 9980, replicas: 1, cpu: "500m", mem: "1Gi", memLimit: "2Gi"},
	{ns: "monitoring", name: "grafana", image: "docker.io/grafana/grafana:11.3.1", chart: "grafana-8.6.2", port: 3000, replicas: 1, cpu: "100m", mem: "256Mi", memLimit: "512Mi"},
	{ns: "monitoring", name: "kube-state-metrics", image: "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.14.0", chart: "kube-state-metrics-5.27.0", port: 8080, replicas: 1, cpu: "50m", mem: "128Mi", memLimit: "256Mi"},
	{ns: "monitoring", name: "prometheus-operator", image: "quay.io/prometheus-operator/prometheus-operator:v0.78.2", chart: "kube-prometheus-stack-66.2.1", port: 8080, replicas: 1, cpu: "100m", mem: "128Mi", memLimit: "256Mi"},
	{ns: "monitoring", name: "blackbox-exporter", image: "quay.io/prometheus/blackbox-exporter:v0.25.0", chart: "prometheus-blackbox-exporter-9.1.0", port: 9115, replicas: 1, cpu: "20m", mem: "32Mi", memLimit: "64Mi"},
	{ns: "flux-system", name: "source-controller", image: "ghcr.io/fluxcd/source-controller:v1.4.1", chart: "flux2-2.14.0", port: 9090, replicas: 1, cpu: "50m", mem: "64Mi", memLimit: "1Gi"},
	{ns: "flux-system", name: "kustomize-controller", image: "ghcr.io/fluxcd/kustomize-controller:v1.4.0", chart: "flux2-2.14.0", port: 8080, replicas: 1, cpu: "100m", mem: "64Mi", memLimit: "1Gi"},
	{ns: "flux-system", name: "helm-controller", image: "ghcr.io/fluxcd/helm-controller:v1.1.0", chart: "flux2-2.14.0", port: 8080, replicas: 1, cpu: "100m", mem: "64Mi", memLimit: "1Gi"},
	{ns: "flux-system", name: "notification-controller", image: "ghcr.io/fluxcd/notification-controller:v1.4.0", chart: "flux2-2.14.0", port: 9090, replicas: 1, cpu: "100m", mem: "64Mi", memLimit: "1Gi"},
	{ns: "longhorn-system", name: "longhorn-ui", image: "docker.io/longhornio/longhorn-ui:v1.7.2", chart: "longhorn-1.7.2", port: 8000, replicas: 2, cpu: "50m", mem: "64Mi", memLimit: "128Mi"},
	{ns: "longhorn-system", name: "longhorn-driver-deployer", image: "docker.io/longhornio/longhorn-manager:v1.7.2", chart: "longhorn-1.7.2", port: 9500, replicas: 1, cpu: "50m", mem: "64Mi", memLimit: "128Mi"},
	{ns: "longhorn-system", name: "csi-attacher", image: "docker.io/longhornio/csi-attacher:v4.7.0", chart: "longhorn-1.7.2", port: 8000, replicas: 2, cpu: "20m", mem: "32Mi", memLimit: "128Mi"},
	{ns: "longhorn-system", name: "csi-provisioner", image: "docker.io/longhornio/csi-provisioner:v5.1.0", chart: "longhorn-1.7.2", port: 8000, replicas: 2, cpu: "20m", mem: "32Mi", memLimit: "128Mi"},
	{ns: "home-automation", name: "home-assistant", image: "ghcr.io/home-assistant/home-assistant:2024.11.3", chart: "home-assistant-0.2.92", port: 8123, replicas: 1, cpu: "300m", mem: "512Mi", memLimit: "2Gi"},
	{ns: "home-automation", name: "zigbee2mqtt", image: "docker.io/koenkk/zigbee2mqtt:1.41.0", chart: "zigbee2mqtt-1.41.0", port: 8080, replicas: 1, cpu: "50m", mem: "128Mi", memLimit: "512Mi"},
	{ns: "home-automation", name: "mosquitto", image: "docker.io/library/eclipse-mosquitto:2.0.20", chart: "mosquitto-4.8.2", port: 1883, replicas: 1, cpu: "20m", mem: "32Mi", memLimit: "128Mi"},
	{ns: "home-automation", name: "node-red", image: "docker.io/nodered/node-red:4.0.5", chart: "node-red-0.34.0", port: 1880, replicas: 1, cpu: "100m", mem: "128Mi", memLimit: "512Mi"},
	{ns: "vaultwarden", name: "vaultwarden", image: "docker.io/vaultwarden/server:1.32.5", chart: "vaultwarden-0.29.3", port: 80, replicas: 1, cpu: "50m", mem: "64Mi", memLimit: "256Mi"},
	{ns: "ingress-nginx", name: "ingress-nginx-controller", image: "registry.k8s.io/ingress-nginx/controller:v1.11.3", chart: "ingress-nginx-4.11.3", port: 443, replicas: 2, cpu: "100m", mem: "128Mi", memLimit: "512Mi"},
	{ns: "cert-manager", name: "cert-manager", image: "quay.io/jetstack/cert-manager-controller:v1.16.2", chart: "cert-manager-v1.16.2", port: 9402, replicas: 1, cpu: "20m", mem: "64Mi", memLimit: "256Mi"},
	{ns: "cert-manager", name: "cert-manager-webhook", image: "quay.io/jetstack/cert-manager-webhook:v1.16.2", chart: "cert-manager-v1.16.2", port: 10250, replicas: 1, cpu: "20m", mem: "32Mi", memLimit: "128Mi"},
	{ns: "cert-manager", name: "cert-manager-cainjector", image: "quay.io/jetstack/cert-manager-cainjector:v1.16.2", chart: "cert-manager-v1.16.2", port: 9402, replicas: 1, cpu: "20m", mem: "64Mi", memLimit: "256Mi"},
	{ns: "paperless", name: "paperless-ngx", image: "ghcr.io/paperless-ngx/paperless-ngx:2.13.5", chart: "paperless-ngx-0.19.1", port: 8000, replicas: 1, cpu: "200m", mem: "512Mi", memLimit: "2Gi"},
	{ns: "paperless", name: "tika", image: "docker.io/apache/tika:2.9.2.1", chart: "paperless-ngx-0.19.1", port: 9998, replicas: 1, cpu: "100m", mem: "256Mi", memLimit: "1Gi"},
	{ns: "paperless", name: "gotenberg", image: "docker.io/gotenberg/gotenberg:8.14.1", chart: "paperless-ngx-0.19.1", port: 3000, replicas: 1, cpu: "100m", mem: "256Mi", memLimit: "1Gi"},
}

// statefulApps become StatefulSets with ready status.
var statefulApps = []app{
	{ns: "immich", name: "postgres", image: "docker.io/tensorchord/pgvecto-rs:pg16-v0.2.0", chart: "immich-0.9.0", port: 5432, replicas: 1, cpu: "250m", mem: "512Mi", memLimit: "2Gi",
		env: map[string]string{"POSTGRES_USER": "immich", "POSTGRES_DB": "immich", "PGDATA": "/var/lib/postgresql/data/pgdata"},
		logs: []string{
			"2024-11-24 09:57:41.118 UTC [1] LOG:  starting PostgreSQL 16.4 (Debian 16.4-1.pgdg120+2) on x86_64-pc-linux-gnu",
			"2024-11-24 09:57:41.130 UTC [1] LOG:  listening on IPv4 address \"0.0.0.0\", port 5432",
			"2024-11-24 09:57:41.402 UTC [1] LOG:  database system is ready to accept connections",
		}},
	{ns: "authentik", name: "authentik-postgresql", image: "docker.io/library/postgres:16.4", chart: "postgresql-15.5.38", port: 5432, replicas: 1, cpu: "250m", mem: "256Mi", memLimit: "1Gi"},
	{ns: "monitoring", name: "prometheus-kube-prometheus-stack", image: "quay.io/prometheus/prometheus:v2.55.1", chart: "kube-prometheus-stack-66.2.1", port: 9090, replicas: 1, cpu: "500m", mem: "2Gi", memLimit: "4Gi"},
	{ns: "monitoring", name: "loki", image: "docker.io/grafana/loki:3.2.1", chart: "loki-6.21.0", port: 3100, replicas: 1, cpu: "200m", mem: "512Mi", memLimit: "1Gi"},
}

// generatedApp makes the i-th Deployment beyond the catalogue for large,
// benchmark-sized clusters.
func generatedApp(i int) app {
	return app{
		ns:       fmt.Sprintf("apps-%02d", i%20),
		name:     fmt.Sprintf("svc-%04d", i),
		image:    fmt.Sprintf("ghcr.io/home-lab/svc-%04d:1.%d.%d", i, i%7, i%13),
		chart:    "generic-app-1.0.0",
		port:     8080,
		replicas: int32(1 + i%2),
		cpu:      "50m", mem: "64Mi", memLimit: "256Mi",
	}
}

// rng returns a generator seeded from the name, so names are stable across runs.
func rng(name string) *rand.Rand {
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	s := h.Sum64()
	return rand.New(rand.NewPCG(s, s>>7|1))
}

// suffix mimics the apimachinery name generator's alphabet (no vowels, no
// look-alike digits).
func suffix(r *rand.Rand, n int) string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

func genericLogs(a app, pod string) []string {
	return []string{
		fmt.Sprintf("time=2024-11-24T09:58:00Z level=INFO msg=\"starting %s\" version=%q pod=%s", a.name, imageTag(a.image), pod),
		fmt.Sprintf("time=2024-11-24T09:58:01Z level=INFO msg=\"listening\" addr=:%d", a.port),
		"time=2024-11-24T09:58:01Z level=INFO msg=\"ready\"",
		"time=2024-11-24T10:13:01Z level=INFO msg=\"health check ok\" latency=2ms",
	}
}

func imageTag(image string) string {
	for i := len(image) - 1; i >= 0; i-- {
		switch image[i] {
		case ':':
			return image[i+1:]
		case '/':
			return "latest"
		}
	}
	return "latest"
}
