//go:build !linux

package bqtest

import "syscall"

// bridgeProcAttr: the bridge exits when its stdin closes.
func bridgeProcAttr() *syscall.SysProcAttr { return nil }
