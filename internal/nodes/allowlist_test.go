package nodes

import (
	"errors"
	"strings"
	"testing"
)

func TestAllowlistAccepts(t *testing.T) {
	a := DefaultAllowlist()
	for _, cmd := range []string{
		"df", "df -h", "df -hT", "df -h -i", "free -m", "free -h", "uptime", "uname -a", "hostname", "nproc",
		"journalctl -n 100", "journalctl -n50 -u kubelet", "journalctl --lines=20 --unit=containerd.service",
		`journalctl -u kubelet --since "10 min ago" -n 200 --no-pager`, "journalctl -n 5 --since -1h -p err",
		`journalctl -n 5 --since "2024-05-01 10:00:00"`, "journalctl -k -b -n 1000 -o short-iso",
		"systemctl status kubelet", "systemctl status kubelet.service --no-pager -n 20", "systemctl is-active containerd",
		"systemctl list-units --failed", "crictl ps", "crictl ps -a", "crictl ps --name coredns", "crictl pods", "crictl images",
		"ip addr", "ip -br addr", "ip a show", "ip -4 addr show dev eth0", "ip route", "ip link show dev lo",
		"ss -tlnp", "ss -s", "ps aux", "ps -ef", "top -b -n 1", "lsblk -f", "dmesg -T", "dmesg -T -l err,warn",
		"cat /proc/loadavg", "cat /etc/os-release",
	} {
		if _, err := a.Check(cmd); err != nil {
			t.Errorf("Check(%q): %v", cmd, err)
		}
	}
}

func TestAllowlistRefuses(t *testing.T) {
	a := DefaultAllowlist()
	for _, cmd := range append([]string{
		"rm -rf /", "/bin/df -h", "sh -c df", "bash", "reboot", "kubectl get pods", "curl http://x",
		"df --output=source /", "df /etc", "free --help", "uptime now",
		"journalctl", "journalctl -u kubelet", "journalctl -n 100000", "journalctl -n 0", "journalctl -n abc",
		"journalctl -n 10 -f", "journalctl -n 10 --since tomorrowish", "journalctl -n 10 --since", "journalctl -n 10 -u -f",
		"journalctl -n 10 --file=/etc/shadow", "journalctl -n 10 -D /var", "journalctl -n 10 --vacuum-size=1",
		"systemctl stop kubelet", "systemctl restart kubelet", "systemctl status", "systemctl status kubelet extra",
		"systemctl status --host=x kubelet", "systemctl is-active -.mount",
		"crictl rm abc", "crictl exec -it abc sh", "crictl ps --name '-x'",
		"ip addr flush dev eth0", "ip link set eth0 down", "ip route add default via 1.2.3.4", "ip addr show dev 'eth0 eth1'",
		"ip -br addr show dev", "ss -K", "ps -o pid", "top", "top -b -n 9", "lsblk /dev/sda",
		"cat /etc/shadow", "cat /proc/../etc/shadow", "cat /proc/loadavg /etc/shadow",
		"dmesg -C", "dmesg -l err;reboot",
	}, injections...) {
		argv, err := a.Check(cmd)
		if err == nil {
			t.Errorf("Check(%q) accepted %q", cmd, argv)
			continue
		}
		if !errors.Is(err, ErrNotAllowed) {
			t.Errorf("Check(%q): %v is not ErrNotAllowed", cmd, err)
		}
		if !strings.Contains(err.Error(), "allowed commands:\n") || !strings.Contains(err.Error(), "journalctl -n N") {
			t.Errorf("Check(%q): error does not list the allowed commands: %v", cmd, err)
		}
	}
}

func TestMatchSaysWhy(t *testing.T) {
	a := DefaultAllowlist()
	for cmd, why := range map[string]string{
		"journalctl -u kubelet":   "-n is required",
		"journalctl -n 5000":      "from 1 to 1000",
		"df --all":                "unknown flag --all",
		"/usr/bin/df":             "not an allowed program",
		"systemctl stop kubelet":  "status",
		"cat /etc/shadow":         "FILE must be one of",
		"journalctl -n 10 -u x|y": "refused",
	} {
		if _, err := a.Check(cmd); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("Check(%q) = %v, want it to mention %q", cmd, err, why)
		}
	}
}

func TestUsageDocumentsEveryCommand(t *testing.T) {
	a := DefaultAllowlist()
	for _, c := range a.Commands {
		if c.Usage == "" || c.Doc == "" || !strings.HasPrefix(c.Usage, c.Program) {
			t.Errorf("%s: usage %q doc %q", c.Program, c.Usage, c.Doc)
		}
	}
}
