# Shell helpers shared by the benchmarks (source it).

# Milliseconds since the epoch.
now_ms() { date +%s%3N; }
# The median of the numbers on stdin (one per line), two decimals when even.
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }
