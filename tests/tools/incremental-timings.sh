#!/usr/bin/env bash
# Incremental rebuild figures of ARCHITECTURE.md "Build": in a throw-away copy of the tree
# (`git archive HEAD | tar -x -C DIR`), after one warm `cargo build -p gateway --tests`, edits
# one file at a time and times `cargo build --timings -p gateway --tests --locked`, 3 rounds,
# the edits alternated. Prints the wall time per build; each build's cargo timing report is
# copied to OUT/<round>-<edit>.html (unit times in its UNIT_DATA).
# Usage: tests/tools/incremental-timings.sh COPY_DIR TARGET_DIR OUT_DIR
# Never run it on a working tree: it edits the sources.
set -euo pipefail
src=$1 target=$2 out=$3
mkdir -p "$out"
cd "$src"
export CARGO_TARGET_DIR=$target
cargo build -p gateway --tests --locked >/dev/null 2>&1
for round in 1 2 3; do
  for edit in leaf-comment central-comment leaf-body central-item; do
    case $edit in
      leaf-comment) echo "// timing touch $round" >>gateway/src/vision/plate.rs ;;
      central-comment) echo "// timing touch $round" >>gateway/src/reading.rs ;;
      leaf-body)
        sed -i "s|let ratio = w / h.max(1.0[^;]*;|let ratio = w / h.max(1.0 + 0.0 * $round.0);|" \
          gateway/src/vision/plate.rs
        grep -q "0.0 \* $round.0" gateway/src/vision/plate.rs ;;
      central-item)
        sed -i "s|^impl Value {|impl Value {\n    /// Timing probe $round.\n    pub fn timing_probe_$round(\&self) -> bool {\n        false\n    }|" \
          gateway/src/reading.rs
        grep -q "timing_probe_$round" gateway/src/reading.rs ;;
    esac
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    start=$(date +%s.%N)
    cargo build --timings -p gateway --tests --locked >"$out/$round-$edit.log" 2>&1
    end=$(date +%s.%N)
    cp "$target/cargo-timings/cargo-timing.html" "$out/$round-$edit.html"
    echo "round=$round edit=$edit wall=$(echo "$end - $start" | bc) load_before=$load"
  done
done
