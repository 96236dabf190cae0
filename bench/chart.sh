#!/bin/sh
# bench/chart.sh [BENCHMARKS.md] [SVG]: draws the ratios bench/compare.sh (and
# bench/memory.sh) wrote into BENCHMARKS.md, tlsflow against each peer, as
# horizontal bars around 1.0 in an SVG (default bench/ratios.svg), and makes
# sure BENCHMARKS.md shows it (one image line before its first "## Medians").
# Tables read: those under a heading "... (tlsflow / PEER)" whose last column
# is "ratio", and those whose last column is "vs PEER ...".  A figure where
# lower is better (CPU s/GB, RSS, kB) is green below 1.0, the others above.
# Plain POSIX sh and awk: no plotting package needed.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
md=${1:-$here/../BENCHMARKS.md}
svg=${2:-$here/ratios.svg}
[ -f "$md" ] || { echo "chart.sh: no $md" >&2; exit 1; }

awk '
function trim(s) { gsub(/^[ \t]+|[ \t]+$/, "", s); return s }
function esc(s) { gsub(/&/, "\\&amp;", s); gsub(/</, "\\&lt;", s); gsub(/>/, "\\&gt;", s); return s }
/^#/ {
    peer = ""; intable = 0
    if (match($0, /\(tlsflow \/ [^)]+\)/)) peer = substr($0, RSTART + 11, RLENGTH - 12)
    title = $0; sub(/^#+ */, "", title)
    next
}
/^\|/ {
    n = split($0, c, "|"); ncol = n - 2
    for (i = 1; i <= ncol; i++) col[i] = trim(c[i + 1])
    if (!intable) {           # the header row
        intable = 1; use = 0; tpeer = peer
        if (col[ncol] ~ /^vs /) { tpeer = col[ncol]; sub(/^vs /, "", tpeer); use = 1 }
        else if (col[ncol] == "ratio" && peer != "") use = 1
        if (use) { ngroups++; gname[ngroups] = esc(index(title, "tlsflow / ") ? title : title " — tlsflow / " tpeer) }
        next
    }
    if (!use || col[1] ~ /^-+:?$/) next
    v = col[ncol]
    if (v !~ /^[0-9.]+$/) next
    label = ""; own = 0
    for (i = 1; i < ncol; i++) {
        if (col[i] ~ /^[0-9.]+$/) continue
        if (index(tpeer, col[i]) == 1) own = 1       # the peer'"'"'s own row (1.0)
        if (col[i] == "tlsflow-serve") continue
        label = label (label == "" ? "" : " ") col[i]
    }
    if (own) next
    nrows++; rgroup[nrows] = ngroups; rlabel[nrows] = esc(label); rval[nrows] = v + 0
    rlower[nrows] = ((label " " title) ~ /CPU|s\/GB|RSS|kB|[Mm]emory|latency/)
    if (v + 0 > vmax) vmax = v + 0
    next
}
{ intable = 0 }
END {
    if (nrows == 0) { print "chart.sh: no ratio tables found" > "/dev/stderr"; exit 1 }
    scale = vmax < 2 ? 2 : int(vmax + 0.999)
    lw = 330; bw = 420; rh = 20; gh = 30; top = 50
    h = top + nrows * rh + ngroups * gh + 40
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", lw + bw + 60, h
    printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
    printf "<text x=\"10\" y=\"20\" font-size=\"15\" font-weight=\"bold\">tlsflow against each peer: ratio per figure (1.0 = the peer)</text>\n"
    printf "<text x=\"10\" y=\"38\" fill=\"#555\">green: tlsflow better (higher throughput and rates; lower CPU s/GB and memory), orange: worse</text>\n"
    y = top; g = 0
    for (r = 1; r <= nrows; r++) {
        if (rgroup[r] != g) {
            g = rgroup[r]; y += gh
            printf "<text x=\"10\" y=\"%d\" font-weight=\"bold\">%s</text>\n", y - 8, gname[g]
        }
        w = rval[r] / scale * bw
        better = rlower[r] ? rval[r] < 1 : rval[r] > 1
        if (rval[r] == 1) better = 1
        printf "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n", lw - 6, y + 14, rlabel[r]
        printf "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>\n", lw, y + 3, w, rh - 6, better ? "#3a9d5d" : "#e08a2c"
        printf "<text x=\"%.1f\" y=\"%d\">%.2f</text>\n", lw + w + 4, y + 14, rval[r]
        y += rh
    }
    x1 = lw + bw / scale
    printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"black\" stroke-dasharray=\"4 3\"/>\n", x1, top, x1, y
    for (t = 0; t <= scale; t++)
        printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#555\">%d</text>\n", lw + t * bw / scale, y + 16, t
    print "</svg>"
}' "$md" > "$svg.tmp"
mv "$svg.tmp" "$svg"

# BENCHMARKS.md shows the chart (compare.sh rewrites the file: this puts it back).
rel=bench/$(basename "$svg")
if ! grep -qF "($rel)" "$md"; then
    awk -v img="![tlsflow's ratios against each peer, drawn by bench/chart.sh]($rel)" '
        !done && /^## Medians/ { print img; print ""; done = 1 }
        { print }
        END { if (!done) { print ""; print img } }' "$md" > "$md.tmp"
    mv "$md.tmp" "$md"
fi
echo "wrote $svg"
