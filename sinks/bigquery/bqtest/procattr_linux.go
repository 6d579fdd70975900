package bqtest

import "syscall"

// bridgeProcAttr has the kernel stop the bridge (which then stops the
// analyzer server it started) if the test process dies without closing it.
func bridgeProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
