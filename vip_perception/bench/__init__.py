"""Benchmarks run through ``vip-perception bench``: ``vip_bench`` (an original CNN against its ViP
version, side by side) and ``fused_bench`` (every backend x implementation in one interleaved run).
They measure ratios in one run and write JSON that names the CPU and thread count."""
