"""Small helpers the stages share: per-stage timings (timing.py), the CPUs this process
may use (cpus.py), and the fault hook the tests break the code through (faults.py)."""
