package cluster

import (
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// NodeStatus is what a model needs of a node's health.
type NodeStatus struct {
	Name        string   `json:"name"`
	Ready       string   `json:"ready"` // True, False or Unknown
	Pressure    []string `json:"pressure,omitempty"`
	Kubelet     string   `json:"kubelet"`
	Roles       []string `json:"roles,omitempty"`
	Message     string   `json:"message,omitempty"` // why not Ready
	Schedulable bool     `json:"schedulable"`
}

// NodeAddress names a node and the address to reach it on.
type NodeAddress struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Type    string `json:"type"` // InternalIP, ExternalIP, Hostname, or override
}

// NodeStatuses summarises every node, sorted by name.
func (c *Cache) NodeStatuses() ([]NodeStatus, error) {
	nodes, err := c.Nodes.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	out := make([]NodeStatus, 0, len(nodes))
	for _, n := range nodes {
		s := NodeStatus{Name: n.Name, Ready: "Unknown", Kubelet: n.Status.NodeInfo.KubeletVersion, Schedulable: !n.Spec.Unschedulable}
		for _, cond := range n.Status.Conditions {
			switch cond.Type {
			case corev1.NodeReady:
				s.Ready = string(cond.Status)
				if cond.Status != corev1.ConditionTrue {
					s.Message = cond.Message
				}
			case corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure, corev1.NodeNetworkUnavailable:
				if cond.Status == corev1.ConditionTrue {
					s.Pressure = append(s.Pressure, string(cond.Type))
				}
			}
		}
		s.Roles = roles(n)
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func roles(n *corev1.Node) []string {
	var out []string
	for k := range n.Labels {
		if r, ok := strings.CutPrefix(k, "node-role.kubernetes.io/"); ok && r != "" {
			out = append(out, r)
		}
	}
	if r := n.Labels["kubernetes.io/role"]; r != "" {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// NodeAddresses returns each node's address for SSH: the override when one
// is configured, else InternalIP, else ExternalIP, else Hostname.
func (c *Cache) NodeAddresses(overrides map[string]string) ([]NodeAddress, error) {
	nodes, err := c.Nodes.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	out := make([]NodeAddress, 0, len(nodes))
	for _, n := range nodes {
		a := NodeAddress{Name: n.Name}
		if o, ok := overrides[n.Name]; ok {
			a.Address, a.Type = o, "override"
		} else {
			a.Address, a.Type = preferredAddress(n)
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func preferredAddress(n *corev1.Node) (string, string) {
	for _, want := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP, corev1.NodeHostName} {
		for _, a := range n.Status.Addresses {
			if a.Type == want {
				return a.Address, string(a.Type)
			}
		}
	}
	return "", ""
}
