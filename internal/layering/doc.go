// Package layering splits the closure of an image into layer groups so that
// images built from one package set share as many bytes as possible.
//
// A layer is identified by its set of store paths (Group.Key), so two images
// share a layer only if they chose exactly the same group. The strategies
// ("strata", the default, "popularity" and the baselines "dockertools",
// "nix2container" and "nixery") are selected by name with New.
package layering
