package scaffold

import (
	"bytes"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/patchbay/patchbay/fleet"
)

// Agent is what an agent installation needs: the server, how to trust
// it, the enrollment token, the host's labels, and where the binary
// comes from.
type Agent struct {
	Server string
	// Pin is the server certificate's fingerprint (sha256:…); CAFile a CA
	// bundle on the host instead.
	Pin, CAFile string
	// Token is the enrollment token (used once).
	Token  string
	Labels map[string]string
	// BinaryURL and BinarySHA256 say where cloud-init downloads the
	// patchbay binary from and its digest; without them the binary must
	// be in the image at BinaryPath.
	BinaryURL, BinarySHA256 string
	Interval                time.Duration
}

// Paths on the host.
const (
	BinaryPath   = "/usr/local/bin/patchbay"
	AgentEnvPath = "/etc/patchbay/agent.env"
	AgentUnit    = "patchbay-agent.service"
	AgentState   = "/var/lib/patchbay/agent"
)

var (
	pinRE    = regexp.MustCompile(`^sha256:[0-9a-fA-F]{64}$`)
	sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)
	tokenRE  = regexp.MustCompile(`^[A-Za-z0-9_\-.]+$`)
)

// Check validates the configuration, naming the flag at fault.
func (a *Agent) Check() error {
	u, err := url.Parse(a.Server)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("--server %q: want the server's URL, https://host:8443", a.Server)
	}
	if a.Pin != "" && !pinRE.MatchString(a.Pin) {
		return fmt.Errorf("--pin %q: want sha256: and the certificate's hex digest (patchbay server fingerprint prints it)", a.Pin)
	}
	if a.Pin != "" && a.CAFile != "" {
		return fmt.Errorf("--pin and --ca: give one")
	}
	if a.Token == "" || !tokenRE.MatchString(a.Token) {
		return fmt.Errorf("--token-file: want a file holding the enrollment token (patchbay admin token create --enrollment)")
	}
	for k, v := range a.Labels {
		if err := fleet.ValidateLabel(k, v); err != nil {
			return fmt.Errorf("--label: %w", err)
		}
	}
	if (a.BinaryURL == "") != (a.BinarySHA256 == "") {
		return fmt.Errorf("--binary-url and --binary-sha256: give both (cloud-init checks the download) or neither")
	}
	if a.BinaryURL != "" {
		if u, err := url.Parse(a.BinaryURL); err != nil || u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("--binary-url %q: want an https URL", a.BinaryURL)
		}
		if !sha256RE.MatchString(a.BinarySHA256) {
			return fmt.Errorf("--binary-sha256 %q: want 64 lower-case hex digits (sha256sum prints them)", a.BinarySHA256)
		}
	}
	if a.Interval != 0 && a.Interval < 30*time.Second {
		return fmt.Errorf("--interval %s: at least 30s", a.Interval)
	}
	return nil
}

// ExecStart is the agent's command line in the unit.
func (a *Agent) ExecStart() []string {
	args := []string{BinaryPath, "agent", "--state-dir", AgentState}
	if a.Interval != 0 {
		args = append(args, "--interval", a.Interval.String())
	}
	keys := make([]string, 0, len(a.Labels))
	for k := range a.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "--label", k+"="+a.Labels[k])
	}
	return args
}

// Env is the environment file's content (mode 0600: it holds the token).
func (a *Agent) Env() string {
	var b strings.Builder
	b.WriteString("# patchbay agent settings (read by " + AgentUnit + ").\n")
	b.WriteString("# The enrollment token is used once: after the first start the host\n")
	b.WriteString("# credential in " + AgentState + " is what counts, and the token can go.\n")
	fmt.Fprintf(&b, "PATCHBAY_SERVER=%s\n", a.Server)
	if a.Pin != "" {
		fmt.Fprintf(&b, "PATCHBAY_PIN=%s\n", a.Pin)
	}
	if a.CAFile != "" {
		fmt.Fprintf(&b, "PATCHBAY_CA=%s\n", a.CAFile)
	}
	fmt.Fprintf(&b, "PATCHBAY_ENROLL_TOKEN=%s\n", a.Token)
	return b.String()
}

var unitTmpl = template.Must(template.New("unit").Parse(`# patchbay agent, written by patchbay init agent: reports this host to
# {{.Server}} and runs its rollout jobs. Settings and the enrollment token
# are in {{.EnvPath}} (mode 0600); the host credential is kept in
# {{.State}} (mode 0600).
[Unit]
Description=patchbay agent (reports this host to the patchbay server)
Documentation=https://github.com/patchbay/patchbay
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
EnvironmentFile={{.EnvPath}}
ExecStart={{.ExecStart}}
Restart=always
RestartSec=10
StateDirectory=patchbay/agent
StateDirectoryMode=0700
Nice=10
IOSchedulingClass=idle
NoNewPrivileges=yes
ProtectHome=read-only
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
`))

// Unit is the systemd unit.
func (a *Agent) Unit() string {
	var b bytes.Buffer
	unitTmpl.Execute(&b, map[string]string{"Server": a.Server, "EnvPath": AgentEnvPath, "State": AgentState, "ExecStart": strings.Join(a.ExecStart(), " ")})
	return b.String()
}

// CloudInit is a #cloud-config that writes the environment file and the
// unit, installs the binary (downloaded and checked, when BinaryURL is
// given) and starts the agent.
func (a *Agent) CloudInit() string {
	var b strings.Builder
	b.WriteString("#cloud-config\n# patchbay agent, written by patchbay init agent: give it as user data.\n")
	b.WriteString("write_files:\n")
	file := func(path, perm, content string) {
		fmt.Fprintf(&b, "  - path: %s\n    owner: root:root\n    permissions: %q\n    content: |\n", path, perm)
		for _, line := range strings.SplitAfter(strings.TrimRight(content, "\n"), "\n") {
			b.WriteString("      " + strings.TrimRight(line, "\n") + "\n")
		}
	}
	file(AgentEnvPath, "0600", a.Env())
	file("/etc/systemd/system/"+AgentUnit, "0644", a.Unit())
	b.WriteString("runcmd:\n")
	if a.BinaryURL != "" {
		fmt.Fprintf(&b, "  - [sh, -c, %q]\n", fmt.Sprintf("set -e; curl -fsSL --proto =https -o %[1]s.download '%[2]s'; echo '%[3]s  %[1]s.download' | sha256sum -c -; install -m 0755 %[1]s.download %[1]s; rm -f %[1]s.download", BinaryPath, a.BinaryURL, a.BinarySHA256))
	} else {
		fmt.Fprintf(&b, "  # The image holds the binary at %s (no --binary-url given).\n", BinaryPath)
		fmt.Fprintf(&b, "  - [test, -x, %s]\n", BinaryPath)
	}
	b.WriteString("  - [systemctl, daemon-reload]\n")
	fmt.Fprintf(&b, "  - [systemctl, enable, --now, %s]\n", AgentUnit)
	return b.String()
}

// Files are the agent installation's files: the unit, the environment
// file (0600) and the cloud-init snippet (0600: it holds the token).
func (a *Agent) Files() []File {
	return []File{
		{Path: AgentUnit, Data: []byte(a.Unit()), Mode: 0o644},
		{Path: "agent.env", Data: []byte(a.Env()), Mode: 0o600},
		{Path: "cloud-init.yaml", Data: []byte(a.CloudInit()), Mode: 0o600},
	}
}
