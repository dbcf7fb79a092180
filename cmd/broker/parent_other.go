//go:build !linux

package main

// stopWithGoRun is Linux only (prctl PR_SET_PDEATHSIG); see parent_linux.go.
func stopWithGoRun() {}
