#!/usr/bin/env bash
# locksim's benchmarks: `make bench`.
#
# 1. The checker beside jq on one generated 1,000,000-event history, in one
#    run: goal, the check without linearizability faster than
#    `jq -c . FILE >/dev/null`, with peak memory under twice the file size.
# 2. The Go benchmarks of every package (checker, simulator, backends beside
#    their raw clients; backend benchmarks start their own servers).
# 3. reports/bench.md: both, as tables, with the machine they ran on.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local

command -v jq >/dev/null || { apt-get update -qq && apt-get install -y -qq jq; }
TIME=/usr/bin/time
[ -x "$TIME" ] || { apt-get update -qq && apt-get install -y -qq time; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/locksim" ./cmd/locksim
"$tmp/locksim" gen-history --events 1000000 --out "$tmp/h.jsonl"
size=$(stat -c %s "$tmp/h.jsonl")
events=$(wc -l < "$tmp/h.jsonl")
echo "== checker vs jq: $events events, $((size / 1000000)) MB ($(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"

best() { sort -n | head -1; }
: > "$tmp/jq.times"; : > "$tmp/check.times"; : > "$tmp/check.rss"
for i in 1 2 3; do
	$TIME -f "%e" -o "$tmp/t" jq -c . "$tmp/h.jsonl" > /dev/null
	cat "$tmp/t" >> "$tmp/jq.times"
	$TIME -f "%e %M" -o "$tmp/t" "$tmp/locksim" check --linearizability=false "$tmp/h.jsonl" > /dev/null
	awk '{print $1}' "$tmp/t" >> "$tmp/check.times"
	awk '{print $2}' "$tmp/t" >> "$tmp/check.rss"
done
jq_s=$(best < "$tmp/jq.times")
check_s=$(best < "$tmp/check.times")
rss_kb=$(sort -n "$tmp/check.rss" | tail -1)
ratio=$(awk -v a="$check_s" -v b="$jq_s" 'BEGIN { printf "%.2f", a / b }')
mem_ratio=$(awk -v r="$rss_kb" -v s="$size" 'BEGIN { printf "%.2f", r * 1024 / s }')
echo "jq -c . FILE >/dev/null:                      ${jq_s} s (best of 3)"
echo "locksim check --linearizability=false FILE:   ${check_s} s (best of 3), peak RSS $((rss_kb / 1024)) MB"
echo "time ratio check/jq: $ratio (goal < 1); peak memory / file size: $mem_ratio (goal < 2)"
$TIME -f "%e %M" -o "$tmp/t" "$tmp/locksim" check --lin-timeout 120s "$tmp/h.jsonl" > /dev/null || true
echo "with linearizability (porcupine, not part of the goal): $(awk '{printf "%s s, peak RSS %d MB", $1, $2/1024}' "$tmp/t")"

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
	echo "## Checker beside jq ($events events, $((size / 1000000)) MB)"
	echo
	echo "| command | time (best of 3) | peak RSS |"
	echo "|---|---|---|"
	echo "| \`jq -c . FILE >/dev/null\` (baseline) | ${jq_s} s | |"
	echo "| \`locksim check --linearizability=false FILE\` | ${check_s} s | $((rss_kb / 1024)) MB |"
	echo
	echo "Check/jq time: $ratio (goal < 1); peak memory / file size: $mem_ratio (goal < 2)."
	echo
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
