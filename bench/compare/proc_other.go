//go:build !linux

package main

import "syscall"

// childAttr leaves a child in this program's process group elsewhere than
// on Linux (see proc_linux.go): a Ctrl-C at the terminal reaches the
// children too, which shut down cleanly on it.
func childAttr() *syscall.SysProcAttr { return nil }
