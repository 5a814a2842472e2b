package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/cluster-shepherd/shepherd/internal/config"
	"github.com/cluster-shepherd/shepherd/internal/gitops"
	"github.com/cluster-shepherd/shepherd/internal/gitops/gitlab"
	"github.com/cluster-shepherd/shepherd/internal/gitops/gitrepo"
	"github.com/cluster-shepherd/shepherd/internal/nodes"
)

// outsideFlags configure what reaches outside the API server: the GitOps
// repository and the nodes over SSH. Both are off until configured.
type outsideFlags struct {
	gitopsBackend   string
	gitopsURL       string
	gitopsBranch    string
	gitopsDirs      []string
	gitopsTokenFile string
	gitopsUser      string
	gitopsSSHKey    string
	gitopsKnown     string
	gitopsPrefix    string
	gitopsCommitURL string
	gitlabURL       string
	gitlabProject   string
	sshUser         string
	sshKeyFile      string
	sshKnownHosts   string
	sshPort         int
	sshTimeout      time.Duration
}

func (o *outsideFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&o.gitopsBackend, "gitops-backend", "none", "where gitops_change commits: none (tool off), git (any remote, via go-git) or gitlab (Files API)")
	fs.StringVar(&o.gitopsURL, "gitops-url", "", "git backend: remote URL (https:// or ssh://)")
	fs.StringVar(&o.gitopsBranch, "gitops-branch", "main", "branch to read and commit to")
	fs.StringSliceVar(&o.gitopsDirs, "gitops-allowed-dirs", []string{gitops.DefaultAllowedDir}, "repository directories gitops_change may touch")
	fs.StringVar(&o.gitopsTokenFile, "gitops-token-file", "", "file holding the token (git: HTTPS password; gitlab: a token scoped to one project) (or SHEPHERD_GITOPS_TOKEN)")
	fs.StringVar(&o.gitopsUser, "gitops-username", "git", "git backend: HTTPS user name")
	fs.StringVar(&o.gitopsSSHKey, "gitops-ssh-key-file", "", "git backend: private key for ssh:// remotes")
	fs.StringVar(&o.gitopsKnown, "gitops-known-hosts", "", "git backend: known_hosts for ssh:// remotes (required with a key)")
	fs.StringVar(&o.gitopsPrefix, "gitops-commit-prefix", "shepherd: ", "prefix of every commit message")
	fs.StringVar(&o.gitopsCommitURL, "gitops-commit-url", "", "git backend: link to a commit, {id} replaced, e.g. https://forge/org/repo/commit/{id}")
	fs.StringVar(&o.gitlabURL, "gitlab-url", "", "gitlab backend: GitLab base URL")
	fs.StringVar(&o.gitlabProject, "gitlab-project", "", "gitlab backend: project id or group/project path")
	fs.StringVar(&o.sshUser, "ssh-user", "root", "user for run_node_cmd")
	fs.StringVar(&o.sshKeyFile, "ssh-key-file", "", "private key for run_node_cmd; with --ssh-known-hosts it turns the tool on")
	fs.StringVar(&o.sshKnownHosts, "ssh-known-hosts", "", "known_hosts with every node's host key; unknown or changed keys are refused")
	fs.IntVar(&o.sshPort, "ssh-port", 22, "SSH port of the nodes (a --node-address override may carry its own)")
	fs.DurationVar(&o.sshTimeout, "ssh-timeout", 30*time.Second, "bound on connect plus command")
}

// openGitOps builds the gitops service, or nil when --gitops-backend=none.
func (o *outsideFlags) openGitOps(dataDir string) (*gitops.Service, error) {
	g := gitops.Guard{AllowedDirs: o.gitopsDirs, MessagePrefix: o.gitopsPrefix}
	for _, d := range o.gitopsDirs {
		if strings.HasPrefix(d, "/") || strings.Contains(d, "..") {
			return nil, fmt.Errorf("--gitops-allowed-dirs %q: want a relative directory inside the repository", d)
		}
	}
	token, err := config.ReadSecret(o.gitopsTokenFile, "SHEPHERD_GITOPS_TOKEN")
	if err != nil {
		return nil, fmt.Errorf("--gitops-token-file: %w", err)
	}
	var b gitops.Backend
	switch o.gitopsBackend {
	case "", "none":
		return nil, nil
	case "git":
		if o.gitopsURL == "" {
			return nil, fmt.Errorf("--gitops-backend=git needs --gitops-url")
		}
		b, err = gitrepo.New(gitrepo.Config{URL: o.gitopsURL, Branch: o.gitopsBranch, DataDir: filepath.Join(dataDir, "gitops"),
			Auth:      gitrepo.Auth{Username: o.gitopsUser, Password: token, SSHKeyFile: o.gitopsSSHKey, KnownHostsFile: o.gitopsKnown},
			CommitURL: o.gitopsCommitURL})
	case "gitlab":
		if o.gitlabURL == "" || o.gitlabProject == "" {
			return nil, fmt.Errorf("--gitops-backend=gitlab needs --gitlab-url and --gitlab-project")
		}
		if token == "" {
			return nil, fmt.Errorf("--gitops-backend=gitlab needs a token (--gitops-token-file or SHEPHERD_GITOPS_TOKEN)")
		}
		b, err = gitlab.New(gitlab.Config{BaseURL: o.gitlabURL, ProjectID: o.gitlabProject, Branch: o.gitopsBranch, Token: token})
	default:
		return nil, fmt.Errorf("--gitops-backend %q: want none, git or gitlab", o.gitopsBackend)
	}
	if err != nil {
		return nil, fmt.Errorf("gitops backend: %w", err)
	}
	return &gitops.Service{Guard: g, Backend: b}, nil
}

// openNodes builds the SSH runner, or nil when no key is configured.
func (o *outsideFlags) openNodes(addrs map[string]string) (*nodes.Runner, error) {
	if o.sshKeyFile == "" && o.sshKnownHosts == "" {
		return nil, nil
	}
	if o.sshKeyFile == "" || o.sshKnownHosts == "" {
		return nil, fmt.Errorf("run_node_cmd needs both --ssh-key-file and --ssh-known-hosts")
	}
	r, err := nodes.New(nodes.Config{User: o.sshUser, KeyFile: o.sshKeyFile, KnownHostsFile: o.sshKnownHosts, Port: o.sshPort, Timeout: o.sshTimeout, Addresses: addrs})
	if err != nil {
		return nil, fmt.Errorf("ssh: %w", err)
	}
	return r, nil
}
