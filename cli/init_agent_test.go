package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/patchbay/patchbay/internal/debroot"
	"github.com/patchbay/patchbay/kinds"
	"github.com/patchbay/patchbay/policy"
	"github.com/patchbay/patchbay/rollout"
	"github.com/patchbay/patchbay/scaffold"
)

// TestInitAgentFiles: init agent writes the unit, its environment file
// (0600, the token in it) and a cloud-init snippet that parses as YAML and
// writes the same two files; bad flags are refused naming the flag and
// write nothing.
func TestInitAgentFiles(t *testing.T) {
	t.Parallel()
	tok := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tok, []byte("pb_enroll_abc123\n"), 0o600)
	pin := "sha256:" + strings.Repeat("ab", 32)
	dir := filepath.Join(t.TempDir(), "agent")
	sum := strings.Repeat("0f", 32)
	code, stdout, stderr := run(t, t.TempDir(), "init", "agent", dir, "--server", "https://pb.example:8443", "--pin", pin, "--token-file", tok,
		"--label", "role=web", "--label", "env=staging", "--binary-url", "https://dl.example/patchbay", "--binary-sha256", sum, "--interval", "2m")
	if code != 0 || strings.Count(stdout, "\n") != 3 {
		t.Fatalf("init agent: %d\n%s\n%s", code, stdout, stderr)
	}
	unit, _ := os.ReadFile(filepath.Join(dir, scaffold.AgentUnit))
	envf, _ := os.ReadFile(filepath.Join(dir, "agent.env"))
	if !strings.Contains(string(unit), "\nExecStart=/usr/local/bin/patchbay agent --state-dir /var/lib/patchbay/agent --interval 2m0s --label env=staging --label role=web\n") ||
		!strings.Contains(string(unit), "\nEnvironmentFile=/etc/patchbay/agent.env\n") {
		t.Errorf("unit:\n%s", unit)
	}
	if !strings.Contains(string(envf), "\nPATCHBAY_SERVER=https://pb.example:8443\nPATCHBAY_PIN="+pin+"\nPATCHBAY_ENROLL_TOKEN=pb_enroll_abc123\n") {
		t.Errorf("agent.env:\n%s", envf)
	}
	for _, f := range []string{"agent.env", "cloud-init.yaml"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600 (it holds the token)", f, err, st)
		}
	}
	ci, _ := os.ReadFile(filepath.Join(dir, "cloud-init.yaml"))
	var cc struct {
		WriteFiles []struct{ Path, Permissions, Content string } `yaml:"write_files"`
		RunCmd     [][]string                                    `yaml:"runcmd"`
	}
	if !bytes.HasPrefix(ci, []byte("#cloud-config\n")) {
		t.Error("cloud-init.yaml does not start with #cloud-config")
	}
	if err := yaml.Unmarshal(ci, &cc); err != nil {
		t.Fatalf("cloud-init.yaml: %v\n%s", err, ci)
	}
	if len(cc.WriteFiles) != 2 || cc.WriteFiles[0].Path != "/etc/patchbay/agent.env" || cc.WriteFiles[0].Content != string(envf) ||
		cc.WriteFiles[0].Permissions != "0600" || cc.WriteFiles[1].Content != string(unit) {
		t.Errorf("cloud-init write_files: %+v", cc.WriteFiles)
	}
	if len(cc.RunCmd) != 3 || !strings.Contains(cc.RunCmd[0][2], "echo '"+sum+"  /usr/local/bin/patchbay.download' | sha256sum -c -") ||
		strings.Join(cc.RunCmd[2], " ") != "systemctl enable --now patchbay-agent.service" {
		t.Errorf("cloud-init runcmd: %q", cc.RunCmd)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--server", "pb.example", "--token-file", tok}, `--server "pb.example": want the server's URL`},
		{[]string{"--server", "https://pb.example", "--pin", "abc", "--token-file", tok}, `--pin "abc": want sha256:`},
		{[]string{"--server", "https://pb.example"}, "--token-file: name the file"},
		{[]string{"--server", "https://pb.example", "--token-file", tok, "--label", "env"}, `--label "env": want key=value`},
		{[]string{"--server", "https://pb.example", "--token-file", tok, "--binary-url", "https://x/y"}, "--binary-url and --binary-sha256: give both"},
	} {
		out := filepath.Join(t.TempDir(), "agent")
		code, _, stderr := run(t, t.TempDir(), append([]string{"init", "agent", out}, c.args...)...)
		if code != ExitError || !strings.Contains(stderr, c.want) {
			t.Errorf("init agent %v: %d %s, want %q", c.args, code, stderr, c.want)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("a refused init agent wrote %s", out)
		}
	}
}

