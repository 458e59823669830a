package nixsnapshotter

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestContainerdRunsStrataImage runs HOST/nix-snapshotter/shell/hello as a
// node does: containerd 2.0.5 with nix-snapshotter v0.4.0's daemon as its
// snapshotter (both built from this module's tool requirements), the
// daemon's Nix substituting from strata serve. ctr pulls the image and runs
// it: hello prints its greeting, and the container sees the closure as
// read-only bind mounts, not unpacked files.
//
// Debian 12's containerd 1.6 cannot do this: its ctr pull does not hand
// layer annotations to the snapshotter, and its mount code ignores the
// mount targets nix-snapshotter returns (the last read-only bind mount
// covers the root file system), so the test builds containerd 2.
func TestContainerdRunsStrataImage(t *testing.T) {
	need(t, "nix-store")
	need(t, "runc")
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/",
		"github.com/containerd/containerd/v2/cmd/containerd",
		"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2",
		"github.com/containerd/containerd/v2/cmd/ctr",
		"github.com/pdtpartners/nix-snapshotter")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building containerd and nix-snapshotter: %v\n%s", err, out)
	}

	keyDir := t.TempDir()
	secret, public := filepath.Join(keyDir, "secret.key"), filepath.Join(keyDir, "public.key")
	mustRun(t, nil, "nix-store", "--generate-binary-cache-key", "strata-containerd-1", secret, public)
	pub, err := os.ReadFile(public)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, secret)

	// Unix socket paths must stay short.
	dir, err := os.MkdirTemp("", "ns")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	nsSock, ctdSock := filepath.Join(dir, "ns.sock"), filepath.Join(dir, "ctd.sock")
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	nsConf := write("nix-snapshotter.toml", fmt.Sprintf("address = %q\nroot = %q\n[image_service]\nenable = false\n", nsSock, filepath.Join(dir, "ns")))
	ctdConf := write("containerd.toml", fmt.Sprintf(`version = 3
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime"]
[grpc]
  address = %q
[proxy_plugins.nix]
  type = "snapshot"
  address = %q
[plugins."io.containerd.transfer.v1.local"]
  [[plugins."io.containerd.transfer.v1.local".unpack_config]]
    platform = "linux/amd64"
    snapshotter = "nix"
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), ctdSock, nsSock))

	path := "PATH=" + bin + ":" + os.Getenv("PATH")
	nixConf := "NIX_CONFIG=substituters = http://" + addr + "\ntrusted-public-keys = " + strings.TrimSpace(string(pub)) + "\nrequire-sigs = true\n" + rootNixConf()
	daemon(t, "nix-snapshotter", []string{path, nixConf, "XDG_CACHE_HOME=" + filepath.Join(dir, "xdg")}, nsSock,
		filepath.Join(bin, "nix-snapshotter"), "--config", nsConf)
	daemon(t, "containerd", []string{path}, ctdSock, filepath.Join(bin, "containerd"), "--config", ctdConf)

	ctr := func(args ...string) string {
		t.Helper()
		return mustRun(t, []string{path}, filepath.Join(bin, "ctr"), append([]string{"--address", ctdSock}, args...)...)
	}
	ref := addr + "/nix-snapshotter/shell/hello:latest"
	ctr("images", "pull", "--plain-http", "--snapshotter", "nix", ref)
	if out := ctr("run", "--snapshotter", "nix", "--rm", ref, "hello-1", "hello"); !strings.Contains(out, "Hello, world!") {
		t.Fatalf("hello in the container printed %q", out)
	}
	mounts := ctr("run", "--snapshotter", "nix", "--rm", ref, "hello-2", "cat", "/proc/mounts")
	for _, name := range []string{"-hello-", "-busybox-"} {
		re := regexp.MustCompile(`(?m)^\S+ (/nix/store/[0-9a-z]{32}` + name + `\S*) \S+ ro[, ]`)
		if !re.MatchString(mounts) {
			t.Errorf("no read-only bind mount of a %s store path in the container:\n%s", strings.Trim(name, "-"), mounts)
		}
	}
}

// daemon starts a long-running process and waits for its socket; it is
// stopped when the test ends.
func daemon(t *testing.T, name string, env []string, sock string, cmdline ...string) {
	t.Helper()
	cmd := exec.Command(cmdline[0], cmdline[1:]...)
	cmd.Env = append(os.Environ(), env...)
	log := &logBuf{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", name, log.String())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		if _, err := os.Stat(sock); err == nil {
			return
		}
		select {
		case <-done:
			t.Fatalf("%s exited: %s", name, log.String())
		case <-ctx.Done():
			t.Fatalf("%s did not listen on %s: %s", name, sock, log.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
