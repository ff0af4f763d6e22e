// SPDX-License-Identifier: MIT
// Shared pieces of the benchmark suites: size sequences that every suite uses
// so that "malloc" and "ctxalloc-*" rows do the same work.
#ifndef CA_BENCH_H
#define CA_BENCH_H

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ca_bench {

// Sizes cycling 16..512 bytes in 16-byte steps (the malloc+free pair measured for every peer).
inline std::vector<size_t> cycling_sizes()
{
    std::vector<size_t> v;
    for (size_t s = 16; s <= 512; s += 16)
        v.push_back(s);
    return v;
}

// Deterministic pseudo-random sequence (splitmix64).
struct rng {
    uint64_t s;
    uint64_t next()
    {
        uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    uint64_t below(uint64_t n) { return next() % n; }
};

} // namespace ca_bench

#endif
