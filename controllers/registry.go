package controllers

import "strconv"

// nextGeneration is the generation of the registry document the operator
// is about to write, given the generation it replaces and the
// resourceVersion of the read the write is based on. Generations never go
// backwards, whatever happens to the ConfigMap or the operator: why this
// holds is in docs/registry-generation.md.
func nextGeneration(previous int64, basisRV string) int64 {
	rv, err := strconv.ParseInt(basisRV, 10, 64)
	if err != nil || rv < 0 {
		// Not an integer resourceVersion (an API server older than 1.34):
		// count on from the document alone.
		return previous + 1
	}
	if previous > rv {
		previous = 0 // not a generation the operator published
	}
	return max(previous, rv) + 1
}
