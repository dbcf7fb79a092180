package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// binaries are the two servers, built for this comparison.
type binaries struct {
	strataBroker string
	natsServer   string
}

// build compiles both servers into dir, the same way (CGO off, -trimpath,
// as the Makefile builds strata-broker). strata-broker is built inside
// the repository, so with the product's own go.mod, not this module's;
// nats-server is this module's go.mod tool, at its pinned version.
func build(ctx context.Context, repo, dir string) (binaries, error) {
	b := binaries{
		strataBroker: filepath.Join(dir, "strata-broker"),
		natsServer:   filepath.Join(dir, "nats-server"),
	}
	gomod, err := os.ReadFile(filepath.Join(repo, "go.mod"))
	if err != nil || !bytes.HasPrefix(gomod, []byte("module github.com/stratalog/strata\n")) {
		return b, fmt.Errorf("-repo %s is not the Strata repository (no go.mod of github.com/stratalog/strata): run from bench/compare or set -repo", repo)
	}
	here, err := os.Getwd()
	if err != nil {
		return b, err
	}
	if err := goBuild(ctx, repo, b.strataBroker, "./cmd/broker"); err != nil {
		return b, err
	}
	if err := goBuild(ctx, here, b.natsServer, "github.com/nats-io/nats-server/v2"); err != nil {
		return b, err
	}
	return b, nil
}

func goBuild(ctx context.Context, dir, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s (in %s): %v\n%s", pkg, dir, err, strings.TrimSpace(string(b)))
	}
	return nil
}
