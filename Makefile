# Strata. `make` builds bin/strata-broker and bin/strata.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# The broker's version is pkg/broker.Version (cluster metadata reports it);
# the CLI's is its main.version (cmd/client/version.go).
LDFLAGS := -s -w -X github.com/stratalog/strata/pkg/broker.Version=$(VERSION)

PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.5.1

.PHONY: all build test race fuzz bench bench-compare proto tools clean chaos

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/strata-broker ./cmd/broker
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS) -X main.version=$(VERSION)' -o bin/strata ./cmd/client

test:
	$(GO) test -race -p 1 -timeout 60m ./...

fuzz:
	FUZZEXECS=3000000 bash .ci/fuzz

# The fault suite (test/chaos) for as long as asked: make chaos SECONDS=3600
# [SEED=n] [OUT=dir]. Without SECONDS it runs CI's fault counts. Every run
# prints its seed; SEED replays the schedule.
SECONDS ?= 0
SEED    ?= 0
OUT     ?=
chaos:
	CHAOS_SECONDS=$(SECONDS) CHAOS_SEED=$(SEED) CHAOS_OUT=$(OUT) $(GO) test -v -count=1 -timeout=$$(( $(SECONDS) + 3600 ))s ./test/chaos

bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./pkg/...

# Strata against NATS JetStream, side by side (bench/compare, a Go module of
# its own, so the product's go.mod gains nothing): both built from source and
# run as child processes on loopback, 1 node and 3 nodes RF=3. A few minutes
# on 2 cores; more with e.g. make bench-compare COMPARE_FLAGS='-runs 5 -records 200000'.
# See docs/operations.md, "Benchmarks against NATS JetStream".
COMPARE_FLAGS ?=
bench-compare:
	cd bench/compare && $(GO) run . $(COMPARE_FLAGS)

# Regenerate api/v1 from strata.proto (needs protoc: apt-get install protobuf-compiler).
proto: tools
	cd api/v1 && PATH="$$PATH:$$($(GO) env GOPATH)/bin" $(GO) generate .

tools:
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

clean:
	rm -rf bin

# A three-broker cluster in Docker (docker-compose.yml). The image is built
# FROM scratch around the static binaries, so build them first. Where only
# Compose v2 is installed: make cluster-up COMPOSE='docker compose'.
COMPOSE ?= docker-compose

.PHONY: cluster-up cluster-down
cluster-up: build
	$(COMPOSE) up -d --build

cluster-down:
	$(COMPOSE) down -v
