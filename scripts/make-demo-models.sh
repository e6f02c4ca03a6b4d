#!/usr/bin/env bash
# Reproduces the demo models shipped under demo/ from nothing but this
# repository: the project's synthetic story grammar -> a character-level
# tokenizer -> a small Llama teacher trained from scratch -> teacher samples
# with their u-bins -> a distilled PTP student. `ptp demo` then runs on them.
#
#   scripts/make-demo-models.sh            # from the repository root, after npm ci
#   WORK=/tmp/w DEMO_DIR=/tmp/out scripts/make-demo-models.sh
#
# Stages that finished are skipped on a rerun (markers in $WORK; FORCE=1
# redoes everything); an interrupted stage continues: train and distill with
# --resume from their --checkpoint, pregenerate with --resume. Only the last step writes into $DEMO_DIR, so an
# interrupted run never leaves a teacher and a student that do not match.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${WORK:-/tmp/ptp-demo-work}"
DEMO_DIR="${DEMO_DIR:-$ROOT/demo}"
FORCE="${FORCE:-0}"

# --- Settings (adjust here) -------------------------------------------------
# Synthetic data: corpus seed, held-out prompts for pregenerate and for eval
# (different seeds from the corpus and from each other).
SYNTH_FLAGS=(--stories 20000 --seed 1)
PREGEN_PROMPT_FLAGS=(--prompt-count 512 --prompt-words 4 --prompt-seed 2)
EVAL_PROMPT_FLAGS=(--prompt-count 32 --prompt-words 6 --prompt-seed 3)

# The teacher: next-token training from scratch on the corpus.
TRAIN_FLAGS=(--dim 64 --layers 4 --heads 4 --kv-heads 4 --hidden 172 --seq-len 256
  --context 128 --batch 8 --steps 1200 --lr 3e-3 --warmup 50 --eval-every 200 --seed 1)

# Distillation data: teacher completions with the demo's sampling settings
# (temperature 0.7, no top-k/top-p: ptp demo samples that way).
PREGEN_FLAGS=(--samples 4 --steps 255 --temperature 0.7 --top-k 0 --top-p 1 --seed 1)

# The student: O-PTP gated LoRA with the hybrid slot input (the default), trained on
# every core (the result does not depend on the thread count).
DISTILL_FLAGS=(--variant O --slot-input hybrid --aux anchors --rank 32 --alpha 32 --window 8 --windows 32 --batch 2
  --gamma 0.9 --lr 5e-3 --warmup 50 --schedule cosine --steps 1200 --eval-every 400 --eval-count 16 --seed 1)

# Extra flags for every command that computes (e.g. THREADS_FLAGS=(--threads 2)).
THREADS_FLAGS=()
# -----------------------------------------------------------------------------

say() { printf '\n== %s\n' "$*"; }
ptp() { node "$ROOT/bin/ptp.js" "$@"; }
done_marker() { echo "$WORK/.done-$1"; }
stage_done() { [[ "$FORCE" != 1 && -f "$(done_marker "$1")" ]]; }
STAGES=(synth train pregenerate distill)
# A stage that runs makes the later stages' results stale.
start_stage() {
  local later=0 s
  for s in "${STAGES[@]}"; do
    if [[ "$later" == 1 ]]; then rm -f "$(done_marker "$s")"; fi
    if [[ "$s" == "$1" ]]; then later=1; fi
  done
}
mark_done() { touch "$(done_marker "$1")"; }

mkdir -p "$WORK"

say "build (dist/ runs the CLI)"
if [[ ! -f "$ROOT/build/ptp-simd.wasm" ]]; then (cd "$ROOT" && npm run build); else (cd "$ROOT" && npm run build:ts); fi

CORPUS="$WORK/corpus.txt"
TOK="$WORK/tok.bin"
PREGEN_PROMPTS="$WORK/pregen-prompts.txt"
EVAL_PROMPTS="$WORK/eval-prompts.txt"
TEACHER="$WORK/teacher.bin"
DATASET="$WORK/samples.ptpd"
STUDENT="$WORK/student.safetensors"
TEACHER_CKPT="$WORK/teacher.ckpt"
STUDENT_CKPT="$WORK/student.ckpt"
if [[ "$FORCE" == 1 ]]; then rm -f "$WORK"/.done-* "$TEACHER_CKPT" "$STUDENT_CKPT" "$DATASET"; fi

# Continue the run whose checkpoint $1 exists; otherwise start over, replacing what an earlier run left (--force).
resume_or_force() { if [[ -f "$1" ]]; then resume=(--resume); else resume=(--force); fi; }

# Stage $1: the command after it, unless the stage is done; marked done once it ran.
run_stage() {
  local name=$1
  shift
  if stage_done "$name"; then echo "done before; skipped"; return; fi
  start_stage "$name"
  "$@"
  mark_done "$name"
}

synth_stage() {
  # Deterministic outputs of this stage: rewritten on a rerun (--force).
  ptp synth --out "$CORPUS" --tokenizer-out "$TOK" "${SYNTH_FLAGS[@]}" --prompts-out "$PREGEN_PROMPTS" "${PREGEN_PROMPT_FLAGS[@]}" --force
  ptp synth --prompts-out "$EVAL_PROMPTS" "${EVAL_PROMPT_FLAGS[@]}" --force
}
train_stage() {
  resume_or_force "$TEACHER_CKPT"
  ptp train --corpus "$CORPUS" --tokenizer "$TOK" --out "$TEACHER" "${TRAIN_FLAGS[@]}" \
    --checkpoint "$TEACHER_CKPT" "${resume[@]}" "${THREADS_FLAGS[@]}"
}
pregenerate_stage() {
  resume=()
  [[ -f "$DATASET" ]] && resume=(--resume)
  ptp pregenerate --model "$TEACHER" --tokenizer "$TOK" --prompts "$PREGEN_PROMPTS" --out "$DATASET" \
    "${PREGEN_FLAGS[@]}" "${resume[@]}" "${THREADS_FLAGS[@]}"
}
distill_stage() {
  resume_or_force "$STUDENT_CKPT"
  ptp distill --model "$TEACHER" --dataset "$DATASET" --out "$STUDENT" "${DISTILL_FLAGS[@]}" \
    --checkpoint "$STUDENT_CKPT" --tokenizer "$TOK" --eval-prompts "$EVAL_PROMPTS" "${resume[@]}" "${THREADS_FLAGS[@]}"
}

say "1/5 synthetic corpus, char tokenizer, prompts -> $WORK"
run_stage synth synth_stage

say "2/5 train the teacher -> $TEACHER"
run_stage train train_stage

say "3/5 sample the teacher for distillation -> $DATASET"
run_stage pregenerate pregenerate_stage

say "4/5 distill the student -> $STUDENT"
run_stage distill distill_stage

say "5/5 install into $DEMO_DIR"
mkdir -p "$DEMO_DIR"
cp "$TEACHER" "$DEMO_DIR/teacher.bin"
cp "$TOK" "$DEMO_DIR/tok.bin"
cp "$STUDENT" "$DEMO_DIR/student.safetensors"
ls -l "$DEMO_DIR"
(cd "$DEMO_DIR" && sha256sum teacher.bin tok.bin student.safetensors)

say "check: ptp demo on the new files"
ptp demo --demo-dir "$DEMO_DIR" --prompts "$EVAL_PROMPTS" --steps 200 --no-color "${THREADS_FLAGS[@]}"
