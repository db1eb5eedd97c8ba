# locksim's build. Everything a fresh machine needs is installed by these
# targets (Go modules, Debian packages through scripts/setup-debian.sh).

GO          ?= go
BIN         := $(CURDIR)/bin
STATICCHECK := $(BIN)/staticcheck
STATICCHECK_VERSION := v0.8.2
# Bounded fuzzing per target in `make test`, as a count of executions
# (about 10 s each here): a -fuzztime given as a duration races Go 1.26's
# fuzz coordinator at its deadline and can fail with "context deadline
# exceeded" and no failing input on a busy machine (golang/go#75804, fixed
# in Go 1.27); a count has no deadline to race.
FUZZ_READER ?= 200000x
FUZZ_PARSE  ?= 100000x

export GOTOOLCHAIN := local

.PHONY: all build test unit fuzz bench bench-checker lint vet fmt-check setup clean demo consul compare compare-real report agree agree-short install-check

all: build

build:
	$(GO) build -o $(BIN)/locksim ./cmd/locksim

## setup: install what the tests need on a fresh Debian machine (root).
setup:
	bash scripts/setup-debian.sh

## test: the whole suite: lint, unit and real-server tests, short fuzzing.
test: setup lint unit fuzz

unit: consul
	$(GO) test -count=1 -timeout 20m ./...

## install-check: `go install ./cmd/locksim` from this checkout with an
## empty module cache (every module fetched anew), as a user's first install
## is; the temporary module cache and GOBIN are removed afterwards.
install-check:
	@mc=$$(mktemp -d) && bin=$$(mktemp -d) && trap 'rm -rf "$$mc" "$$bin"' EXIT && \
	GOMODCACHE=$$mc GOFLAGS=-modcacherw GOBIN=$$bin $(GO) install ./cmd/locksim && \
	$$bin/locksim help >/dev/null && \
	echo "install-check: go install ./cmd/locksim works with an empty module cache"

## consul: build the Consul server binary the tests start (bin/consul) from
## the separate module tools/consul, so locksim's go.mod stays lean.
consul:
	cd tools/consul && $(GO) build -o $(BIN)/consul github.com/hashicorp/consul

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $(FUZZ_READER) ./history/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZ_PARSE) ./scenario/

bench: build
	bash scripts/bench.sh

bench-checker:
	bash scripts/bench.sh checker

lint: vet fmt-check $(STATICCHECK)
	$(STATICCHECK) ./...

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

$(STATICCHECK):
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

## compare: every backend through every scenario in the simulator, seeds
## as reports/baseline.json says; writes reports/ and fails naming each cell
## whose verdict differs from the baseline.
compare: build
	$(BIN)/locksim compare --sim --out reports --check-baseline

## compare-real: the short real catalogue (the cells whose verdict is
## stable) on real servers, checked against the baseline's real section.
REAL_CATALOGUE ?= --scenarios scenarios/control.yaml,scenarios/holder-paused-past-lease.yaml --backends etcd,postgres
compare-real: build
	$(BIN)/locksim compare --real $(REAL_CATALOGUE) --out reports/real --check-baseline

## agree: the simulator's verdicts beside real runs of the whole catalogue,
## AGREE_RUNS real runs per cell (seeds 1..R): per kind, the simulator's
## share of seeds must lie within the 95% (Wilson) interval of the real
## share of runs. About 20 s per real run: 60 cells x 5 runs is about
## 100 minutes.
AGREE_RUNS ?= 5
agree: build
	$(BIN)/locksim compare --sim --seeds 500 --out reports/agree/sim --no-progress; test $$? -le 1
	$(BIN)/locksim compare --real --runs $(AGREE_RUNS) --out reports/agree/real --no-progress; test $$? -le 1
	$(BIN)/locksim agree reports/agree/sim reports/agree/real > reports/agree/agreement.txt; s=$$?; cat reports/agree/agreement.txt; exit $$s

## agree-short: the same on a few cells whose verdict the timing work
## changed or that decide a race (about 4 minutes), run by CI.
AGREE_SHORT ?= --scenarios scenarios/control.yaml,scenarios/holder-cut-off.yaml --backends etcd,postgres
AGREE_SHORT_RUNS ?= 3
agree-short: build
	$(BIN)/locksim compare --sim --seeds 500 $(AGREE_SHORT) --out reports/agree-short/sim --no-progress; test $$? -le 1
	$(BIN)/locksim compare --real --runs $(AGREE_SHORT_RUNS) $(AGREE_SHORT) --out reports/agree-short/real --no-progress; test $$? -le 1
	$(BIN)/locksim agree reports/agree-short/sim reports/agree-short/real > reports/agree-short/agreement.txt; s=$$?; cat reports/agree-short/agreement.txt; exit $$s

## report: render reports/ again from its saved comparison.
report: build
	$(BIN)/locksim report reports

## demo: locksim's main job: the holder-paused-past-lease scenario on a
## three-member etcd cluster that locksim starts itself (exit status 1: it
## finds the violations it is meant to find).
demo: build
	$(BIN)/locksim run --backend etcd --out runs scenarios/holder-paused-past-lease.yaml; test $$? -le 1

clean:
	rm -rf $(BIN)
