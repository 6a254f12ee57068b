package rollout

import (
	"math"
	"sort"
)

// MannWhitney is the one-sided Mann-Whitney U test (Wilcoxon rank-sum)
// of whether the values of x tend to be greater than those of y, as
// Kayenta judges a canary against its baseline: ranks with ties
// averaged, the normal approximation with the tie correction and a
// continuity correction. It returns U for x and the p-value; p is 1 when
// every value is equal (no evidence either way). It makes no assumption
// of normality of the values themselves; the approximation wants some
// ten values a side (the gate's minSamples).
func MannWhitney(x, y []float64) (u, p float64) {
	n1, n2 := float64(len(x)), float64(len(y))
	if n1 == 0 || n2 == 0 {
		return 0, 1
	}
	type v struct {
		val float64
		x   bool
	}
	all := make([]v, 0, len(x)+len(y))
	for _, a := range x {
		all = append(all, v{a, true})
	}
	for _, b := range y {
		all = append(all, v{b, false})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].val < all[j].val })
	var r1, ties float64
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].val == all[i].val {
			j++
		}
		rank := float64(i+j+1) / 2 // the average of ranks i+1 … j
		for k := i; k < j; k++ {
			if all[k].x {
				r1 += rank
			}
		}
		t := float64(j - i)
		ties += t*t*t - t
		i = j
	}
	n := n1 + n2
	u = r1 - n1*(n1+1)/2
	variance := n1 * n2 / 12 * ((n + 1) - ties/(n*(n-1)))
	if variance <= 0 {
		return u, 1
	}
	z := (u - n1*n2/2 - 0.5) / math.Sqrt(variance)
	return u, 0.5 * math.Erfc(z/math.Sqrt2)
}
