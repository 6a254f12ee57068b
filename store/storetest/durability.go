package storetest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/risk"
)

// DurabilityEnv carries the store's address to the durability child.
const DurabilityEnv = "PATCHBAY_DURABILITY_STORE"

const durabilityHosts = 24

// durabilityInventory is host's k-th inventory: its versions say k, and
// so does its one finding.
func durabilityInventory(host string, k int) ([]fleet.Finding, string) {
	return []fleet.Finding{{HostID: host, Ecosystem: "Debian:12", Package: "srclib000", Vulnerability: fmt.Sprintf("CVE-%d", k), Version: fmt.Sprintf("1.%d", k),
		Priority: risk.P2, Severity: "HIGH", State: fleet.StateOpen}}, fmt.Sprintf("1.%d", k)
}

// DurabilityChild is the child of Durability: when DurabilityEnv is set it
// opens the store there and ingests inventory after inventory on every
// host at once, writing "ack HOST K" to standard output after each ingest
// returned without an error, until it is killed. Without the variable it
// skips.
func DurabilityChild(t *testing.T, open func(t *testing.T, addr string) (IngestStore, FindingStore)) {
	addr := os.Getenv(DurabilityEnv)
	if addr == "" {
		t.Skip("the child of a durability test")
	}
	ctx := context.Background()
	s, _ := open(t, addr)
	for i := 0; i < durabilityHosts; i++ {
		if err := s.UpsertHost(ctx, fleet.Host{ID: fmt.Sprintf("h%02d", i), MachineID: fmt.Sprintf("m%02d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	fmt.Println("ready")
	var wg sync.WaitGroup
	for i := 0; i < durabilityHosts; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			host := fmt.Sprintf("h%02d", i)
			for k := 1; ; k++ {
				fs, v := durabilityInventory(host, k)
				if _, _, _, err := s.IngestInventory(ctx, host, debPkgs(0, 40+k%9, v), fs, time.Now(), "durability"); err != nil {
					mu.Lock()
					fmt.Printf("error %s %d %v\n", host, k, err)
					mu.Unlock()
					return
				}
				mu.Lock()
				fmt.Printf("ack %s %d\n", host, k)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// Durability runs the child test childTest of this test binary against
// the store at addr, SIGKILLs it once it has acknowledged a few hundred
// ingests, and checks what open finds: every host holds its last
// acknowledged inventory — or the one in flight when the child was
// killed — with that inventory's findings (nothing acknowledged lost,
// nothing half written).
func Durability(t *testing.T, addr, childTest string, open func(t *testing.T, addr string) (IngestStore, FindingStore)) {
	cmd := exec.Command(os.Args[0], "-test.run", "^"+childTest+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), DurabilityEnv+"="+addr)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]int{}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	total, killed := 0, false
	deadline := time.After(2 * time.Minute)
	handle := func(l string) {
		f := strings.Fields(l)
		switch {
		case len(f) == 3 && f[0] == "ack":
			k, _ := strconv.Atoi(f[2])
			acked[f[1]] = k
			total++
		case len(f) > 0 && f[0] == "error":
			t.Errorf("child: %s", l)
		}
	}
	for !killed {
		select {
		case l, ok := <-lines:
			if !ok {
				cmd.Wait()
				t.Fatalf("the child ended before it was killed:\n%s", stderr.String())
			}
			handle(l)
			if total >= 400 {
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				killed = true
			}
		case <-deadline:
			cmd.Process.Kill()
			t.Fatalf("the child acknowledged %d ingests in 2 minutes:\n%s", total, stderr.String())
		}
	}
	// What the child wrote before it died was acknowledged too.
	for l := range lines {
		handle(l)
	}
	cmd.Wait()
	s, fs := open(t, addr)
	ctx := context.Background()
	for i := 0; i < durabilityHosts; i++ {
		host := fmt.Sprintf("h%02d", i)
		inv, err := s.Inventory(ctx, host)
		if err != nil {
			t.Fatal(err)
		}
		k := 0
		if len(inv) > 0 {
			k, _ = strconv.Atoi(strings.TrimPrefix(inv[0].Version, "1."))
		}
		if a := acked[host]; k != a && k != a+1 {
			t.Errorf("host %s: stored inventory %d, last acknowledged %d", host, k, a)
			continue
		}
		if k == 0 {
			continue
		}
		if len(inv) != 40+k%9 {
			t.Errorf("host %s: inventory %d has %d packages, want %d", host, k, len(inv), 40+k%9)
		}
		if got, want := fmt.Sprint(openVulns(t, fs, host)), fmt.Sprintf("[CVE-%d]", k); got != want {
			t.Errorf("host %s: inventory %d stored with open findings %s, want %s", host, k, got, want)
		}
	}
	t.Logf("%d ingests acknowledged before SIGKILL, all stored", total)
}
