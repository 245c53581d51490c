"""Benchmarks: how our code compares with the plainest way to do the same work.

`python -m bench` (what `make bench` calls) runs every scenario in a scratch
database and writes `bench/results/latest.json` and `latest.md`; see README.md.
The test suite runs none of this except one harness check.
"""
