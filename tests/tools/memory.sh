#!/bin/sh
# tlsflow-serve under 16 TLS peers that never read: HTTP (a 64 MiB GET plus
# pipelined requests) and --echo (bytes streamed, nothing read).  Fails when
# the server's RSS grows by more than 256 kB per such connection (the bound a
# flow's receive budget and one send batch promise), or when the run did not
# measure what it should (a peer not answered, a client failed).  Prints the
# figures; bench/memory.sh --help describes the method.
. "$(dirname "$0")/lib.sh"
need python3 ss
# An instrumented build's RSS (shadow memory, quarantine) is not the product's.
if command -v readelf >/dev/null 2>&1 &&
   readelf -d "$SERVE" 2>/dev/null | grep -Eq 'NEEDED.*lib(a|ub|t)san'; then
    echo "SKIP: $SERVE is built with a sanitizer: its RSS says nothing about the product"
    exit 77
fi
rc=0
"$(dirname "$0")/../../bench/memory.sh" --serve "$SERVE" --certs "$CERTS" --only tlsflow \
    --conns "${TF_MEMORY_CONNS:-16}" --runs 1 --stream 2 --no-throughput --max-kb 256 || rc=$?
exit $rc
