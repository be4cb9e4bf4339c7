// Benchmark driver (see scripts/bench.sh).
import CSSLM
print("csslm-bench \(CSSLMVersion.string)")
