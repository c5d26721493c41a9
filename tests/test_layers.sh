#!/usr/bin/env bash
# test_layers.sh — the folder layering rule of docs/design.md "Layout": a file may include its own
# folder and the folders above it, never one below. Fails naming every include that breaks it.
set -u
cd "$(dirname "$0")/.." || exit 1
declare -A allowed=(
  [base]="base"
  [tokenizer]="base tokenizer"
  [data]="base tokenizer data"
  [model]="base model"
  [blocks]="base model blocks"
  [checkpoint]="base tokenizer model checkpoint"
  [cli]="base tokenizer data model blocks checkpoint cli"
  [dist]="base model dist"
)
bad=0; checked=0
for dir in "${!allowed[@]}"; do
  for f in "$dir"/*.c "$dir"/*.h; do
    [ -f "$f" ] || continue
    while IFS= read -r inc; do
      checked=$((checked + 1))
      top=${inc%%/*}
      case " ${allowed[$dir]} " in *" $top "*) ;; *) echo "$f includes \"$inc\": $dir/ may include only ${allowed[$dir]}"; bad=$((bad + 1)) ;; esac
    done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
  done
done
# Every library folder must be known to the rule (a new folder gets a row here and in design.md).
for d in $(sed -n 's/^LIB_SRC := \$(wildcard \(.*\))/\1/p' Makefile | tr ' ' '\n' | sed 's#/\*\.c##'); do
  [ -n "${allowed[$d]:-}" ] || { echo "Makefile builds $d/ but the layering rule does not name it"; bad=$((bad + 1)); }
done
[ "$checked" -gt 50 ] || { echo "only $checked includes checked: the scan is broken"; exit 1; }
echo "$checked includes checked, $bad break the layering"
[ "$bad" -eq 0 ]
