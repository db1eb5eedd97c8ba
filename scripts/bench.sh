#!/usr/bin/env bash
# locksim's benchmarks: `make bench`; `scripts/bench.sh checker` (or
# `make bench-checker`) runs part 1 alone and replaces only its section of
# reports/bench.md.
#
# 1. The checker beside jq on one generated 1,000,000-event history, in one
#    run (best of 3 each): goals, the default check (linearizability on) at
#    most 0.5x the time of `jq -c . FILE >/dev/null` with peak memory at most
#    the file's size; `--linearizability=false` at most 0.25x jq.
# 2. The Go benchmarks of every package (checker, simulator, backends beside
#    their raw clients; backend benchmarks start their own servers).
# 3. reports/bench.md: both, as tables, with the machine they ran on.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
only=${1:-all}
case $only in
all) how="make bench" ;;
checker) how="scripts/bench.sh checker" ;;
*) echo "usage: scripts/bench.sh [checker]" >&2; exit 2 ;;
esac

command -v jq >/dev/null || { apt-get update -qq && apt-get install -y -qq jq; }
TIME=/usr/bin/time
[ -x "$TIME" ] || { apt-get update -qq && apt-get install -y -qq time; }

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/locksim" ./cmd/locksim
"$tmp/locksim" gen-history --events 1000000 --out "$tmp/h.jsonl"
size=$(stat -c %s "$tmp/h.jsonl")
events=$(wc -l < "$tmp/h.jsonl")
echo "== checker vs jq: $events events, $((size / 1000000)) MB ($(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"

best() { sort -n | head -1; }
# The three interleaved, so that a load on the machine weighs on all alike
# (tail -1: time(1) writes a line of its own before the figures when the
# command exits non-zero).
: > "$tmp/jq.times"; : > "$tmp/nolin.times"; : > "$tmp/nolin.rss"; : > "$tmp/lin.times"; : > "$tmp/lin.rss"
for _ in 1 2 3; do
	$TIME -f "%e %M" -o "$tmp/t" jq -c . "$tmp/h.jsonl" > /dev/null
	tail -1 "$tmp/t" | awk '{print $1}' >> "$tmp/jq.times"
	$TIME -f "%e %M" -o "$tmp/t" "$tmp/locksim" check --linearizability=false "$tmp/h.jsonl" > /dev/null
	tail -1 "$tmp/t" | awk '{print $1}' >> "$tmp/nolin.times"
	tail -1 "$tmp/t" | awk '{print $2}' >> "$tmp/nolin.rss"
	$TIME -f "%e %M" -o "$tmp/t" "$tmp/locksim" check "$tmp/h.jsonl" > "$tmp/lin.out" || true
	tail -1 "$tmp/t" | awk '{print $1}' >> "$tmp/lin.times"
	tail -1 "$tmp/t" | awk '{print $2}' >> "$tmp/lin.rss"
