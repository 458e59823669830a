package nix

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// NixDB is an initialised Nix database for an image: the files of
// /nix/var/nix/db.
type NixDB struct {
	// SQLite is db.sqlite, listing exactly the given paths as valid.
	SQLite []byte
	// Schema is the content of the schema file (the schema version).
	Schema []byte
}

// Database builds a Nix database that registers exactly paths (a closed
// set of valid store paths) with their NAR hashes, sizes, references and
// derivers, the way a Nix installation inside the image would see them.
// It runs `nix-store --dump-db PATHS | NIX_STATE_DIR=tmp nix-store
// --load-db`, so the database has Nix's own schema, then sets every
// registration time to mtime with sqlite3 and compacts the file, so that
// the same paths always give the same bytes. It needs sqlite3 on PATH.
func (d *Driver) Database(ctx context.Context, paths []string, mtime time.Time) (*NixDB, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("nix: a Nix database needs at least one store path")
	}
	sqlite, err := exec.LookPath("sqlite3")
	if err != nil {
		return nil, fmt.Errorf("nix: the image's Nix database needs sqlite3 (apt-get install sqlite3, or run scripts/deps.sh): %w", err)
	}
	args := append([]string{"--dump-db", "--"}, paths...)
	dump, _, err := d.run(ctx, "nix-store", args, "")
	if err != nil {
		return nil, fmt.Errorf("nix: dump the database of the image's closure: %w", err)
	}
	tmp, err := os.MkdirTemp("", "strata-nixdb-")
	if err != nil {
		return nil, fmt.Errorf("nix: nix database: %w", err)
	}
	defer os.RemoveAll(tmp)
	state := filepath.Join(tmp, "state")
	env := []string{"NIX_STATE_DIR=" + state, "NIX_LOG_DIR=" + filepath.Join(tmp, "log")}
	if err := d.runEnv(ctx, "nix-store", []string{"--load-db"}, env, dump); err != nil {
		return nil, fmt.Errorf("nix: load the image's database: %w", err)
	}
	db := filepath.Join(state, "db", "db.sqlite")
	sql := fmt.Sprintf("UPDATE ValidPaths SET registrationTime = %d;\nPRAGMA journal_mode=DELETE;\nVACUUM;\n", mtime.Unix())
	cmd := exec.CommandContext(ctx, sqlite, "-batch", db)
	cmd.Stdin = strings.NewReader(sql)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("nix: normalise the image's database with sqlite3: %w: %s", err, bytes.TrimSpace(out))
	}
	raw, err := os.ReadFile(db)
	if err != nil {
		return nil, fmt.Errorf("nix: nix database: %w", err)
	}
	schema, err := os.ReadFile(filepath.Join(state, "db", "schema"))
	if err != nil {
		return nil, fmt.Errorf("nix: nix database schema: %w", err)
	}
	return &NixDB{SQLite: raw, Schema: schema}, nil
}

// runEnv runs a Nix command with extra environment variables and stdin,
// in its own process group, killed when ctx ends or strata dies.
func (d *Driver) runEnv(ctx context.Context, name string, args, extraEnv []string, stdin []byte) error {
	path, err := exec.LookPath(name)
	if err != nil {
		return fmt.Errorf("%s not found on PATH (install Nix 2.8 or later; on Debian run scripts/deps.sh): %w", name, err)
	}
	cmd := exec.CommandContext(ctx, path, args...)
	env := d.env()
	for _, e := range extraEnv {
		k, _, _ := strings.Cut(e, "=")
		for i := 0; i < len(env); i++ {
			if strings.HasPrefix(env[i], k+"=") {
				env = append(env[:i], env[i+1:]...)
				i--
			}
		}
		env = append(env, e)
	}
	cmd.Env = env
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		tail := stderr.String()
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(tail))
	}
	return nil
}
