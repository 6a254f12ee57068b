package inventory

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
}

// Skip is an input that was not read.
type Skip struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// Error renders the skip as "path: reason".
func (s Skip) Error() string { return s.Path + ": " + s.Reason }
