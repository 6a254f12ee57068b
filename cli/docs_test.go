package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// docCommand is one patchbay command line of the README or docs/.
type docCommand struct {
	where string // file:line
	words []string
}

var (
	fenceRE   = regexp.MustCompile("(?s)```(\\w*)\\n(.*?)```")
	commentRE = regexp.MustCompile(`\s+#.*$`)
	envRE     = regexp.MustCompile(`^[A-Z_]+=\S*\s+`)
)

// docCommands reads the patchbay command lines of the shell blocks of
// README.md and docs/*.md: each `;`-separated command, with only the first
// of ` | `-separated alternatives.
func docCommands(t *testing.T) []docCommand {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join("..", "docs", "*.md"))
	files = append([]string{filepath.Join("..", "README.md")}, files...)
	var out []docCommand
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		for _, m := range fenceRE.FindAllStringSubmatchIndex(s, -1) {
			lang, body := s[m[2]:m[3]], s[m[4]:m[5]]
			first := strings.Count(s[:m[4]], "\n") + 1
			for i, line := range strings.Split(body, "\n") {
				line = strings.TrimPrefix(strings.TrimSpace(line), "$ ")
				if lang != "sh" && !strings.HasPrefix(line, "patchbay ") {
					continue // diagrams and output
				}
				line = commentRE.ReplaceAllString(line, "")
				for _, c := range strings.Split(line, "; ") {
					c = strings.TrimSpace(c)
					for envRE.MatchString(c) {
						c = envRE.ReplaceAllString(c, "")
					}
					c, _, _ = strings.Cut(c, " | ")
					var rest string
					var ok bool
					if rest, ok = strings.CutPrefix(c, "go run ./cmd/patchbay "); !ok {
						if rest, ok = strings.CutPrefix(c, "patchbay "); !ok {
							continue
						}
					}
					rest = strings.NewReplacer("[", " ", "]", " ").Replace(rest)
					out = append(out, docCommand{where: filepath.Base(f) + ":" + strconv.Itoa(first+i), words: strings.Fields(rest)})
				}
			}
		}
	}
	return out
}

// TestDocsCommandsExist: every patchbay command the README and the docs
// show names commands that exist, flags those commands have (an
// alternative a|b: each of them), and as many arguments as they take.
func TestDocsCommandsExist(t *testing.T) {
	cmds := docCommands(t)
	if len(cmds) < 40 {
		t.Fatalf("found only %d commands in the docs", len(cmds))
	}
	for _, dc := range cmds {
		checkDocCommand(t, dc, newRoot(&env{}), dc.words)
	}
}

func checkDocCommand(t *testing.T, dc docCommand, cur *cobra.Command, words []string) {
	t.Helper()
	for i, w := range words {
		if strings.HasPrefix(w, "-") {
			checkDocFlags(t, dc, cur, words[i:])
			return
		}
		if strings.Contains(w, "|") {
			alts := strings.Split(w, "|")
			if sub := findSub(cur, alts[0]); sub != nil {
				for _, a := range alts {
					sub := findSub(cur, a)
					if sub == nil {
						t.Errorf("%s: %q: %s has no subcommand %q", dc.where, strings.Join(dc.words, " "), cur.CommandPath(), a)
						continue
					}
					checkDocCommand(t, dc, sub, words[i+1:])
				}
				return
			}
		}
		sub := findSub(cur, w)
		if sub == nil {
			if cur.HasSubCommands() && !cur.Runnable() {
				t.Errorf("%s: %q: %s has no subcommand %q", dc.where, strings.Join(dc.words, " "), cur.CommandPath(), w)
				return
			}
			checkDocFlags(t, dc, cur, words[i:])
			return
		}
		cur = sub
	}
	checkDocFlags(t, dc, cur, nil)
}

func findSub(c *cobra.Command, name string) *cobra.Command {
	for _, s := range c.Commands() {
		if s.Name() == name || s.HasAlias(name) {
			return s
		}
	}
	return nil
}

// checkDocFlags checks the flags and the number of arguments of words for cmd.
func checkDocFlags(t *testing.T, dc docCommand, cmd *cobra.Command, words []string) {
	t.Helper()
	line := strings.Join(dc.words, " ")
	fs := pflag.NewFlagSet("all", pflag.ContinueOnError)
	fs.AddFlagSet(cmd.Flags())
	fs.AddFlagSet(cmd.PersistentFlags())
	fs.AddFlagSet(cmd.InheritedFlags())
	var args []string
	for i := 0; i < len(words); i++ {
		w := words[i]
		if w == "…" || w == "..." {
			continue
		}
		if !strings.HasPrefix(w, "-") || w == "-" {
			args = append(args, w)
			continue
		}
		takesValue := false
		for _, alt := range strings.Split(w, "|") {
			name, _, hasValue := strings.Cut(alt, "=")
			var f *pflag.Flag
			if long, ok := strings.CutPrefix(name, "--"); ok {
				f = fs.Lookup(long)
			} else if len(name) == 2 {
				f = fs.ShorthandLookup(name[1:])
			}
			if f == nil {
				t.Errorf("%s: %q: %s has no flag %s", dc.where, line, cmd.CommandPath(), name)
				continue
			}
			if f.NoOptDefVal == "" && !hasValue {
				takesValue = true
			}
		}
		if takesValue {
			i++ // its value
		}
	}
	if cmd.Args != nil {
		if err := cmd.Args(cmd, args); err != nil {
			t.Errorf("%s: %q: %s %v: %v", dc.where, line, cmd.CommandPath(), args, err)
		}
	}
}
