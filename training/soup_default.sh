#!/usr/bin/env bash
# The bundled default model: a greedy soup of the 30-epoch model and eight fine-tunings of it.
#
#   bash training/soup_default.sh [--set KEY=VALUE ...]    # from the project root; extra --set go to every ingredient
#
# Needs runs/fer2013_small_long/best (fersnet train --config training/configs/fer2013_small_long.yaml) and
# the teacher's file runs/teacher/fer2013_train_t2.csv (fer2013_small_distill.yaml's header says how to write it).
# Trains the eight ingredients (fer2013_small_soup_ingredient.yaml at eight seeds, two teacher weights and two
# learning rates), two at a time on one thread each, as the bundled model's were (about 65 min on 2 cores), then
# averages them greedily on PublicTest into $SOUP/greedy and measures it on PrivateTest, FER+ test and CK+48.
# An ingredient that finished before is reused, so an interrupted run picks up where it stopped.
set -euo pipefail
SOUP=${SOUP:-runs/soup}
DATA=../shared/data  # where the ingredient recipe reads its data too
RECIPE=training/configs/fer2013_small_soup_ingredient.yaml
mkdir -p "$SOUP"

ingredient() {  # seed teacher_weight lr folder [--set ...]
    local seed=$1 weight=$2 lr=$3 out=$SOUP/$4
    shift 4
    # A finished run has measured its report splits; an interrupted one (best/ written each epoch) has not.
    if grep -qs "\"fer2013/test\"" "$out/best/card.json"; then echo "$out: trained before, reused"; return; fi
    fersnet train --config "$RECIPE" --set seed="$seed" --set train.0.teacher_weight="$weight" --set optim.lr="$lr" \
        --set threads=1 --set num_workers=1 --set progress=false --set figures=false --set out_dir="$out" "$@" \
        > "$out.log" 2>&1
    echo "$out: $(grep 'fer2013/val' "$out.log")"
}

( ingredient 1 0.5 0.0005 ing_s1_w0.5 "$@"; ingredient 3 0.5 0.0005 ing_s3_w0.5 "$@"
  ingredient 5 0.9 0.001 ing_s5_w0.9_lr0.001_e3 "$@"; ingredient 7 0.9 0.0005 ing_s7_w0.9_lr0.0005_e3 "$@" ) & first=$!
( ingredient 2 0.5 0.0005 ing_s2_w0.5 "$@"; ingredient 4 0.5 0.0005 ing_s4_w0.5 "$@"
  ingredient 6 0.5 0.001 ing_s6_w0.5_lr0.001_e3 "$@"; ingredient 8 0.5 0.0005 ing_s8_w0.5_lr0.0005_e3 "$@" ) & second=$!
wait "$first"
wait "$second"

fersnet soup runs/fer2013_small_long/best "$SOUP"/ing_s{1,2,3,4}_w0.5/best \
    "$SOUP"/ing_s5_w0.9_lr0.001_e3/best "$SOUP"/ing_s6_w0.5_lr0.001_e3/best \
    "$SOUP"/ing_s7_w0.9_lr0.0005_e3/best "$SOUP"/ing_s8_w0.5_lr0.0005_e3/best \
    --dataset fer2013 --root "$DATA/fer2013" --split val \
    --report "fer2013:test:$DATA/fer2013" --report "ferplus:test:$DATA/ferplus" --report "ckplus:all:$DATA/ckplus48" \
    --name fer2013_small_soup --out "$SOUP/greedy"
