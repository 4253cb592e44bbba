/* When a memory-bound loop is worth a parallel region. frugal waits passively between parallel
 * regions (src/core/omp_preinit.c), so waking the other thread costs ~15-20 us here (an empty
 * region measured 11-15 us; AMD EPYC, 2 cores, 2026-12-06). One core streams a 1 MB add in
 * about that time, so loops that only move data go parallel past FG_PAR_MIN_STREAM elements, and
 * loops with a few flops per element (layer norm's two passes) past FG_PAR_MIN_ROWS. Measured on
 * the same machine, best of 100, 1 against 2 threads: add of 37,824 floats 4.7 against 22.0 us,
 * 262,144 floats 35.8 against 38.1 us, 1 M floats 149 against 101 us; a (197, 3, 64) head split
 * 5.0 against 22.3 us, 1,576 rows 38.6 against 39.5, 4,096 rows 110 against 83 us; layer norm
 * over 197 x 192 15.3 against 27.2 us, 1,576 x 192 114 against 77 us. Loops over transcendental
 * functions (GELU, tanh, softmax's exp) keep their own lower thresholds. */
#ifndef FRUGAL_OPS_PAR_IMPL_H
#define FRUGAL_OPS_PAR_IMPL_H

#define FG_PAR_MIN_STREAM 262144
#define FG_PAR_MIN_ROWS 98304

#endif
