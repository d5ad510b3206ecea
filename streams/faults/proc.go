package faults

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// Environment variables of the suite (see the package documentation).
const (
	EnvEnable = "HOTELBUS_FAULTS"
	EnvBin    = "HOTELBUS_FAULTS_BIN"
	EnvState  = "HOTELBUS_FAULTS_STATE"
	EnvReport = "HOTELBUS_FAULTS_REPORT"
)

// Require skips t unless the suite is enabled (HOTELBUS_FAULTS=1). Once enabled, the rig's broker
// and redis-server are mandatory: t fails without them.
func Require(t *testing.T) {
	t.Helper()
	if os.Getenv(EnvEnable) != "1" {
		t.Skipf("fault-injection suite: opt-in, run it with `make faults` (sets %s=1 and brings up Kafka and Redis)", EnvEnable)
	}
	for _, env := range []string{streamstest.EnvBrokers, streamstest.EnvRedis} {
		if os.Getenv(env) == "" {
			t.Fatalf("faults: %s=1 needs the rig: %s is not set (run `make faults`)", EnvEnable, env)
		}
	}
}

// Binary returns the hotelbus binary: HOTELBUS_FAULTS_BIN, or one built into t's temp dir.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(EnvBin); p != "" {
		return p
	}
	out := filepath.Join(t.TempDir(), "hotelbus")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/hotelbus")
	cmd.Dir = streamstest.ModuleRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("faults: go build ./cmd/hotelbus: %v\n%s", err, b)
	}
	return out
}

// StateDir returns a fresh directory for t's private brokers: under HOTELBUS_FAULTS_STATE (which
// faults.sh removes at the end, whatever happened; a passing test removes its own), else in t's
// temp dir. Register its cleanup before the brokers' so that it runs after they stopped.
func StateDir(t testing.TB, name string) string {
	t.Helper()
	base := os.Getenv(EnvState)
	if base == "" {
		return t.TempDir()
	}
	dir, err := os.MkdirTemp(base, name+".")
	if err != nil {
		t.Fatalf("faults: state dir: %v", err)
	}
	t.Cleanup(func() {
		if !t.Failed() { // a failed test's broker logs stay for a look
			_ = os.RemoveAll(dir)
		}
	})
	return dir
}

var logDirs sync.Map // test name -> its log directory

// logDir returns the directory of t's process logs: under HOTELBUS_FAULTS_STATE, so that faults.sh
// can keep them when the run failed (removed when the test passed), else in t's temp dir.
func logDir(t testing.TB) string {
	if d, ok := logDirs.Load(t.Name()); ok {
		return d.(string)
	}
	d := StateDir(t, "logs-"+strings.ReplaceAll(t.Name(), "/", "_"))
	logDirs.Store(t.Name(), d)
	return d
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Proc is a child process the suite controls with signals: kill -9, SIGSTOP and SIGCONT, SIGTERM.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // Wait's result, set before done is closed
}

// Start runs bin with args as a child process named name, with env added to the test's
// environment and its output in a log file. It is killed when the test ends, and its log tail is
// shown when the test failed.
func Start(t testing.TB, name string, env []string, bin string, args ...string) *Proc {
	t.Helper()
	log := filepath.Join(logDir(t), name+".log")
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("faults: starting %s: %v", name, err)
	}
	p := &Proc{Name: name, cmd: cmd, log: log, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.Exited() {
			_ = syscall.Kill(p.Pid(), syscall.SIGCONT)
			_ = syscall.Kill(p.Pid(), syscall.SIGKILL)
			<-p.done
		}
		if t.Failed() {
			t.Logf("--- %s (pid %d): %s; log tail:\n%s", name, p.Pid(), p.state(), p.Tail(30))
		}
	})
	return p
}

// Pid returns the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *Proc) state() string {
	if !p.Exited() {
		return "running"
	}
	if p.err == nil {
		return "exited 0"
	}
	return p.err.Error()
}

// Kill9 sends SIGKILL and waits until the process is gone.
func (p *Proc) Kill9(t testing.TB) {
	t.Helper()
	if err := syscall.Kill(p.Pid(), syscall.SIGKILL); err != nil && !p.Exited() {
		t.Fatalf("faults: kill -9 %s: %v", p.Name, err)
	}
	<-p.done
}

// Signal sends sig (SIGSTOP, SIGCONT) to the running process.
func (p *Proc) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if p.Exited() {
		t.Fatalf("faults: %s exited before %s: %s\n%s", p.Name, sig, p.state(), p.Tail(30))
	}
	if err := syscall.Kill(p.Pid(), sig); err != nil {
		t.Fatalf("faults: %s to %s: %v", sig, p.Name, err)
	}
}

// Terminate sends SIGTERM and waits up to timeout for the process to exit; it returns nil when it
// exited with status 0. A process that does not exit in time is killed and an error returned.
func (p *Proc) Terminate(timeout time.Duration) error {
	if p.Exited() {
		return fmt.Errorf("faults: %s had already exited: %s", p.Name, p.state())
	}
	_ = syscall.Kill(p.Pid(), syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("faults: %s after SIGTERM: %w", p.Name, p.err)
		}
		return nil
	case <-time.After(timeout):
		_ = syscall.Kill(p.Pid(), syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("faults: %s did not exit within %s of SIGTERM", p.Name, timeout)
	}
}

// CPU returns the user and system CPU time the process used; zero while it runs.
func (p *Proc) CPU() time.Duration {
	if !p.Exited() {
		return 0
	}
	return p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()
}

// Tail returns the last n lines of the process's output.
func (p *Proc) Tail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// Log returns the process's whole output so far.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// killPid sends SIGKILL to a process that is not a child of the test (a broker started by a rig
// script) and waits until it is gone or a zombie.
func killPid(pid int) error {
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("faults: kill -9 %d: %w", pid, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		// /proc/<pid>/stat: "pid (comm) S ...": the state follows the last ')'.
		if s := string(b); err == nil {
			if i := strings.LastIndexByte(s, ')'); i > 0 && i+2 < len(s) && s[i+2] == 'Z' {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("faults: process %d still alive 30s after kill -9", pid)
}