done
jq_s=$(best < "$tmp/jq.times")
nolin_s=$(best < "$tmp/nolin.times")
nolin_kb=$(sort -n "$tmp/nolin.rss" | tail -1)
lin_s=$(best < "$tmp/lin.times")
lin_kb=$(sort -n "$tmp/lin.rss" | tail -1)
lin_verdict=$(tail -1 "$tmp/lin.out")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
mem() { awk -v r="$1" -v s="$size" 'BEGIN { printf "%.2f", r * 1024 / s }'; }
met() { awk -v a="$1" -v b="$2" 'BEGIN { print (a <= b ? "met" : "NOT met") }'; }
nolin_ratio=$(ratio "$nolin_s" "$jq_s")
lin_ratio=$(ratio "$lin_s" "$jq_s")
nolin_mem=$(mem "$nolin_kb")
lin_mem=$(mem "$lin_kb")
echo "jq -c . FILE >/dev/null:                      ${jq_s} s (best of 3)"
echo "locksim check FILE (linearizability on):      ${lin_s} s (best of 3), peak RSS $((lin_kb / 1024)) MB: $lin_verdict"
echo "locksim check --linearizability=false FILE:   ${nolin_s} s (best of 3), peak RSS $((nolin_kb / 1024)) MB"
echo "default check/jq: $lin_ratio (goal <= 0.5, $(met "$lin_ratio" 0.5)); peak memory / file size: $lin_mem (goal <= 1, $(met "$lin_mem" 1))"
echo "--linearizability=false check/jq: $nolin_ratio (goal <= 0.25, $(met "$nolin_ratio" 0.25)); peak memory / file size: $nolin_mem"
load=$(cut -d' ' -f1-3 /proc/loadavg)
{
	echo "## Checker beside jq ($events events, $((size / 1000000)) MB)"
	echo
	echo "Measured $(date -u +%Y-%m-%d) by \`$how\`"
	echo "(load average before: $load_before; after: $load)."
	echo
	echo "| command | time (best of 3) | peak RSS |"
	echo "|---|---|---|"
	echo "| \`jq -c . FILE >/dev/null\` (baseline) | ${jq_s} s | |"
	echo "| \`locksim check FILE\` (linearizability on) | ${lin_s} s | $((lin_kb / 1024)) MB |"
	echo "| \`locksim check --linearizability=false FILE\` | ${nolin_s} s | $((nolin_kb / 1024)) MB |"
	echo
	echo "Default check/jq time: $lin_ratio (goal <= 0.5: $(met "$lin_ratio" 0.5)); its peak memory / file size: $lin_mem (goal <= 1: $(met "$lin_mem" 1))."
	echo "Without linearizability: check/jq time $nolin_ratio (goal <= 0.25: $(met "$nolin_ratio" 0.25)); peak memory / file size $nolin_mem."
	echo
} > "$tmp/checker.md"

if [ "$only" = checker ]; then
	# Replace the checker's section of reports/bench.md, keep the rest.
	mkdir -p reports
	if [ -f reports/bench.md ] && grep -q '^## Checker beside jq' reports/bench.md; then
		awk -v sec="$tmp/checker.md" '
			/^## Checker beside jq/ { while ((getline l < sec) > 0) print l; skip = 1; next }
			skip && /^## / { skip = 0 }
			!skip' reports/bench.md > "$tmp/bench.md"
	else
		{ echo "# locksim benchmarks"; echo; cat "$tmp/checker.md"; } > "$tmp/bench.md"
	fi
	cp "$tmp/bench.md" reports/bench.md
	echo "wrote the checker section of reports/bench.md"
	exit 0
fi

echo
echo "== go test -bench"
go test -run '^$' -bench . -benchmem -timeout 30m ./... | tee "$tmp/bench.txt"

# reports/bench.md: the figures above, each beside its baseline, with the
# machine they were measured on.
mkdir -p reports
{
	echo "# locksim benchmarks"
	echo
	echo "Written by \`make bench\` (scripts/bench.sh) on $(date -u +%Y-%m-%d):"
	echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores,"
	echo "$(awk '/MemTotal/ {printf "%.1f GB", $2/1048576}' /proc/meminfo) RAM, $(uname -sr), $(go version | cut -d' ' -f3)."
	echo
	cat "$tmp/checker.md"
	echo "## Go benchmarks"
	echo
	echo "Simulator: seeds/s per scenario and backend (sim). Lock backends: each"
	echo "locksim backend beside its raw client in the same package (locks/...)."
	awk '
		/^pkg: / { pkg = $2; sub(/^github.com\/locksim\/locksim\//, "", pkg); next }
		/^Benchmark/ {
			if (pkg != last) { printf "\n### %s\n\n| benchmark | runs | figures |\n|---|---|---|\n", pkg; last = pkg }
			figs = ""
			for (i = 3; i < NF; i += 2) figs = figs (figs == "" ? "" : ", ") $i " " $(i + 1)
			printf "| %s | %s | %s |\n", $1, $2, figs
		}' "$tmp/bench.txt"
} > reports/bench.md
echo "wrote reports/bench.md"
