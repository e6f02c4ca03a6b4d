/*
 * Whether this machine's threads are cores or hardware threads of one
 * core: each of T threads runs 12 independent chains of 256-bit fused
 * multiply-adds (more than one core's FMA pipes need to stay busy), for T
 * = 1 and 2. Two cores give about twice the one-thread rate; two hardware
 * threads of one core share its pipes and give about the same. Prints, per
 * thread count, the GFLOP/s of all threads together:
 *
 *   gcc -O2 -march=native -fopenmp bench/cores.c -o /tmp/cores && /tmp/cores
 *   1 thread(s): 119.0 GFLOP/s in all (0.65 s)
 *   2 thread(s): 230.2 GFLOP/s in all (0.67 s)
 *
 * (A virtual machine's host may move its virtual CPUs between runs.)
 */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>

#define ITERS 400000000L

int main(void) {
  for (int T = 1; T <= 2; T++) {
    double t0 = omp_get_wtime(), sink = 0;
#pragma omp parallel num_threads(T) reduction(+ : sink)
    {
      /* Twelve named chains (an array at -O2 lives on the stack: store-forwarding, not the FMA units, would bound it). */
      const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
      __m256 a0 = _mm256_set1_ps(0), a1 = _mm256_set1_ps(1), a2 = _mm256_set1_ps(2), a3 = _mm256_set1_ps(3), a4 = _mm256_set1_ps(4), a5 = _mm256_set1_ps(5);
      __m256 a6 = _mm256_set1_ps(6), a7 = _mm256_set1_ps(7), a8 = _mm256_set1_ps(8), a9 = _mm256_set1_ps(9), a10 = _mm256_set1_ps(10), a11 = _mm256_set1_ps(11);
      for (long n = 0; n < ITERS; n++) {
        a0 = _mm256_fmadd_ps(a0, m, c); a1 = _mm256_fmadd_ps(a1, m, c); a2 = _mm256_fmadd_ps(a2, m, c);
        a3 = _mm256_fmadd_ps(a3, m, c); a4 = _mm256_fmadd_ps(a4, m, c); a5 = _mm256_fmadd_ps(a5, m, c);
        a6 = _mm256_fmadd_ps(a6, m, c); a7 = _mm256_fmadd_ps(a7, m, c); a8 = _mm256_fmadd_ps(a8, m, c);
        a9 = _mm256_fmadd_ps(a9, m, c); a10 = _mm256_fmadd_ps(a10, m, c); a11 = _mm256_fmadd_ps(a11, m, c);
      }
      __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)), _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
      s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
      sink += s[0];
    }
    double secs = omp_get_wtime() - t0;
    /* sink keeps the chains alive; it is never this value */
    printf("%d thread(s): %.1f GFLOP/s in all (%.2f s)%s\n", T, T * ITERS * 12 * 16.0 / secs / 1e9, secs, sink == 1234.5 ? " " : "");
  }
  return 0;
}