// TestInitOnDebianHost is the scaffolder's proof: for each built-in
// template, a server gets the generated repository applied; a
// debootstrapped Debian 12 root runs the unit `init agent` wrote — its
// ExecStart, in the root (chroot), with its EnvironmentFile — and the host
// it enrolls is in the template's first host group, covered by its window,
// and `plan create` with the template's strategy and that group resolves
// it in the strategy's first ring and the window.
func TestInitOnDebianHost(t *testing.T) {
	root := debroot.Bookworm(t)
	os.WriteFile(filepath.Join(root, "etc/hostname"), []byte("web-1\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/machine-id"), []byte(fmt.Sprintf("%032x\n", 0x5caff01d)), 0o444)
	bin := filepath.Join(root, "usr/local/bin/patchbay")
	// As e2e builds it (the build cache is shared); the root is Debian 12
	// as this machine is, so the binary runs in it.
	if out, err := exec.Command("go", "build", "-tags", "patchbaytest", "-o", bin, "../cmd/patchbay").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	for _, tm := range scaffold.Builtins() {
		t.Run(tm.Name, func(t *testing.T) { initOnHost(t, tm, root) })
	}
}

func initOnHost(t *testing.T, tm *scaffold.Template, root string) {
	r, _ := startInDir(t, t.TempDir())
	t.Setenv(envServer, r.url)
	t.Setenv(envPin, r.fingerprint)
	t.Setenv(envToken, r.adminToken)
	repo := filepath.Join(t.TempDir(), "repo")
	if code, _, stderr := run(t, t.TempDir(), "init", repo, "--template", tm.Name); code != 0 {
		t.Fatalf("init: %d %s", code, stderr)
	}
	if code, _, stderr := run(t, t.TempDir(), "apply", "-f", repo); code != 0 || !strings.Contains(stderr, " created, 0 changed") {
		t.Fatalf("apply: %d %s", code, stderr)
	}
	// What the repository says: the strategy, its first ring's group, the
	// window covering it, the first service.
	files, err := policy.CollectFiles([]string{repo}, nil)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := kinds.All().ParseFiles(files)
	if err != nil {
		t.Fatal(err)
	}
	var strategy, group, window, service, schedule string
	byPriority := false
	for _, d := range docs {
		switch s := d.Spec.(type) {
		case *rollout.ScheduleSpec:
			schedule, byPriority = d.Metadata.Name, len(s.Selector.Priorities) > 0
		case *rollout.StrategySpec:
			strategy, group = d.Metadata.Name, s.Rings[0].HostGroup
		case *rollout.WindowSpec:
			window = d.Metadata.Name
		case *policy.ServiceSpec:
			if service == "" {
				service = d.Metadata.Name
			}
		}
	}

	code, tok, stderr := run(t, t.TempDir(), "admin", "token", "create", "--enrollment", "--uses", "1")
	if code != 0 {
		t.Fatalf("enrollment token: %d %s", code, stderr)
	}
	tokFile := filepath.Join(t.TempDir(), "enroll-token")
	os.WriteFile(tokFile, []byte(tok), 0o600)
	agentDir := filepath.Join(t.TempDir(), "agent")
	if code, _, stderr := run(t, t.TempDir(), "init", "agent", agentDir, "--server", r.url, "--pin", r.fingerprint, "--token-file", tokFile,
		"--label", "env="+group, "--label", "role="+service); code != 0 {
		t.Fatalf("init agent: %d %s", code, stderr)
	}

	// Install as the README says: the unit and its environment file.
	unit, _ := os.ReadFile(filepath.Join(agentDir, scaffold.AgentUnit))
	unitPath := filepath.Join(root, "etc/systemd/system", scaffold.AgentUnit)
	os.MkdirAll(filepath.Dir(unitPath), 0o755)
	os.WriteFile(unitPath, unit, 0o644)
	envData, _ := os.ReadFile(filepath.Join(agentDir, "agent.env"))
	os.MkdirAll(filepath.Join(root, "etc/patchbay"), 0o755)
	os.WriteFile(filepath.Join(root, scaffold.AgentEnvPath), envData, 0o600)
	// The host enrolls again with this template's server.
	os.Remove(filepath.Join(root, "var/lib/patchbay/agent/credential.json"))
	verifyUnit(t, unit, filepath.Join(root, scaffold.BinaryPath))

	var execStart []string
	var envFile string
	sc := bufio.NewScanner(bytes.NewReader(unit))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "ExecStart="); ok {
			execStart = strings.Fields(v)
		}
		if v, ok := strings.CutPrefix(sc.Text(), "EnvironmentFile="); ok {
			envFile = v
		}
	}
	if len(execStart) == 0 || envFile != scaffold.AgentEnvPath {
		t.Fatalf("unit without ExecStart or EnvironmentFile:\n%s", unit)
	}
	environ := []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}
	for _, l := range strings.Split(string(envData), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			environ = append(environ, l)
		}
	}
	var logs syncBuffer
	cmd := exec.Command("chroot", append([]string{root}, execStart...)...)
	cmd.Env = environ
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()

	type host struct {
		ID       string `json:"id"`
		Hostname string `json:"hostname"`
		Facts    struct {
			Labels map[string]string `json:"labels"`
		} `json:"facts"`
		Updates int `json:"updates_count"`
	}
	var h host
	deadline := time.Now().Add(3 * time.Minute)
	for {
		_, out, _ := run(t, t.TempDir(), "hosts", "list", "-o", "json")
		var hl struct{ Hosts []host }
		json.Unmarshal([]byte(out), &hl)
		if len(hl.Hosts) == 1 && hl.Hosts[0].Updates > 0 {
			h = hl.Hosts[0]
			break
		}
		if time.Now().After(deadline) || cmd.ProcessState != nil {
			t.Fatalf("no host with updates from the unit's command %v:\n%s\n%s", execStart, out, logs.String())
		}
		time.Sleep(300 * time.Millisecond)
	}
	if h.Facts.Labels["env"] != group || h.Facts.Labels["role"] != service {
		t.Errorf("host labels %v, want env=%s role=%s", h.Facts.Labels, group, service)
	}
	// The generated schedule's selector resolves the host at its window's
	// next opening: patched then, or its updates held by the age gate
	// (small-team's 3d: they appeared just now). A selector by priority
	// (regulated's P1 and P2) takes findings, and this server has no
	// advisory feed: no finding, so nothing at the opening.
	code, out, stderr := run(t, t.TempDir(), "schedules", "show", schedule)
	opening := regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(window) + `  \d{4}-\d\d-\d\d \d\d:\d\d.*\n    hosts (\d+)  packages (\d+) .*\n(    left out: .*)?`)
	m := opening.FindStringSubmatch(out)
	resolved := m != nil && (m[1] == "1" && m[2] != "0" || strings.Contains(m[3], "age gate: "))
	if byPriority {
		resolved = m != nil && m[1] == "0"
	}
	if code != 0 || !resolved {
		t.Errorf("schedules show %s: want the host at the window %s's next opening, patched or held by the age gate:\n%d\n%s\n%s", schedule, window, code, out, stderr)
	}
	t.Logf("%s: schedules show %s\n%s", tm.Name, schedule, out)
	code, out, stderr = run(t, t.TempDir(), "plan", "create", "--strategy", strategy, "--type", "security", "--host-group", group)
	if code != 0 {
		t.Fatalf("plan create: %d\n%s\n%s", code, out, stderr)
	}
	ring := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(group) + `\s+1\s+\d+\s+.*\b` + regexp.QuoteMeta(window) + ` \d{4}-\d\d-\d\d \d\d:\d\d .*\(1\)`)
	if !ring.MatchString(out) {
		t.Errorf("plan create --strategy %s --host-group %s: want the host in ring %s, window %s:\n%s", strategy, group, group, window, out)
	}
	t.Logf("%s: host %s (env=%s role=%s), %d updates\n%s", tm.Name, h.Hostname, group, service, h.Updates, out)
}

// verifyUnit runs systemd-analyze verify on the unit where it is
// installed. The minimal Debian root has no systemd to verify it in
// (--root wants its sysinit.target), so it is verified on this machine,
// its ExecStart binary read from bin (the one the root holds).
func verifyUnit(t *testing.T, unit []byte, bin string) {
	t.Helper()
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze is not installed: the unit is not verified")
		return
	}
	p := filepath.Join(t.TempDir(), scaffold.AgentUnit)
	os.WriteFile(p, bytes.Replace(unit, []byte("ExecStart="+scaffold.BinaryPath+" "), []byte("ExecStart="+bin+" "), 1), 0o644)
	out, err := exec.Command(sa, "verify", p).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s\n%s", err, out, unit)
	}
}
