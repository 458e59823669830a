// Package eval measures layering strategies: corpora (a package set's store
// paths and the images built from it), generators of corpora of many shapes,
// a corpus made from Debian 12's real dependency graph, update scenarios of
// several kinds, and the evaluation that reports how many bytes a registry
// stores and how many a client fetches after an update.
//
// It is kept apart from package layering so that the algorithm's package
// holds only the algorithm; the CLI (`strata layers`) and `make bench` use
// this package.
package eval
