package inventory

import "fmt"

// Result is what a collection found.
type Result struct {
	// Distro is the root's OS release; nil when no root was scanned.
	Distro *Distro `json:"distro,omitempty"`
	// Packages are sorted by ecosystem, name, version and location.
	Packages []Package `json:"packages"`
	// Skipped lists the inputs that could not be read, with why.
	Skipped []Skip `json:"skipped,omitempty"`
	// Files lists every input file that yielded packages (or was parsed and
	// declared none), in walk order.
	Files []string `json:"files"`
	// Warnings are lines of inputs that were read but not understood (a
	// requirement "requests=2.0", which pip refuses and the parser passes
	// over): nothing of them is matched.
	Warnings []Warning `json:"warnings,omitempty"`
}

// Skip is an input that was not read.
type Skip struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
	// Unreadable says the input could not be read at all (permissions, a
	// device, an I/O error), as opposed to read and not understood.
	Unreadable bool `json:"unreadable,omitempty"`
}

// Warning is a line of an input that was passed over.
type Warning struct {
	Path    string `json:"path"`
	Line    int    `json:"line"`
	Message string `json:"message"`
}

// String renders the warning as "path:line: message".
func (w Warning) String() string { return fmt.Sprintf("%s:%d: %s", w.Path, w.Line, w.Message) }

// Error renders the skip as "path: reason".
func (s Skip) Error() string { return s.Path + ": " + s.Reason }
