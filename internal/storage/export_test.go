package storage

import "os"

// StagedFileForTest exposes stagedFile to the external tests.
type StagedFileForTest = stagedFile

// SetWrapTemp makes s wrap every new staging file with wrap (to simulate a
// full disk).
func SetWrapTemp(s *FS, wrap func(*os.File) StagedFileForTest) {
	s.createTemp = func(dir string) (stagedFile, error) {
		f, err := os.CreateTemp(dir, "w-*")
		if err != nil {
			return nil, err
		}
		return wrap(f), nil
	}
}
