"""Run a command; print the peak resident memory of it and its worker processes.

``python -m bench.memprobe -- CMD ...`` → ``MEMPROBE peak_mb=N`` (the largest single
process: Linux ``ru_maxrss`` over every waited-for descendant).
"""

import resource
import subprocess
import sys

if __name__ == "__main__":
    cmd = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"MEMPROBE peak_mb={peak:.1f}")
    sys.exit(proc.returncode)
