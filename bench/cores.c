/*
 * Whether this machine's threads are cores or hardware threads of one
 * core: each of T threads runs 12 independent chains of 256-bit fused
 * multiply-adds (more than one core's FMA pipes need to stay busy), for T
 * = 1 and 2. Two cores give about twice the one-thread rate; two hardware
 * threads of one core share its pipes and give about the same. Prints, per
 * thread count, the GFLOP/s of all threads together:
 *
 *   gcc -O2 -march=native -fopenmp bench/cores.c -o /tmp/cores && /tmp/cores
 *   1 thread(s): 40.2 GFLOP/s in all (0.96 s)
 *   2 thread(s): 77.3 GFLOP/s in all (0.99 s)
 *
 * (A virtual machine's host may move its virtual CPUs between runs.)
 */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>

#define CHAINS 12
#define ITERS 200000000L

int main(void) {
  for (int T = 1; T <= 2; T++) {
    double t0 = omp_get_wtime(), sink = 0;
#pragma omp parallel num_threads(T) reduction(+ : sink)
    {
      __m256 a[CHAINS], m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
      for (int i = 0; i < CHAINS; i++) a[i] = _mm256_set1_ps((float)i);
      for (long n = 0; n < ITERS; n++)
        for (int i = 0; i < CHAINS; i++) a[i] = _mm256_fmadd_ps(a[i], m, c);
      for (int i = 0; i < CHAINS; i++) sink += a[i][0];
    }
    double s = omp_get_wtime() - t0;
    /* sink keeps the chains alive; it is never this value */
    printf("%d thread(s): %.1f GFLOP/s in all (%.2f s)%s\n", T, T * ITERS * CHAINS * 16.0 / s / 1e9, s, sink == 1234.5 ? " " : "");
  }
  return 0;
}
