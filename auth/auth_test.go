package auth

import (
	"strings"
	"testing"
)

func TestRoleMatrix(t *testing.T) {
	want := map[Role]map[Role]bool{
		Admin:    {Admin: true, Operator: true, Viewer: true, Agent: false},
		Operator: {Admin: false, Operator: true, Viewer: true, Agent: false},
		Viewer:   {Admin: false, Operator: false, Viewer: true, Agent: false},
		Agent:    {Admin: false, Operator: false, Viewer: false, Agent: true},
	}
	for have, row := range want {
		for need, ok := range row {
			if have.Allows(need) != ok {
				t.Errorf("%s allows %s = %v, want %v", have, need, !ok, ok)
			}
		}
	}
	if _, err := ParseRole("root"); err == nil {
		t.Error("unknown role parsed")
	}
}

func TestSecrets(t *testing.T) {
	a, id, hash, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, _, _, _ := NewSecret()
	if a == b || !strings.HasPrefix(a, "pb_") || len(a) != 3+43 {
		t.Errorf("secrets %q %q", a, b)
	}
	if hash != HashOf(a) || id != IDOf(a) || strings.Contains(hash, id) || len(id) != 12 {
		t.Errorf("id %q hash %q", id, hash)
	}
}
