package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vaultsink/vaultsink/internal/pipeclock"
)

// childRun is one finished child process, measured by wait4's rusage: its
// own CPU and peak RSS, nothing of the simulator's.
type childRun struct {
	WallSec   float64 `json:"wall_seconds"`
	UserSec   float64 `json:"user_seconds"`
	SysSec    float64 `json:"sys_seconds"`
	MaxRSSMiB float64 `json:"max_rss_mib"`
	// From a sync's JSON summary (runner.SummaryReport, pipeline): wall time decode
	// and encode were busy, and both at once.
	DecodeBusySec float64 `json:"decode_busy_seconds,omitempty"`
	EncodeBusySec float64 `json:"encode_busy_seconds,omitempty"`
	BothBusySec   float64 `json:"both_busy_seconds,omitempty"`
	stdout        string
	stderr        string
}

func (c childRun) CPUSec() float64 { return c.UserSec + c.SysSec }

// overlap is the share of the less busy stage's time during which the
// other was busy too.
func (c childRun) overlap() float64 {
	sec := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	return pipeclock.Totals{Decode: sec(c.DecodeBusySec), Encode: sec(c.EncodeBusySec), Both: sec(c.BothBusySec)}.Overlap()
}

// runChild runs bin with args to completion. exec.Cmd.Wait is wait4, and
// ProcessState.SysUsage is its rusage (ru_maxrss in KiB on Linux).
func runChild(env []string, bin string, args ...string) (childRun, error) {
	cmd := exec.Command(bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = append(os.Environ(), env...)
	t0 := time.Now()
	err := cmd.Run()
	wall := time.Since(t0)
	r := childRun{WallSec: wall.Seconds(), stdout: out.String(), stderr: errb.String()}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			r.UserSec = time.Duration(ru.Utime.Nano()).Seconds()
			r.SysSec = time.Duration(ru.Stime.Nano()).Seconds()
			r.MaxRSSMiB = float64(ru.Maxrss) / 1024
		}
	}
	if err != nil {
		return r, fmt.Errorf("%s %s: %w\nstdout: %s\nstderr: %s", filepath.Base(bin), strings.Join(args, " "), err, tail(r.stdout), tail(r.stderr))
	}
	return r, nil
}

func tail(s string) string {
	if len(s) > 2000 {
		return "…" + s[len(s)-2000:]
	}
	return s
}

// sim is a running bin/vaultsim.
type sim struct {
	cmd     *exec.Cmd
	base    string
	tokens  string
	logPath string
	logFile *os.File
	stopped bool
}

// startSim starts `vaultsim serve` on a free loopback port with one org.
func startSim(bin, dir string, args ...string) (*sim, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	s := &sim{tokens: filepath.Join(dir, "tokens"), logPath: filepath.Join(dir, "vaultsim.log")}
	lf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	s.logFile = lf
	full := append([]string{"serve", "--addr", "127.0.0.1:0", "--orgs", "1", "--seed", "42", "--tokens-dir", s.tokens}, args...)
	s.cmd = exec.Command(bin, full...)
	s.cmd.Stderr = lf
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start vaultsim: %w", err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("vaultsim did not print its URL: %w", err)
	}
	s.base = strings.TrimSpace(line)
	return s, nil
}

func (s *sim) token() (string, error) {
	b, err := os.ReadFile(filepath.Join(s.tokens, "org_1.token"))
	return strings.TrimSpace(string(b)), err
}

// cpu is the simulator's CPU time so far (from /proc, clock ticks).
func (s *sim) cpu() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / 100 // USER_HZ is 100 on Linux
}

func (s *sim) stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-done
		}
	}
	if s.logFile != nil {
		s.logFile.Close()
	}
}
