#!/usr/bin/env bash
# tests/gen_text.sh — a deterministic English-like play text for the script tests, so that they run
# from any clone with no corpus beside it: speakers' names in capitals followed by a colon, lines of
# words drawn from a fixed vocabulary through a small grammar, punctuation, blank lines between
# speeches; plain ASCII. The same BYTES and SEED give the same bytes on every machine (its own
# Park–Miller generator, exact in awk's doubles, not awk's rand()).
#   bash tests/gen_text.sh BYTES [SEED] > FILE
set -eu
bytes=${1:?usage: gen_text.sh BYTES [SEED]}
seed=${2:-1}
[[ $bytes =~ ^[0-9]+$ && $seed =~ ^[0-9]+$ ]] || { echo "gen_text.sh: BYTES and SEED must be whole numbers" >&2; exit 2; }
LC_ALL=C awk -v bytes="$bytes" -v seed="$seed" '
function rnd(n) { state = (state * 16807) % 2147483647; return int(state / 2147483647 * n) }
function pick(list, n) { return list[rnd(n) + 1] }
function word_list(s, arr) { return split(s, arr, " ") }
BEGIN {
    state = (seed % 2147483646) + 1
    ns = word_list("ROMEO JULIET FIRST_CITIZEN SECOND_CITIZEN MENENIUS KING_HENRY QUEEN_MARGARET DUKE ISABELLA NURSE FRIAR", who)
    nn = word_list("king queen lord lady heart night day love death sword crown blood world father mother son daughter friend enemy city house grave tongue eye hand fortune honour grace soul heaven earth time word name sea", noun)
    nv = word_list("loves hates fears keeps takes gives knows calls sees hears holds leaves follows serves breaks finds", verb)
    na = word_list("good noble gentle sweet cruel fair poor proud true false dear old young sad brave", adj)
    nd = word_list("the my thy his her our your this that no", det)
    np = word_list("in of with from upon to by for against", prep)
    nc = word_list("and but yet for so or", conj)
    out = 0
    while (out < bytes) {
        speaker = who[rnd(ns) + 1]
        gsub(/_/, " ", speaker)
        text = speaker ":\n"
        lines = 1 + rnd(4)
        for (l = 0; l < lines; l++) {
            s = ""
            clauses = 1 + rnd(2)
            for (c = 0; c < clauses; c++) {
                phrase = pick(det, nd) " " (rnd(2) ? pick(adj, na) " " : "") pick(noun, nn) " " pick(verb, nv) " " pick(det, nd) " " pick(noun, nn)
                if (rnd(3) == 0) phrase = phrase " " pick(prep, np) " " pick(det, nd) " " pick(noun, nn)
                s = s (c ? ", " pick(conj, nc) " " : "") phrase
            }
            s = toupper(substr(s, 1, 1)) substr(s, 2)
            r = rnd(6)
            s = s (r == 0 ? "?" : r == 1 ? "!" : r == 2 ? ";" : ".")
            text = text s "\n"
        }
        text = text "\n"
        if (out + length(text) > bytes) text = substr(text, 1, bytes - out)
        printf "%s", text
        out += length(text)
    }
}'
