// Package layering splits the closure of an image into layer groups so that
// images built from one package set share as many bytes as possible, and an
// update re-uploads as few as possible.
//
// # Why layering shares bytes, and why the usual tools share few
//
// A layer is identified by its set of store paths (Group.Key). Two images
// share a layer only if they chose exactly the same group, so a store path
// is stored once only if every image holding it puts it in the same group.
// The tools strata replaces decide per image from image-dependent data:
// dockerTools and nix2container rank paths by how often they occur in the
// image's own reference graph and pile everything past the budget into one
// last layer, different in every image; Nixery takes the dominator tree of
// the image's graph, which moves whenever another package joins the image.
// Those last layers and moving subtrees are stored again for every image.
//
// # The strata strategy (the default)
//
// Every decision about a path is taken from properties that are the same
// in every image holding it (its size, its popularity in the package set,
// its own dependency cone) and from the package set's distributions
// (SetStats: popularity, the median size and path count of a top-level
// closure, ImageBytes and ImagePaths), never from constants fitted to one
// corpus. For a closure and a budget of N groups:
//
//  1. Private folding. A path that exactly one path of the package set
//     refers to (popularity ≤ 1), and that one path of the closure refers
//     to, is folded into that referrer, chains from the bottom, when its
//     block is at most 1/8 of the referrer's own size (so an update of the
//     referrer alone re-uploads at most 12.5 % more), or at most
//     8·ImageBytes/N·ImagePaths/N bytes. That second bound grows as the
//     budget gets scarce relative to a typical image: at N = 100 it folds
//     almost nothing (every path of a typical image has room of its own),
//     at N = 20 it folds what would otherwise crowd the budget. Both depend
//     only on the path, its referrer and the package set, so a folded block
//     is the same set of paths in every image.
//  2. Within budget, every block has a layer of its own: the image then
//     shares every byte with every other image that holds the same blocks.
//  3. Over budget, blocks are ranked by an image-independent value, size
//     and popularity on a log scale in whole bits (3·bitlen(size) +
//     bitlen(popularity); a version bump's small change of size rarely
//     reorders), ties by package name, then path. The best keep a layer of
//     their own (a top-level block, popularity 0, ranks 4 bits higher:
//     it changes with every update below it, so a layer of its own saves
//     the most re-uploading, and every image asking for it shares it);
//     the rest share one group per popularity tier: "shared"
//     (popularity > 1: libraries, which change rarely and co-occur) and
//     "leaf" (popularity ≤ 1: applications and private paths, which are
//     image-specific and change with every update below them). Keeping the
//     two apart means a leaf update does not re-upload the libraries.
//
// strata build and strata serve get the same SetStats as the measurements
// below from --package-set (a corpus file: eval.Corpus.Stats); serve's
// --popularity replaces its popularity. Without SetStats (New with
// popularity data only), the fold bound of step 1 is the 1/8 share alone.
// Without popularity data (Default, as strata build and strata serve run
// it without either flag) nothing is folded, since a path with one
// referrer in this closure may have many elsewhere and folding it here
// only would split its layers; popularity for ranking and tiers is then
// the number of referrers within the closure (row "strata-nodata" below).
// The statistics are not gathered from the images a server has built so
// far: the layers of an image would then depend on what was built before
// it and change across restarts. The result depends only on the closure,
// the budget and the package set, never on what was built before, so a
// registry serving many images keeps its layers; builders put
// SetStats.Fingerprint in their cache keys. Groups are
// ordered base first: layers of their own by descending popularity, then
// the shared tier, then the leaf tier. Strategies that implement Explainer
// (strata does) say why each group's paths are together; `strata layers
// --explain IMAGE CORPUS.json` prints it with what each update re-uploads.
//
// # Measurements
//
// The harness is package eval. Corpora: the tuning set (nixpkgs/1, the
// hand-written nixpkgs-like table; layered/1 and deep/1, eval.Generate's
// shapes), on which the parameters above were chosen; the held-out set,
// never used for tuning: other seeds of those shapes (nixpkgs/7,
// layered/11, deep/11), three shapes never seen (wide: many small paths and
// big closures; flat: little popularity skew and no size tail; heavytail:
// a few enormous paths) and debian12, Debian 12's real dependency graph
// (testdata/corpus/debian12.json, 2025 paths, 65 images from 4 to 391
// paths); and the fresh held-out set ("fresh", eval.FreshHeldOutSet): seed
// 2026 of every generated shape, drawn on 2026-12-02 after the last change
// to the strategy, so that not even the published held-out table could
// have steered it. Efficiency = idealBytes / storedBytes (1 is perfect
// sharing); the update cost of each kind (leaf: three leaf applications;
// mid: a library a few percent of the set depends on; base: the path
// nearly everything depends on; mixed: the corpus's own update) is the
// bytes a client holding the old image fetches over the bytes of the
// changed paths (1 is perfect); mixed(reg) is what the registry stores
// anew per changed byte. Row "(bound)": eval.EfficiencyBound, an upper
// bound on the efficiency of any layering, even one that knows every
// image, then eval.UpdateCostBound per update kind, a lower bound on the
// update cost of any layering that shares as well as any can before the
// update, and the share of the images' bytes that must share a layer (all
// but each image's budget-2 largest paths). "(oracle)" is
// eval.OracleEfficiency, what a simple layering that knows every image
// reaches (paths held by the same images together, the largest such sets
// in layers of their own, the rest in one group). Measured 2026-12-02 with
//
//	go test -run '^$' -bench Layering -benchtime 1x ./internal/layering/eval/
//
//	corpus         set      strategy       efficiency        leaf         mid        base       mixed  mixed(reg)
//	                                         100 / 20    100 / 20    100 / 20    100 / 20    100 / 20    100 / 20
//	nixpkgs/1      tuning   (bound)       1.000/0.991  1.00/ 1.00  1.00/ 1.00  1.00/ 1.00  1.00/ 1.00  1.00/ 1.03  must share 0%/4%
//	                        (oracle)      1.000/0.966
//	                        strata        0.978/0.906  1.16/ 1.23  1.02/ 1.10  1.00/ 1.00  1.07/ 1.16  1.08/ 1.22
//	                        popularity    0.962/0.542  2.01/ 6.62  1.00/ 1.90  1.00/ 1.02  1.03/ 1.97  1.11/ 3.25
//	                        dockertools   0.829/0.368  4.53/ 8.77  1.00/ 3.31  1.00/ 1.01  1.12/ 2.84  1.52/ 4.91
//	                        nix2container 0.831/0.367  4.47/ 8.77  1.00/ 3.31  1.00/ 1.01  1.12/ 2.84  1.51/ 4.91
//	                        nixery        0.555/0.480  1.13/ 5.33  1.22/ 1.36  1.01/ 1.01  1.18/ 1.40  1.48/ 2.16
//	                        strata-nodata 0.996/0.878  1.00/ 1.79  1.00/ 1.14  1.00/ 1.00  1.00/ 1.14  1.01/ 1.29
//	layered/1      tuning   (bound)       1.000/0.980  1.00/ 1.00  1.00/ 1.00  1.00/ 1.00  1.00/ 1.00  1.00/ 1.05  must share 0%/7%
//	                        (oracle)      1.000/0.922
//	                        strata        1.000/0.862  1.00/ 8.95  1.04/ 1.08  1.00/ 1.02  1.00/ 1.34  1.00/ 1.83
//	                        popularity    1.000/0.542  1.00/98.79  1.00/ 2.33  1.00/ 1.05  1.00/ 6.42  1.00/12.26
//	                        dockertools   1.000/0.401  1.00/142.71  1.00/ 2.66  1.00/ 1.02  1.00/ 8.08  1.00/15.57
//	                        nix2container 1.000/0.397  1.00/145.49  1.00/ 2.62  1.00/ 1.02  1.00/ 8.02  1.00/15.46
//	                        nixery        0.313/0.312  5.74/ 9.42  2.02/ 2.02  1.12/ 1.12  3.50/ 3.50  6.82/ 6.82
//	                        strata-nodata 1.000/0.788  1.00/18.95  1.00/ 1.35  1.00/ 1.01  1.00/ 1.62  1.00/ 2.20
//	deep/1         tuning   (bound)       1.000/0.989  1.00/ 1.00  1.00/ 1.00  1.00/ 1.00  1.00/ 1.00  1.00/ 1.01  must share 0%/9%
//	                        (oracle)      1.000/0.951
//	                        strata        0.994/0.866  1.04/ 1.68  1.00/ 1.11  1.00/ 1.03  1.03/ 1.15  1.03/ 1.30
//	                        popularity    1.000/0.519  1.00/20.58  1.00/ 5.03  1.00/ 1.04  1.00/ 4.55  1.00/ 9.14
//	                        dockertools   1.000/0.411  1.00/36.90  1.00/ 6.11  1.00/ 1.02  1.00/ 5.62  1.00/11.81
//	                        nix2container 1.000/0.413  1.00/36.48  1.00/ 6.17  1.00/ 1.01  1.00/ 5.58  1.00/11.71
//	                        nixery        0.383/0.383  1.28/ 1.28  2.35/ 2.35  1.12/ 1.12  1.67/ 1.67  3.29/ 3.29
//	                        strata-nodata 1.000/0.769  1.00/ 3.23  1.00/ 1.60  1.00/ 1.02  1.00/ 1.78  1.00/ 2.70
//	nixpkgs/7      held-out (bound)       1.000/0.992  1.00/ 1.00  1.00/ 1.00  1.00/ 1.00  1.00/ 1.00  1.00/ 1.02  must share 0%/3%
//	                        (oracle)      1.000/0.972
//	                        strata        0.994/0.927  1.09/ 1.51  1.02/ 1.11  1.00/ 1.00  1.04/ 1.13  1.04/ 1.19
//	                        popularity    0.963/0.567  3.02/14.35  1.00/ 1.99  1.00/ 1.02  1.02/ 1.67  1.09/ 3.10
//	                        dockertools   0.794/0.373 10.61/19.41  1.00/ 3.46  1.00/ 1.02  1.09/ 2.38  1.60/ 4.68
//	                        nix2container 0.787/0.372 10.61/19.41  1.00/ 3.48  1.00/ 1.02  1.09/ 2.39  1.60/ 4.69
//	                        nixery        0.578/0.490  1.27/11.96  1.21/ 1.34  1.00/ 1.00  1.15/ 1.31  1.59/ 2.27
//	                        strata-nodata 0.996/0.890  1.00/ 2.42  1.00/ 1.14  1.00/ 1.00  1.00/ 1.11  1.00/ 1.24
//	layered/11     held-out (bound)       1.000/0.981  1.00/ 1.00  1.00/ 1.00  1.00/ 1.00  1.00/ 1.00  1.00/ 1.00  must share 0%/6%
//	                        (oracle)      1.000/0.963
//	                        strata        0.999/0.915  1.00/ 1.08  1.00/ 1.01  1.00/ 1.01  1.00/ 1.04  1.00/ 1.08
//	                        popularity    1.000/0.600  1.00/15.14  1.00/ 1.44  1.00/ 1.01  1.00/ 1.73  1.00/ 3.25
//	                        dockertools   1.000/0.436  1.00/ 5.57  1.00/ 1.52  1.00/ 1.00  1.00/ 2.47  1.00/ 4.69
//	                        nix2container 1.000/0.432  1.00/17.11  1.00/ 1.51  1.00/ 1.00  1.00/ 2.47  1.00/ 4.70
//	                        nixery        0.354/0.354  3.94/ 3.94  1.11/ 1.11  1.01/ 1.01  1.98/ 1.98  3.65/ 3.65
//	                        strata-nodata 1.000/0.839  1.00/ 1.00  1.00/ 1.03  1.00/ 1.01  1.00/ 1.10  1.00/ 1.20
//	deep/11        held-out (bound)       1.000/0.975  1.00/ 1.08  1.00/ 1.00  1.00/ 1.00  1.00/ 1.00  1.00/ 1.09  must share 0%/9%
//	                        (oracle)      1.000/0.943
//	                        strata        0.999/0.845  1.08/ 4.03  1.01/ 1.08  1.00/ 1.02  1.02/ 1.87  1.02/ 2.26
//	                        popularity    0.995/0.623  1.00/25.64  1.00/ 1.61  1.00/ 1.02  1.03/ 3.84  1.06/ 6.48
//	                        dockertools   0.999/0.422  1.00/29.38  1.00/ 1.85  1.00/ 1.02  1.10/ 6.13  1.18/10.97
//	                        nix2container 0.995/0.427  1.00/30.05  1.00/ 1.86  1.00/ 1.02  1.08/ 6.05  1.15/10.90
//	                        nixery        0.379/0.376 18.78/18.78  1.21/ 1.21  1.03/ 1.03  3.82/ 3.91  6.67/ 6.84
//	                        strata-nodata 0.999/0.783  1.00/ 6.35  1.00/ 1.08  1.00/ 1.02  1.00/ 1.81  1.00/ 2.60
//	wide/11        held-out (bound)       1.000/0.946  1.00/ 1.59  1.00/ 1.00  1.00/ 1.00  1.00/ 1.00  1.00/ 1.04  must share 0%/9%
//	                        (oracle)      1.000/0.746
//	                        strata        0.995/0.668  1.04/12.16  1.00/ 1.12  1.00/ 1.02  1.03/ 2.67  1.03/ 3.72
//	                        popularity    0.964/0.404  9.36/90.36  1.10/ 2.03  1.00/ 1.03  1.31/ 6.68  1.54/10.93
//	                        dockertools   0.694/0.194 70.40/179.92  1.41/ 2.81  1.00/ 1.03  2.96/13.32  4.31/21.79
//	                        nix2container 0.684/0.194 69.55/178.84  1.38/ 2.77  1.00/ 1.02  3.00/13.32  4.31/21.80
//	                        nixery        0.240/0.237 11.12/11.12  1.53/ 1.53  1.04/ 1.04  4.91/ 5.21  8.04/ 8.52
//	                        strata-nodata 0.988/0.635  1.00/31.47  1.01/ 1.26  1.00/ 1.02  1.00/ 3.02  1.00/ 4.37
//	flat/11        held-out (bound)       1.000/0.831  1.00/ 1.00  1.00/ 1.00  1.00/ 1.00  1.00/ 1.00  1.00/ 1.15  must share 1%/35%
//	                        (oracle)      1.000/0.371
//	                        strata        0.968/0.333  1.00/ 1.96  1.00/ 2.48  1.01/ 1.02  1.06/ 8.71  1.11/14.88
//	                        popularity    0.930/0.255  3.28/52.36  1.19/ 4.93  1.00/ 1.03  1.61/16.76  2.17/30.00
//	                        dockertools   0.754/0.197  6.57/63.84  1.56/ 6.06  1.00/ 1.02  3.01/21.04  4.83/37.82
//	                        nix2container 0.742/0.198  7.80/62.46  1.60/ 5.98  1.00/ 1.02  3.13/20.90  5.05/37.59
//	                        nixery        0.194/0.188  6.09/ 6.09  3.25/ 3.25  1.03/ 1.03 11.12/11.12 20.00/20.00
//	                        strata-nodata 0.950/0.313  1.00/14.13  1.00/ 2.90  1.00/ 1.02  1.17/10.12  1.33/17.88
//	heavytail/11   held-out (bound)       1.000/0.990  1.00/ 1.01  1.00/ 1.00  1.00/ 1.00  1.00/ 1.00  1.00/ 1.04  must share 0%/6%
//	                        (oracle)      1.000/0.967
//	                        strata        1.000/0.877  1.01/ 1.14  1.06/ 1.36  1.00/ 1.03  1.00/ 1.44  1.01/ 1.96
//	                        popularity    1.000/0.640  1.00/ 3.40  1.00/ 3.14  1.00/ 1.04  1.00/ 5.44  1.00/10.74
//	                        dockertools   1.000/0.521  1.00/ 3.39  1.00/ 3.76  1.00/ 1.01  1.00/ 7.02  1.00/14.48
//	                        nix2container 1.000/0.533  1.00/ 3.29  1.00/ 3.79  1.00/ 1.02  1.00/ 6.80  1.00/14.02
//	                        nixery        0.488/0.484  1.13/ 1.20  1.80/ 1.80  1.15/ 1.15  2.08/ 2.21  3.75/ 4.04
//	                        strata-nodata 1.000/0.856  1.00/ 1.18  1.00/ 1.41  1.00/ 1.02  1.00/ 1.71  1.00/ 2.60
//	debian12       held-out (bound)       1.000/0.986  1.00/ 1.01  1.00/ 1.00  1.00/ 1.00  1.00/ 1.00  1.00/ 1.02  must share 1%/15%
//	                        (oracle)      1.000/0.907
//	                        strata        0.990/0.805  1.06/ 1.59  1.16/ 1.40  1.02/ 1.05  1.06/ 1.28  1.07/ 1.70
//	                        popularity    0.809/0.495  1.95/ 3.24  1.37/ 1.66  1.03/ 1.07  1.18/ 1.56  1.62/ 3.32
//	                        dockertools   0.800/0.477  1.92/ 3.37  1.50/ 1.66  1.03/ 1.06  1.18/ 1.63  1.65/ 3.50
//	                        nix2container 0.806/0.478  1.86/ 3.34  1.50/ 1.66  1.03/ 1.07  1.19/ 1.64  1.64/ 3.49
//	                        nixery        0.530/0.495  1.12/ 1.12  1.95/ 1.95  1.06/ 1.06  1.35/ 1.47  2.56/ 2.98
//	                        strata-nodata 0.977/0.771  1.00/ 1.05  1.05/ 1.31  1.00/ 1.02  1.02/ 1.20  1.05/ 1.61
//	nixpkgs/2026   fresh    (bound)       1.000/0.993  1.00/ 1.00  1.00/ 1.00  1.00/ 1.00  1.00/ 1.00  1.00/ 1.02  must share 0%/4%
//	                        (oracle)      1.000/0.973
//	                        strata        0.980/0.920  1.12/ 1.36  1.01/ 1.13  1.00/ 1.00  1.04/ 1.13  1.05/ 1.16
//	                        popularity    0.969/0.597  2.18/ 8.51  1.00/ 1.76  1.00/ 1.01  1.01/ 1.66  1.07/ 2.68
//	                        dockertools   0.843/0.413  5.95/11.40  1.00/ 2.96  1.00/ 1.01  1.07/ 2.26  1.41/ 3.87
//	                        nix2container 0.832/0.413  6.18/11.40  1.00/ 2.98  1.00/ 1.01  1.09/ 2.26  1.44/ 3.88
//	                        nixery        0.555/0.491  1.15/ 7.20  1.25/ 1.25  1.00/ 1.00  1.36/ 1.47  1.73/ 2.21
//	                        strata-nodata 0.996/0.895  1.00/ 2.07  1.00/ 1.12  1.00/ 1.00  1.00/ 1.09  1.00/ 1.18
//	layered/2026   fresh    (bound)       1.000/0.983  1.00/ 1.00  1.00/ 1.00  1.00/ 1.00  1.00/ 1.00  1.00/ 1.00  must share 0%/5%
//	                        (oracle)      1.000/0.933
//	                        strata        0.999/0.842  1.00/ 2.72  1.00/ 1.07  1.00/ 1.01  1.00/ 2.31  1.00/ 2.31
//	                        popularity    1.000/0.630  1.00/45.93  1.00/ 1.37  1.00/ 1.02  1.00/15.23  1.00/15.23
//	                        dockertools   1.000/0.461  1.00/39.01  1.00/ 1.46  1.00/ 1.01  1.00/26.70  1.00/26.70
//	                        nix2container 1.000/0.479  1.00/37.01  1.00/ 1.45  1.00/ 1.00  1.00/26.19  1.00/26.19
//	                        nixery        0.306/0.306  5.84/ 5.84  1.27/ 1.27  1.02/ 1.02  5.53/ 5.53  5.53/ 5.53
//	                        strata-nodata 1.000/0.809  1.00/12.43  1.00/ 1.07  1.00/ 1.01  1.00/ 4.10  1.00/ 4.10
//	deep/2026      fresh    (bound)       1.000/0.973  1.00/ 1.00  1.00/ 1.00  1.00/ 1.00  1.00/ 1.00  1.00/ 1.05  must share 0%/11%
//	                        (oracle)      1.000/0.919
//	                        strata        0.999/0.839  1.00/ 1.73  1.00/ 1.80  1.00/ 1.12  1.02/ 1.48  1.01/ 2.01
//	                        popularity    1.000/0.618  1.00/14.39  1.00/ 2.98  1.00/ 1.07  1.00/ 2.94  1.00/ 5.91
//	                        dockertools   1.000/0.498  1.00/19.73  1.00/ 3.45  1.00/ 1.02  1.00/ 3.31  1.00/ 7.85
//	                        nix2container 1.000/0.495  1.00/19.75  1.00/ 3.45  1.00/ 1.03  1.00/ 3.34  1.00/ 7.90
//	                        nixery        0.397/0.396  3.50/ 3.50  1.90/ 1.90  1.12/ 1.12  2.65/ 2.65  6.22/ 6.22
//	                        strata-nodata 1.000/0.766  1.00/ 4.44  1.00/ 1.97  1.00/ 1.03  1.00/ 1.56  1.00/ 2.51
//	wide/2026      fresh    (bound)       1.000/0.946  1.00/ 1.00  1.00/ 1.00  1.00/ 1.00  1.00/ 1.00  1.00/ 1.17  must share 1%/17%
//	                        (oracle)      1.000/0.788
//	                        strata        0.990/0.720  1.00/ 8.51  1.03/ 1.85  1.00/ 1.03  1.09/ 4.54  1.24/10.72
//	                        popularity    0.764/0.413 20.53/176.35  2.32/ 5.97  1.00/ 1.06  3.76/16.68  8.66/45.82
//	                        dockertools   0.605/0.367 56.78/205.21  3.56/ 6.51  1.01/ 1.06  8.71/18.84 23.26/51.82
//	                        nix2container 0.604/0.365 57.42/208.26  3.63/ 6.54  1.01/ 1.06  8.79/18.70 23.74/51.52
//	                        nixery        0.384/0.378 45.43/45.43  2.76/ 3.05  1.07/ 1.07  4.50/ 5.06 11.92/13.48
//	                        strata-nodata 0.984/0.673  1.00/48.99  1.05/ 2.35  1.00/ 1.02  1.14/ 5.43  1.40/13.57
//	flat/2026      fresh    (bound)       1.000/0.846  1.00/ 1.00  1.00/ 1.00  1.00/ 1.00  1.00/ 1.00  1.00/ 1.15  must share 0%/38%
//	                        (oracle)      1.000/0.386
//	                        strata        0.985/0.363  1.00/ 2.75  1.01/ 4.01  1.01/ 1.02  1.01/ 5.36  1.03/14.54
//	                        popularity    0.967/0.291  1.00/36.81  1.55/ 7.91  1.00/ 1.02  1.21/ 8.37  1.73/24.10
//	                        dockertools   0.910/0.243  1.00/45.30  1.97/ 9.27  1.00/ 1.01  1.49/ 9.73  2.57/28.17
//	                        nix2container 0.912/0.239  1.00/47.46  1.99/ 9.50  1.00/ 1.01  1.48/ 9.91  2.51/28.71
//	                        nixery        0.216/0.210  6.50/ 6.50  2.87/ 2.87  1.02/ 1.02  6.40/ 6.62 18.56/19.19
//	                        strata-nodata 0.979/0.340  1.00/ 9.59  1.00/ 3.69  1.00/ 1.02  1.04/ 5.65  1.12/15.35
//	heavytail/2026 fresh    (bound)       1.000/0.998  1.00/ 1.00  1.00/ 1.00  1.00/ 1.00  1.00/ 1.00  1.00/ 1.00  must share 0%/3%
//	                        (oracle)      1.000/0.994
//	                        strata        1.000/0.957  1.00/ 7.89  1.00/ 1.07  1.00/ 1.01  1.02/ 1.26  1.02/ 1.30
//	                        popularity    1.000/0.855  1.00/91.65  1.00/ 1.55  1.00/ 1.06  1.00/ 9.99  1.00/10.71
//	                        dockertools   1.000/0.805  1.00/104.78  1.00/ 1.60  1.00/ 1.04  1.00/10.92  1.00/11.72
//	                        nix2container 1.000/0.833  1.00/102.83  1.00/ 1.63  1.00/ 1.01  1.00/10.73  1.00/11.51
//	                        nixery        0.772/0.771  4.85/ 4.85  1.18/ 1.18  1.09/ 1.09  2.37/ 2.37  2.54/ 2.54
//	                        strata-nodata 1.000/0.956  1.00/11.34  1.00/ 1.08  1.00/ 1.00  1.00/ 1.50  1.00/ 1.56
//	held-out goals strata misses (eff ≥ 0.95 / 0.70, mixed cost ≤ 1.2 / 2.0):
//	  flat/11 budget 20: efficiency 0.333 < 0.70 (any layering: ≤ 0.831; one that knows every image, simply: 0.371; 35% of the bytes must share a layer)
//	  flat/11 budget 20: mixed update cost 8.71 > 2.0 (any layering: ≥ 1.00 at the efficiency bound, ≥ 1.00 storing no more than strata: the bound does not rule the goal out)
//	  flat/2026 budget 20: efficiency 0.363 < 0.70 (any layering: ≤ 0.846; one that knows every image, simply: 0.386; 38% of the bytes must share a layer)
//	  flat/2026 budget 20: mixed update cost 5.36 > 2.0 (any layering: ≥ 1.00 at the efficiency bound, ≥ 1.00 storing no more than strata: the bound does not rule the goal out)
//	  layered/2026 budget 20: mixed update cost 2.31 > 2.0 (any layering: ≥ 1.00 at the efficiency bound, ≥ 1.00 storing no more than strata; ≤ 2.0 only with efficiency ≤ 0.992: the bound does not rule the goal out)
//	  wide/11 budget 20: efficiency 0.668 < 0.70 (any layering: ≤ 0.946; one that knows every image, simply: 0.746; 9% of the bytes must share a layer)
//	  wide/11 budget 20: mixed update cost 2.67 > 2.0 (any layering: ≥ 1.00 at the efficiency bound, ≥ 1.00 storing no more than strata: the bound does not rule the goal out)
//	  wide/2026 budget 20: mixed update cost 4.54 > 2.0 (any layering: ≥ 1.00 at the efficiency bound, ≥ 1.00 storing no more than strata: the bound does not rule the goal out)
//
// The goals (efficiency ≥ 0.95 at 100 and ≥ 0.70 at 20, mixed update cost
// ≤ 1.2 at 100 and ≤ 2.0 at 20, on every held-out corpus) are met at
// budget 100 on every held-out and fresh corpus, and at 20 on Debian 12,
// nixpkgs, deep and heavytail of both seeds and on layered/11. Missed at
// 20: efficiency on flat (both seeds) and wide/11; the mixed update cost
// on flat and wide (both seeds) and layered/2026.
//
// Efficiency on flat is the shape's limit: 35-38 % of the images' bytes
// cannot have layers of their own, and with flat popularity what is left
// of each image is a set no other image holds, stored once per image; a
// layering that knows every image reaches only 0.371 / 0.386 with the
// simple rule above (strata 0.333 / 0.363), though EfficiencyBound (0.831
// / 0.846) does not rule 0.70 out. wide/11 (0.668 against 0.746 for the
// layering that knows every image) is a weakness of the strategy; on
// wide/2026 it reaches 0.720.
//
// The missed update costs are not forced by any bound found: UpdateCostBound
// (EfficiencyBound applied to the images before and after the update
// together, whose changed and unchanged paths are in different classes,
// less the extra bytes the layering already stores before it) is 1.00 for
// the mixed update on those corpora, both for the best-sharing layering
// and for one storing as much as strata does. They come from strata's own
// choice: over budget, the paths without a layer of their own share one
// group per tier in each image, and an update touching one of them makes
// every image holding it fetch the whole group again; most of those bytes
// are the shared tier's (on layered/4, 25 MB of unchanged libraries
// fetched again for 13 MB changed). The weakness is not the held-out
// shapes' alone: on more seeds of the tuning shapes (2 to 5 of layered,
// deep and nixpkgs, used for tuning only; BenchmarkTuningStrata measures
// them with the tuning set) strata's mixed cost at 20 is
// 1.13-1.16 on nixpkgs but 1.15-4.07 on layered and deep (mean 1.78 over
// the 15 tuning corpora, efficiency 0.848 against 0.923 for the layering
// that knows every image). Tried there, none kept (each lowered neither
// the cost nor raised efficiency on all of them): folding a path into its
// immediate dominator in the package set (not only its only referrer);
// merging the blocks of one co-occurrence class (the same set of
// requestable roots above them: +0.02-0.03 efficiency on nixpkgs, -0.05 to
// -0.18 on layered and deep); a third tier for the most popular libraries
// or for libraries with large dependency cones (they change more often);
// a ranking term for a block's dependency cone; other weights and fold
// bounds; splitting each tier's blocks into buckets by a key the same in
// every image (an FNV hash of the package name without its version, or
// ranges of dependency height, cone size or popularity), one group per
// bucket: with one to eight more groups than the two tiers the mean mixed
// cost at 20 over the 15 tuning corpora went from 1.78 to 1.62-1.94 but
// efficiency at 20 from 0.848 to 0.769-0.847 (each bucket takes the slot
// of a layer of its own, and buckets, like the tiers, are almost never the
// same in two images; no split that kept efficiency within 0.005 got the
// mean below 1.77), and two name-hash buckets in place of the two tiers
// (0.847, mean 1.73) gained much only on layered/4 (4.07 to 2.49), lost
// on 6 of the 15 and raised the leaf update's mean cost from 2.05 to 2.35.
// strata beats every baseline's efficiency on every corpus at 20
// and is within 0.01 of the best at 100.
//
// For one strategy, budget and corpus:
//
//	strata layers --budget 20 --strategy dockertools --summary-only testdata/corpus/debian12.json
//
// TestTargets and TestEveryCorpus (package eval) fail if strata regresses.
//
// # Baselines
//
// "popularity" gives the N-1 most popular paths (by the popularity data, or
// by reference counts in the closure) a layer each and merges the rest; it
// is simple and predictable. "dockertools" ranks as nixpkgs'
// referencesByPopularity (closure-graph.py's popularity contest) and splits
// the same way; "nix2container" ranks by its popularity score (1 plus the
// scores of the referrers) and splits the same way; "nixery" follows
// Nixery's layers.go (dominator tree under a synthetic root with big or
// popular paths attached to the root, subtrees merged lowest rating
// popularity × size first, budget at most 94), without its dependence on
// cache state. They stay in this package, beside strata, because
// `strata serve` and `strata build` can use them (--strategy).
package layering
