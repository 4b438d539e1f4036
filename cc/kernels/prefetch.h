// Cache control for the CPU kernels: software prefetches, and the fence that
// ends a run of streaming (non-temporal) stores. The prefetches are asm
// statements, not __builtin_prefetch: GCC 12 deleted whole loops of the
// builtin (a walk whose only effect was prefetching compiled to nothing, and
// the pooling forward it was to feed ran 2x slower).
#ifndef DEEPCTR_OPS_CC_KERNELS_PREFETCH_H_
#define DEEPCTR_OPS_CC_KERNELS_PREFETCH_H_

#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

namespace deepctr_ops {
namespace kernels {

// Prefetches the cache line holding *p for reading.
inline void PrefetchLine(const void* p) {
#if defined(__x86_64__) || defined(__i386__)
  asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p, /*rw=*/0, /*locality=*/3);
#endif
}

// Prefetches the cache line holding *p for writing (prefetchw: the store that
// follows finds the line owned, without a read-for-ownership stall).
inline void PrefetchLineForWrite(const void* p) {
#if defined(__x86_64__) || defined(__i386__)
  asm volatile("prefetchw %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p, /*rw=*/1, /*locality=*/3);
#endif
}

// Calls prefetch(line) for each 64-byte cache line of p[0], ..., p[n - 1].
template <typename T, typename Prefetch>
inline void ForEachLine(const T* p, int64_t n, Prefetch prefetch) {
  const uintptr_t first = reinterpret_cast<uintptr_t>(p);
  const uintptr_t end = first + n * sizeof(T);
  for (uintptr_t line = first & ~uintptr_t{63}; line < end; line += 64) {
    prefetch(reinterpret_cast<const void*>(line));
  }
}

// Prefetches the cache lines of p[0], ..., p[n - 1] for reading.
template <typename T>
inline void PrefetchLines(const T* p, int64_t n) {
  ForEachLine(p, n, [](const void* line) { PrefetchLine(line); });
}

// The same for writing.
template <typename T>
inline void PrefetchLinesForWrite(const T* p, int64_t n) {
  ForEachLine(p, n, [](const void* line) { PrefetchLineForWrite(line); });
}

// Orders the streaming stores issued so far before the stores that follow
// (an sfence; SSE, so every x86-64 build has it). Call it after a run of
// them and before the op reports completion.
inline void FinishStreamingStores() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_sfence();
#endif
}

}  // namespace kernels
}  // namespace deepctr_ops

#endif  // DEEPCTR_OPS_CC_KERNELS_PREFETCH_H_
