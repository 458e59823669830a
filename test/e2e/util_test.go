package e2e

import "os"

func osMkdirTemp() (string, error) { return os.MkdirTemp("", "strata-e2e-shared-") }

// atExit holds the clean-ups of resources shared across tests; TestMain runs
// them after the last test.
var atExit []func()
