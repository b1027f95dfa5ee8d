#!/bin/sh
# torture-plot.sh — plots a torture run's report directory (throughput and latency over time,
# fault intervals shaded, leader changes marked) into DIR/plot.png with gnuplot.
#
#   scripts/torture-plot.sh torture-out/7
#
# Reads DIR/timeline.tsv, DIR/latency.tsv, DIR/faults.tsv and DIR/leaders.tsv (written by
# build/cairn-torture). Installs gnuplot-nox with apt-get when gnuplot is missing and that is
# possible (root or sudo); otherwise prints a note and exits 0 without a plot.
set -eu

dir=${1:?usage: torture-plot.sh REPORT_DIR}
for f in timeline.tsv latency.tsv faults.tsv leaders.tsv; do
	[ -r "$dir/$f" ] || { echo "torture-plot: $dir/$f missing" >&2; exit 1; }
done

if ! command -v gnuplot >/dev/null 2>&1; then
	SUDO=""
	if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		SUDO="sudo -n"
	fi
	if [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; then
		if command -v apt-get >/dev/null 2>&1; then
			echo "torture-plot: installing gnuplot-nox"
			export DEBIAN_FRONTEND=noninteractive
			$SUDO apt-get install -y -qq --no-install-recommends gnuplot-nox >/dev/null 2>&1 ||
				{ $SUDO apt-get update -qq >/dev/null 2>&1 &&
				  $SUDO apt-get install -y -qq --no-install-recommends gnuplot-nox \
					>/dev/null 2>&1; } || true
		fi
	fi
fi
if ! command -v gnuplot >/dev/null 2>&1; then
	echo "torture-plot: gnuplot is not available (apt-get install gnuplot-nox): no plot"
	exit 0
fi

term="pngcairo size 1400,900 font 'sans,10'"
gnuplot -e "set terminal" 2>/dev/null | grep -q pngcairo || term="png size 1400,900"

seed=$(basename "$dir")
gp="$dir/plot.gp"
{
	echo "set terminal $term"
	echo "set output '$dir/plot.png'"
	echo "set datafile separator '\t'"
	echo "set multiplot layout 2,1 title 'Cairn torture run, seed $seed: faults shaded (red kill, purple pause, blue partition, teal one-way, orange delay), leader changes dashed'"
	echo "set grid"
	echo "set xlabel 'seconds since start'"
	# both panels share the x axis: same margins and range
	echo "set lmargin 12"
	echo "set rmargin 4"
	xmax=$(awk -F '\t' '!/^#/ { t = $1 } END { print (t > 0 ? t + 0.5 : 1) }' "$dir/timeline.tsv")
	echo "set xrange [0:$xmax]"
	# one shaded rectangle per fault, coloured by family, labelled with its kind
	awk -F '\t' '
		/^#/ { next }
		{
			c = "#999999"
			if ($3 ~ /^kill/) c = "#e04040"
			else if ($3 ~ /^pause/) c = "#9040c0"
			else if ($3 ~ /^partition/) c = "#3070e0"
			else if ($3 ~ /^oneway/) c = "#20a0a0"
			else if ($3 ~ /^delay/) c = "#f09020"
			n++
			printf "set object %d rect from %s, graph 0 to %s, graph 1 behind fc rgb \"%s\" fs transparent solid 0.18 noborder\n", n, $1, $2, c
			printf "set label %d \"%s\" at %s, graph 0.98 left front font \",8\" rotate by -90 offset 0.3,0 tc rgb \"%s\"\n", n, $3, $1, c
		}' "$dir/faults.tsv"
	# leader changes: dashed vertical lines (the first leader is not a change)
	awk -F '\t' '
		/^#/ { next }
		{ n++; if (n > 1) printf "set arrow %d from %s, graph 0 to %s, graph 1 nohead dt (8,6) lw 1.5 lc rgb \"#404040\" front\n", 1000 + n, $1, $1 }' \
		"$dir/leaders.tsv"
	echo "set ylabel 'operations completed / s'"
	echo "set key top right opaque"
	echo "plot '$dir/timeline.tsv' using 1:2 with lines lw 2 lc rgb '#208020' title 'ok', \\"
	echo "     '' using 1:3 with lines lw 1 lc rgb '#c02020' title 'fail', \\"
	echo "     '' using 1:4 with lines lw 1 lc rgb '#e08000' title 'info (unknown)'"
	echo "unset label"
	echo "set ylabel 'latency (ms, log scale)'"
	echo "set logscale y"
	echo "plot '$dir/latency.tsv' using 1:(strcol(4) eq 'ok' ? \$2 : 1/0) with points pt 7 ps 0.25 lc rgb '#208020' title 'ok', \\"
	echo "     '' using 1:(strcol(4) eq 'fail' ? \$2 : 1/0) with points pt 7 ps 0.4 lc rgb '#c02020' title 'fail', \\"
	echo "     '' using 1:(strcol(4) eq 'info' ? \$2 : 1/0) with points pt 7 ps 0.5 lc rgb '#e08000' title 'info', \\"
	echo "     '$dir/timeline.tsv' using 1:(\$6 > 0 ? \$6 : 1/0) with lines lw 1.5 lc rgb '#000000' title 'p99 of ok'"
	echo "unset multiplot"
} >"$gp"

gnuplot "$gp"
echo "torture-plot: wrote $dir/plot.png"
