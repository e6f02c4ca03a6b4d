/*
 * The host's streaming read rate, for bench/native-vs-ours.ts: how many
 * GB/s OMP_NUM_THREADS threads can read from memory when they do nothing
 * but sum a 512 MiB float array (far beyond any L3), each thread its own
 * contiguous share, as a decoder streams its weights. Compiled with the
 * same gcc flags as run.c, so the compiler vectorises it with the widest
 * loads the CPU has. Prints the best of PASSES passes:
 *
 *   stream GB/s: 27.1
 *
 * A decoder that reads every weight once per token cannot run faster than
 * (this rate) / (bytes of weights per token) on the same threads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <omp.h>

#define FLOATS ((size_t)128 << 20) /* 512 MiB */
#define PASSES 6

int main(void) {
  float *a = aligned_alloc(64, FLOATS * sizeof(float));
  if (!a) {
    fprintf(stderr, "stream: cannot allocate 512 MiB\n");
    return 1;
  }
  /* First touch by the threads that will read, so pages sit near them. */
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < FLOATS; i++) a[i] = (float)(i & 1023) * 1e-3f;
  double best = 0, sink = 0;
  for (int pass = 0; pass < PASSES; pass++) {
    double t0 = omp_get_wtime();
    float sum = 0;
#pragma omp parallel for schedule(static) reduction(+ : sum)
    for (size_t i = 0; i < FLOATS; i++) sum += a[i];
    double dt = omp_get_wtime() - t0;
    double rate = FLOATS * sizeof(float) / dt / 1e9;
    if (rate > best) best = rate;
    sink += sum; /* the sums are used, so the loop is not removed */
  }
  printf("stream GB/s: %.1f\n", best);
  if (sink == 0.5) printf("\n");
  free(a);
  return 0;
}
