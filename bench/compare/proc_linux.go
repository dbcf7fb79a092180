package main

import "syscall"

// childAttr puts a child in its own process group, so that a Ctrl-C at
// the terminal reaches only this program, which then stops the children
// in order; and asks the kernel to send the child SIGTERM should this
// program die without stopping it (killed with SIGKILL, or a second
// Ctrl-C), so that no broker is left holding its ports.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
