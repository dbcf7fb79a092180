package main

import (
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// stopWithGoRun makes the broker get SIGTERM (a clean shutdown) when the
// process that started it dies, if that process is `go run`. `go run`
// starts the built binary as a child and, killed itself (kill PID, an IDE's
// stop button), leaves the child running and holding its ports: the
// README's first command must not leave a broker behind. A broker started
// any other way (a shell, systemd, a container) is not tied to its parent.
func stopWithGoRun() {
	ppid := os.Getppid()
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(ppid) + "/comm")
	if err != nil || strings.TrimSpace(string(comm)) != "go" {
		return
	}
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0, 0, 0); err != nil {
		return
	}
	if os.Getppid() != ppid {
		// go run died before the request took: nobody will send it.
		_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
	}
}
